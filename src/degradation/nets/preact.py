"""He et al. 2016's full pre-activation blocks ("Identity Mappings in Deep Residual Networks"): the BN and the
activation come before each conv, and nothing follows the addition, so a block's shortcut path is the identity from
the stem to the head. Two kinds: two 3x3 convs (model.block=preact, depth 6n + 2) and the bottleneck of their
ResNet-164 and ResNet-1001 (model.block=preact_bottleneck, depth 9n + 2), as KaimingHe/resnet-1k-layers builds it.
"""

import torch
from torch import nn

from degradation.nets.contract import ShortcutOnly, plain_block_deleted
from degradation.nets.parts import (
    Activation,
    Block,
    BlockOptions,
    activate,
    add_shortcut,
    conv,
    conv3x3,
    norm2d,
)

BOTTLENECK_EXPANSION = 4  # a bottleneck's 1x1 and 3x3 convs have a quarter of its output channels


class PreActBlock(Block):
    """BN -> ReLU -> 3x3 conv -> BN -> ReLU -> 3x3 conv, plus the shortcut: x + a*F(x), nothing after it.

    `activate_both` (the first block after the stem conv): the shortcut takes the activated input too. A plain
    block is the same layers with no shortcut: a*F(x)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, options: BlockOptions, activate_both=False):
        super().__init__(in_channels, out_channels, stride, options)
        self.activate_both = activate_both
        wide, kind = options.widen, options.conv
        self.bn1, self.conv1 = (
            norm2d(in_channels, options.norm),
            conv3x3(wide * in_channels, out_channels, stride, kind),
        )
        self.bn2, self.conv2 = norm2d(out_channels, options.norm), conv3x3(wide * out_channels, out_channels, 1, kind)
        self.shortcut_after_branch(in_channels, out_channels, stride, options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = activate(self.bn1(x), self.activation)
        out = self.conv2(activate(self.bn2(self.conv1(activated)), self.activation))
        return add_shortcut(out, activated if self.activate_both else x, self)

    def response_layers(self) -> list[nn.Conv2d]:
        return [self.conv1, self.conv2]  # a conv's output, before the next BN and the addition

    @property
    def branch_end(self) -> nn.Module:
        return self.conv2

    def lesioned(self) -> nn.Module | None:
        return lesioned_pre_activation(self)


class PreActBottleneck(Block):
    """BN -> ReLU -> 1x1 conv -> BN -> ReLU -> 3x3 conv -> BN -> ReLU -> 1x1 conv, plus the shortcut, nothing
    after the addition; the stride is on the first 1x1 conv. Where the shape changes (each stage's first block,
    `activate_both`) the first BN and ReLU come before the split, and the shortcut is a 1x1 conv without BN
    (model.shortcut=B, the paper's) or option A's zero channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, options: BlockOptions, activate_both=False):
        super().__init__(in_channels, out_channels, stride, options)
        self.activate_both = activate_both
        width, wide, kind, norm = out_channels // BOTTLENECK_EXPANSION, options.widen, options.conv, options.norm
        self.bn1, self.conv1 = norm2d(in_channels, norm), conv(wide * in_channels, width, 1, stride, kind)
        self.bn2, self.conv2 = norm2d(width, norm), conv(wide * width, width, 3, 1, kind)
        self.bn3, self.conv3 = norm2d(width, norm), conv(wide * width, out_channels, 1, 1, kind)
        self.shortcut_after_branch(in_channels, out_channels, stride, options, norm="none")  # as the paper's code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = activate(self.bn1(x), self.activation)
        out = self.conv2(activate(self.bn2(self.conv1(activated)), self.activation))
        out = self.conv3(activate(self.bn3(out), self.activation))
        return add_shortcut(out, activated if self.activate_both else x, self)

    def response_layers(self) -> list[nn.Conv2d]:
        return [self.conv1, self.conv2, self.conv3]

    @property
    def branch_end(self) -> nn.Module:
        return self.conv3

    def lesioned(self) -> nn.Module | None:
        return lesioned_pre_activation(self)


def lesioned_pre_activation(block: nn.Module) -> nn.Module | None:
    """A residual block's shortcut, after the BN and activation it shares with its branch (`activate_both`); a
    plain one: plain_block_deleted."""
    if block.residual:
        before = nn.Sequential(block.bn1, Activation(block.activation)) if block.activate_both else None
        return ShortcutOnly(block.shortcut, nn.Identity(), before)
    return plain_block_deleted(block)
