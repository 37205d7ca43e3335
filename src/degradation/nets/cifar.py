"""The CIFAR-10 networks of He et al. 2015, section 4.2: matched plain and residual nets.

depth = 6n + 2: a 3x3 conv with 16 filters, three stages of n blocks of two 3x3 convs
(16/32/64 filters on 32x32/16x16/8x8 maps), global average pooling, a linear classifier.
The plain net is the residual net with the shortcuts removed; with option A shortcuts
both have exactly the same parameters.

block=preact builds He et al. 2016's full pre-activation nets ("Identity Mappings in Deep Residual Networks"):
each block BN -> ReLU -> conv -> BN -> ReLU -> conv plus its shortcut, nothing after the addition; the stem is
the conv alone, the first block activates its input before splitting into branch and shortcut, and a BN and ReLU
follow the last block (their appendix).
"""

import torch
import torch.nn.functional as F
from torch import nn

from degradation.nets.contract import ShortcutOnly, plain_block_deleted
from degradation.nets.parts import (
    ACTIVATIONS,
    BRANCH_INITS,
    CONVS,
    NORMS,
    SHORTCUTS,
    Block,
    BlockOptions,
    FixupScalars,
    activate,
    add_shortcut,
    conv3x3,
    last_layer,
    norm2d,
)
from degradation.nets.preact import PreActBlock, PreActBottleneck

STAGE_WIDTHS = (16, 32, 64)
BOTTLENECK_STAGE_WIDTHS = (64, 128, 256)  # a pre-activation bottleneck's output channels per stage (He et al. 2016)
INIT_MODES = ("fan_in", "fan_out", "delta_orthogonal")
DELTA_ORTHOGONAL_GAIN = 2**0.5  # sigma_w for ReLU nets: the He gain, so a layer keeps the signal's second moment
# He et al. 2015's post-activation block; 2016's full pre-activation block and bottleneck (nets/preact.py)
BLOCK_KINDS = ("original", "preact", "preact_bottleneck")
LAYERS_PER_BLOCK = {"original": 2, "preact": 2, "preact_bottleneck": 3}
DEPTH_EXAMPLES = {2: "8, 14, 20, 32, 44, 56, 110, 1202", 3: "11, 20, 29, 164, 1001"}


class InvalidDepthError(ValueError):
    """A depth that is not of the form 6n + 2 (9n + 2 for bottleneck blocks)."""


def blocks_per_stage(depth: int, block: str = "original") -> int:
    """n in depth = 6n + 2 (3 stages of n blocks of 2 layers, a stem and a classifier), 9n + 2 for the bottleneck
    blocks of 3 layers; refuses any other depth with valid ones listed."""
    layers = LAYERS_PER_BLOCK[block]
    per_stage = 3 * layers
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < per_stage + 2 or (depth - 2) % per_stage:
        raise InvalidDepthError(
            f"depth must be {per_stage}n+2 with n >= 1 for block {block} (e.g. {DEPTH_EXAMPLES[layers]}), got {depth!r}"
        )
    return (depth - 2) // per_stage


