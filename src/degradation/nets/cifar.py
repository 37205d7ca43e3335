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

from degradation.nets.contract import ShortcutOnly

STAGE_WIDTHS = (16, 32, 64)
SHORTCUTS = ("A", "B")
INIT_MODES = ("fan_in", "fan_out", "delta_orthogonal")
DELTA_ORTHOGONAL_GAIN = 2**0.5  # sigma_w for ReLU nets: the He gain, so a layer keeps the signal's second moment
BLOCK_KINDS = ("original", "preact")  # He et al. 2015's post-activation block; 2016's full pre-activation
NORMS = ("bn", "none")  # none: no normalisation anywhere (the residual nets that train without it)
BRANCH_INITS = ("none", "rezero", "skipinit", "fixup")  # residual branches that start at 0 (docs/protocol.md)


class InvalidDepthError(ValueError):
    """A depth that is not of the form 6n + 2."""


def blocks_per_stage(depth: int) -> int:
    """n in depth = 6n + 2; refuses any other depth with the valid ones listed."""
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
        raise InvalidDepthError(
            f"depth must be 6n+2 with n >= 1 (e.g. 8, 14, 20, 32, 44, 56, 110, 1202), got {depth!r}"
        )
    return (depth - 2) // 6


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by the stride and append zero channels. No parameters."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def norm2d(channels: int, norm: str = "bn") -> nn.Module:
    return nn.BatchNorm2d(channels) if norm == "bn" else nn.Identity()


def branch_gate(branch_init: str) -> nn.Parameter | None:
    """ReZero (Bachlechner et al. 2020: x + a*F(x)) and SkipInit (De & Smith 2020): a learnable scalar a on the
    branch, 0 at init, so that every residual block starts as its shortcut."""
    return nn.Parameter(torch.zeros(())) if branch_init in ("rezero", "skipinit") else None


class FixupScalars(nn.Module):
    """Fixup's scalars for one branch (Zhang, Dauphin & Ma 2019): biases before each conv and activation, a
    multiplier at the branch's end. The biases start at 0, the multiplier at 1."""

    def __init__(self):
        super().__init__()
        self.bias1a, self.bias1b, self.bias2a, self.bias2b = (nn.Parameter(torch.zeros(())) for _ in range(4))
        self.scale = nn.Parameter(torch.ones(()))


def last_layer(norm: nn.Module, conv: nn.Conv2d) -> nn.Module:
    """The last layer of a branch that has parameters: its BN, or its conv where there is no normalisation."""
    return norm if isinstance(norm, nn.BatchNorm2d) else conv


def projection_shortcut(in_channels: int, out_channels: int, stride: int, norm: str = "bn") -> nn.Sequential:
    """Option B: 1x1 conv + BN, used only where the shape changes."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        norm2d(out_channels, norm),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convs, each followed by BN; the second ReLU comes after the addition: relu(x + a*F(x)).

    With residual=False the block is the same layers with no shortcut: relu(a*F(x)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        residual: bool,
        shortcut: str,
        residual_scale: float = 1.0,
        norm: str = "bn",
        branch_init: str = "none",
    ):
        super().__init__()
        self.residual_scale, self.gate = residual_scale, branch_gate(branch_init)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = norm2d(out_channels, norm)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = norm2d(out_channels, norm)
        self.residual = residual
        self.changes_shape = stride != 1 or in_channels != out_channels
        self.shortcut = shortcut_of(shortcut, in_channels, out_channels, stride, norm) if residual else nn.Identity()
        self.fixup = FixupScalars() if branch_init == "fixup" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixup is not None:
            return F.relu(add_shortcut(self.fixup_branch(x), x, self))
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(add_shortcut(out, x, self))

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
    """relu(shortcut(x)) for a residual block whose ReLU follows the addition; a plain block's input where the shape
    allows (relu(x) = x after the ReLU that ends the block before); None where it does not."""
    if block.residual:
        return ShortcutOnly(block.shortcut, nn.ReLU())
    return None if block.changes_shape else nn.Identity()


class PreActBlock(nn.Module):
    """BN -> ReLU -> 3x3 conv -> BN -> ReLU -> 3x3 conv, plus the shortcut: x + a*F(x), nothing after it.

    `activate_both` (the first block after the stem conv): the shortcut takes the activated input too. With
    residual=False the block is the same layers with no shortcut: a*F(x)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        residual: bool,
        shortcut: str,
        residual_scale: float = 1.0,
        activate_both: bool = False,
        norm: str = "bn",
        branch_init: str = "none",
    ):
        super().__init__()
        self.residual_scale, self.residual, self.activate_both = residual_scale, residual, activate_both
        self.gate = branch_gate(branch_init)
        self.bn1, self.conv1 = norm2d(in_channels, norm), conv3x3(in_channels, out_channels, stride)
        self.bn2, self.conv2 = norm2d(out_channels, norm), conv3x3(out_channels, out_channels)
        self.changes_shape = stride != 1 or in_channels != out_channels
        self.shortcut = shortcut_of(shortcut, in_channels, out_channels, stride, norm) if residual else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(activated))))
        return add_shortcut(out, activated if self.activate_both else x, self)

    def response_layers(self) -> list[nn.Conv2d]:
        return [self.conv1, self.conv2]  # a 3x3 conv's output, before the next BN and the addition

    @property
    def branch_end(self) -> nn.Module:
        return self.conv2

    def lesioned(self) -> nn.Module | None:
        if self.residual:
            before = nn.Sequential(self.bn1, nn.ReLU()) if self.activate_both else None
            return ShortcutOnly(self.shortcut, nn.Identity(), before)
        return None if self.changes_shape else nn.Identity()


