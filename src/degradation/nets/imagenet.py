"""ResNet-18/34/50/101/152 as CIFAR tutorials adapt them from ImageNet, each with a plain twin.

A 3x3 stride-1 stem with 64 filters and no max-pool, four stages of 64/128/256/512 filters
(strides 1/2/2/2) of basic blocks (18, 34) or bottleneck blocks (50+, expansion 4), global average
pooling, a linear classifier. Where a block changes the shape, its shortcut is a projection
(1x1 conv + BN); the plain twin (residual=False) has the same layers without any shortcut, so
it lacks the projections' parameters.
"""

import torch
import torch.nn.functional as F
from torch import nn

from degradation.nets.cifar import BasicBlock, Network, he_init, lesioned_post_activation
from degradation.nets.parts import BlockOptions, add_shortcut, conv3x3, projection_shortcut

STAGE_WIDTHS = (64, 128, 256, 512)
STAGE_STRIDES = (1, 2, 2, 2)
BLOCKS = {  # depth: (block, blocks per stage)
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
STRIDE_IN = ("3x3", "1x1")  # where a bottleneck's stride goes: ResNet v1.5 (torchvision) or the original paper


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 -> 1x1 (expand x4), each followed by BN: relu(shortcut(x) + a*F(x))."""

    expansion = 4

    def __init__(
        self, in_channels: int, width: int, stride: int, residual: bool, stride_in: str, residual_scale: float
    ):
        super().__init__()
        out_channels = width * self.expansion
        stride_1x1, stride_3x3 = (1, stride) if stride_in == "3x3" else (stride, 1)
        self.conv1, self.bn1 = conv1x1(in_channels, width, stride_1x1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = conv3x3(width, width, stride_3x3), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = conv1x1(width, out_channels), nn.BatchNorm2d(out_channels)
        self.residual, self.residual_scale = residual, residual_scale
        self.changes_shape = stride != 1 or in_channels != out_channels
        self.shortcut = (
            projection_shortcut(in_channels, out_channels, stride) if residual and self.changes_shape else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(add_shortcut(out, x, self))

    def response_layers(self) -> list[nn.BatchNorm2d]:
        return [self.bn2]

    @property
    def branch_end(self) -> nn.Module:
        return self.bn3

    def lesioned(self) -> nn.Module | None:
        return lesioned_post_activation(self)


def valid_depths() -> str:
    return ", ".join(map(str, BLOCKS))


class ImageNetStyleResNet(Network):
    """ResNet-<depth> for 32x32 inputs; residual=False gives its plain twin."""

    def __init__(
        self,
        depth: int,
        residual: bool,
        num_classes: int = 10,
        init_mode: str = "fan_in",
        stride_in: str = "3x3",
        residual_scale: float = 1.0,
    ):
        super().__init__()
        if depth not in BLOCKS:
            raise ValueError(f"depth must be one of {valid_depths()} for this family, got {depth!r}")
        if stride_in not in STRIDE_IN:
            raise ValueError(f"stride_in must be one of {STRIDE_IN}, got {stride_in!r}")
        kind, counts = BLOCKS[depth]
        self.depth, self.residual = depth, residual
        self.conv, self.bn = conv3x3(3, STAGE_WIDTHS[0]), nn.BatchNorm2d(STAGE_WIDTHS[0])
        blocks, in_channels = [], STAGE_WIDTHS[0]
        for width, count, stage_stride in zip(STAGE_WIDTHS, counts, STAGE_STRIDES):
            for index in range(count):
                stride = stage_stride if index == 0 else 1
                if kind == "basic":
                    blocks.append(BasicBlock(in_channels, width, stride, BlockOptions(residual, "B", residual_scale)))
                    in_channels = width
                else:
                    blocks.append(Bottleneck(in_channels, width, stride, residual, stride_in, residual_scale))
                    in_channels = width * Bottleneck.expansion
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_channels, num_classes)
        he_init(self, init_mode)