class BasicBlock(Block):
    """Two 3x3 convs, each followed by BN; the second ReLU comes after the addition: relu(x + a*F(x)).

    A plain block (options.residual false) is the same layers with no shortcut: relu(a*F(x)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, options: BlockOptions):
        super().__init__(in_channels, out_channels, stride, options)
        wide = options.widen
        self.conv1 = conv3x3(wide * in_channels, out_channels, stride, options.conv)
        self.bn1 = norm2d(out_channels, options.norm)
        self.conv2 = conv3x3(wide * out_channels, out_channels, 1, options.conv)
        self.bn2 = norm2d(out_channels, options.norm)
        self.shortcut_after_branch(in_channels, out_channels, stride, options)
        self.fixup = FixupScalars() if options.branch_init == "fixup" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixup is not None:
            return F.relu(add_shortcut(self.fixup_branch(x), x, self))
        out = activate(self.bn1(self.conv1(x)), self.activation)
        out = self.bn2(self.conv2(out))
        return activate(add_shortcut(out, x, self), self.activation)

    def fixup_branch(self, x: torch.Tensor) -> torch.Tensor:
        """The branch as Fixup's reference code computes it (no BN: norm=none). Its shortcut takes x, where the
        reference's downsampling shortcut takes x + bias1a (a bias the option-A shortcut passes on to the next
        block, whose own biases can absorb it)."""
        s = self.fixup
        out = F.relu(self.conv1(x + s.bias1a) + s.bias1b)
        return self.conv2(out + s.bias2a) * s.scale + s.bias2b

    def response_layers(self) -> list[nn.Module]:
        return [self.conv1, self.conv2] if self.fixup is not None else [self.bn1, self.bn2]

    @property
    def branch_end(self) -> nn.Module:
        return last_layer(self.bn2, self.conv2)

    def lesioned(self) -> nn.Module | None:
        return lesioned_post_activation(self)


def lesioned_post_activation(block: nn.Module) -> nn.Module | None:
    """relu(shortcut(x)) for a residual block whose ReLU follows the addition; a plain one: plain_block_deleted."""
    if block.residual:
        return ShortcutOnly(block.shortcut, nn.ReLU())
    return plain_block_deleted(block)


class Network(nn.Module):
    """A 3x3 stem conv + BN + ReLU, a sequence of blocks, global average pooling and a linear classifier."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def response_layers(self) -> list[nn.BatchNorm2d]:
        """The BN after every 3x3 conv, in the network's order (Figure 7's layers)."""
        return [self.bn] + [layer for block in self.blocks for layer in block.response_layers()]


class CifarNet(Network):
    """The paper's CIFAR network: plain (residual=False) or ResNet (residual=True); block=preact and
    preact_bottleneck: He et al. 2016's; the other keys: docs/protocol.md and docs/beyond-the-paper.md."""

    def __init__(
        self,
        depth: int,
        residual: bool,
        shortcut: str = "A",
        num_classes: int = 10,
        init_mode: str = "fan_in",
        residual_scale: float = 1.0,
        block: str = "original",
        norm: str = "bn",
        branch_init: str = "none",
        drop_path: float = 0.0,
        activation: str = "relu",
        conv: str = "standard",
    ):
        super().__init__()
        for key, value, valid in (
            ("shortcut", shortcut, SHORTCUTS),
            ("block", block, BLOCK_KINDS),
            ("norm", norm, NORMS),
            ("branch_init", branch_init, BRANCH_INITS),
            ("activation", activation, ACTIVATIONS),
            ("conv", conv, CONVS),
        ):
            if value not in valid:
                raise ValueError(f"{key} must be one of {valid}, got {value!r}")
        options = BlockOptions(residual, shortcut, residual_scale, norm, branch_init, activation, conv)
        self.depth, self.residual, self.shortcut, self.preact = depth, residual, shortcut, block != "original"
        self.activation = activation
        self.conv = conv3x3(3, STAGE_WIDTHS[0])
        if not self.preact:
            self.bn = norm2d(STAGE_WIDTHS[0], norm)
        self.blocks = nn.Sequential(*stages(depth, block, options))
        for index, built in enumerate(self.blocks):  # Huang et al.'s linear rule: the last block drops with drop_path
            built.drop = drop_path * (index + 1) / len(self.blocks)
        last_width = stage_widths(block)[-1]
        if self.preact:
            self.final_bn = norm2d(last_width, norm)  # the activation after the last block
        self.fc = nn.Linear(options.widen * last_width, num_classes)
        self.fixup = branch_init == "fixup"
        if self.fixup:
            self.stem_bias, self.head_bias = nn.Parameter(torch.zeros(())), nn.Parameter(torch.zeros(()))
        he_init(self, init_mode)
        if self.fixup:
            fixup_init(self)
        if activation == "crelu":
            looks_linear_(self)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixup:
            return F.relu(self.conv(x) + self.stem_bias)
        return self.conv(x) if self.preact else activate(self.bn(self.conv(x)), self.activation)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixup:
            return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1) + self.head_bias)
        return super().head(activate(self.final_bn(x), self.activation) if self.preact else x)

    def response_layers(self) -> list[nn.Module]:
        if not (self.preact or self.fixup):
            return super().response_layers()
        return [self.conv] + [layer for block in self.blocks for layer in block.response_layers()]  # no stem BN