def shortcut_of(kind: str, in_channels: int, out_channels: int, stride: int, norm: str = "bn") -> nn.Module:
    """The identity where the shape stays; where it changes, option A (no parameters) or B (a projection)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind == "A":
        return ZeroPadShortcut(stride, out_channels - in_channels)
    return projection_shortcut(in_channels, out_channels, stride, norm)


def add_shortcut(branch: torch.Tensor, x: torch.Tensor, block: nn.Module) -> torch.Tensor:
    """a*F(x) + shortcut(x) for a residual block, a*F(x) for its plain twin (times its gate, if it has one)."""
    if block.residual_scale != 1.0:  # skipped at 1.0: one kernel less per block, same numbers
        branch = block.residual_scale * branch
    if getattr(block, "gate", None) is not None:
        branch = block.gate * branch
    if getattr(block, "drop", 0.0) > 0:
        branch = dropped_path(branch, block.drop, block.training)
    return branch + block.shortcut(x) if block.residual else branch


def dropped_path(branch: torch.Tensor, drop: float, training: bool) -> torch.Tensor:
    """Stochastic depth (Huang et al. 2016): in training the whole branch is dropped for the mini-batch with
    probability `drop`, drawn on the branch's device (no host read, so a captured or compiled step stays valid);
    in evaluation the branch is scaled by its survival probability, the expectation of the training output (the
    paper's rule)."""
    if training:
        keep = (torch.rand((), device=branch.device) >= drop).to(branch.dtype)
        return branch * keep
    return branch * (1.0 - drop)


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
    """The paper's CIFAR network: plain (residual=False) or ResNet (residual=True); block=preact: He et al. 2016's."""

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
    ):
        super().__init__()
        for key, value, valid in (
            ("shortcut", shortcut, SHORTCUTS),
            ("block", block, BLOCK_KINDS),
            ("norm", norm, NORMS),
        ):
            if value not in valid:
                raise ValueError(f"{key} must be one of {valid}, got {value!r}")
        if branch_init not in BRANCH_INITS:
            raise ValueError(f"branch_init must be one of {BRANCH_INITS}, got {branch_init!r}")
        branch = dict(norm=norm, branch_init=branch_init)
        n = blocks_per_stage(depth)
        self.depth, self.residual, self.shortcut, self.preact = depth, residual, shortcut, block == "preact"
        self.conv = conv3x3(3, STAGE_WIDTHS[0])
        if not self.preact:
            self.bn = norm2d(STAGE_WIDTHS[0], norm)
        blocks = []
        in_channels = STAGE_WIDTHS[0]
        for stage, width in enumerate(STAGE_WIDTHS):
            for index in range(n):
                stride = 2 if stage > 0 and index == 0 else 1
                if self.preact:
                    first = stage == 0 and index == 0
                    blocks.append(
                        PreActBlock(in_channels, width, stride, residual, shortcut, residual_scale, first, **branch)
                    )
                else:
                    blocks.append(BasicBlock(in_channels, width, stride, residual, shortcut, residual_scale, **branch))
                in_channels = width
        for index, built in enumerate(blocks):  # Huang et al.'s linear rule: the last block drops with drop_path
            built.drop = drop_path * (index + 1) / len(blocks)
        self.blocks = nn.Sequential(*blocks)
        if self.preact:
            self.final_bn = norm2d(in_channels, norm)  # the activation after the last block
        self.fc = nn.Linear(in_channels, num_classes)
        self.fixup = branch_init == "fixup"
        if self.fixup:
            self.stem_bias, self.head_bias = nn.Parameter(torch.zeros(())), nn.Parameter(torch.zeros(()))
        he_init(self, init_mode)
        if self.fixup:
            fixup_init(self)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixup:
            return F.relu(self.conv(x) + self.stem_bias)
        return self.conv(x) if self.preact else super().stem(x)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixup:
            return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1) + self.head_bias)
        return super().head(F.relu(self.final_bn(x)) if self.preact else x)

    def response_layers(self) -> list[nn.Module]:
        if not (self.preact or self.fixup):
            return super().response_layers()
        return [self.conv] + [layer for block in self.blocks for layer in block.response_layers()]  # no stem BN


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


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