def stage_widths(block: str) -> tuple[int, ...]:
    return BOTTLENECK_STAGE_WIDTHS if block == "preact_bottleneck" else STAGE_WIDTHS


def stages(depth: int, block: str, options: BlockOptions) -> list[nn.Module]:
    """Three stages of n blocks; each stage after the first halves the map with its first block's stride.

    A pre-activation net's blocks share their first BN and ReLU with the shortcut: bottlenecks at each stage's first
    block, where the channels grow, as KaimingHe/resnet-1k-layers; two-conv blocks at the net's first block only,
    as this harness has built them since model.block=preact existed (fb.resnet.torch's preresnet.lua shares them at
    each stage's first block: a deviation, kept so that earlier preact runs keep their network)."""
    n, bottleneck = blocks_per_stage(depth, block), block == "preact_bottleneck"
    blocks, in_channels = [], STAGE_WIDTHS[0]
    for stage, width in enumerate(stage_widths(block)):
        for index in range(n):
            stride = 2 if stage > 0 and index == 0 else 1
            if block == "original":
                blocks.append(BasicBlock(in_channels, width, stride, options))
            else:
                shared = index == 0 and (bottleneck or stage == 0)
                kind = PreActBottleneck if bottleneck else PreActBlock
                blocks.append(kind(in_channels, width, stride, options, activate_both=shared))
            in_channels = width
    return blocks


def he_init(net: nn.Module, mode: str) -> None:
    """He et al. 2015 normal init for every conv; BN starts as the identity.

    The paper cites [13], whose derivation for the forward pass uses fan_in; fan_out
    is what fb.resnet.torch and torchvision use, and is available as a switch.
    """
    if mode not in INIT_MODES:
        raise ValueError(f"init_mode must be one of {INIT_MODES}, got {mode!r}")
    for module in net.modules():
        if isinstance(module, nn.Conv2d) and mode == "delta_orthogonal":
            delta_orthogonal_(module.weight, DELTA_ORTHOGONAL_GAIN)
        elif isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode=mode, nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def delta_orthogonal_(weight: torch.Tensor, gain: float) -> None:
    """Xiao et al. 2018: every tap 0 except the centre, which is an orthogonal matrix (orthonormal columns) times
    `gain`; defined where a conv has at least as many output channels as input ones."""
    out_channels, in_channels, height, width = weight.shape
    if out_channels < in_channels:
        raise ValueError(f"delta_orthogonal needs out >= in channels, got a conv of {in_channels} -> {out_channels}")
    with torch.no_grad():
        weight.zero_()
        centre = torch.empty(out_channels, in_channels)
        nn.init.orthogonal_(centre, gain)
        weight[:, :, height // 2, width // 2] = centre


def fixup_init(net: nn.Module) -> None:
    """Fixup's rescaling (Zhang, Dauphin & Ma 2019, for branches of m = 2 convs among L blocks): each branch's first
    conv keeps He init scaled by L^(-1/(2m-2)) = L^(-1/2), its last conv and the classifier start at zero."""
    blocks = len(net.blocks)
    with torch.no_grad():
        for block in net.blocks:
            block.conv1.weight.mul_(blocks**-0.5)
            block.conv2.weight.zero_()
        net.fc.weight.zero_()
        net.fc.bias.zero_()


def looks_linear_(net: nn.Module) -> None:
    """Looks-linear init (Balduzzi et al. 2017): every weight that takes a CReLU's output is mirrored, [W, -W], so
    W·relu(x) - W·relu(-x) = W·x and the net is linear at init. W keeps the init's draw: with fan_in, He's
    variance over the doubled fan-in, the variance that keeps a linear layer's signal (fan_out draws twice it)."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)) and module is not net.conv:
                half = module.weight.shape[1] // 2
                module.weight[:, half:] = -module.weight[:, :half]


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
