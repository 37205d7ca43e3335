"""The parts the CIFAR nets' blocks are made of, and the model.* keys that choose them: the convolution, the
activation, the normalisation, the shortcut and what scales, gates or drops a residual branch."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUTS = ("A", "B")
NORMS = ("bn", "none")  # none: no normalisation anywhere (the residual nets that train without it)
BRANCH_INITS = ("none", "rezero", "skipinit", "fixup")  # residual branches that start at 0 (docs/protocol.md)
ACTIVATIONS = ("relu", "crelu")  # crelu: [relu(x), relu(-x)], twice the channels (looks-linear, Balduzzi et al. 2017)
CONVS = ("standard", "dirac")  # dirac: DiracNets' parametrisation of every conv in the blocks
# a and b at init as the first version of szagoruyko/diracnets (diracnet.py, where they are one scalar per conv; here
# one per output channel, the paper's diag(a), diag(b)); its current version starts at 1 and 0.1
DIRAC_SCALE, DIRAC_WEIGHT_SCALE = 5.0, 1e-3


@dataclass(frozen=True)
class BlockOptions:
    """What every block of one net shares: the model.* keys that shape a block."""

    residual: bool
    shortcut: str = "A"
    residual_scale: float = 1.0  # a in y = x + a*F(x)
    norm: str = "bn"
    branch_init: str = "none"
    activation: str = "relu"
    conv: str = "standard"

    @property
    def widen(self) -> int:
        """How many channels an activation gives per channel it takes: a conv after one takes that many more."""
        return 2 if self.activation == "crelu" else 1


def activate(x: torch.Tensor, kind: str = "relu") -> torch.Tensor:
    """ReLU, or CReLU (Shang et al. 2016): the positive and the negative part of x as channels of their own."""
    return torch.cat([F.relu(x), F.relu(-x)], dim=1) if kind == "crelu" else F.relu(x)


class Activation(nn.Module):
    def __init__(self, kind: str = "relu"):
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activate(x, self.kind)


def conv(in_channels: int, out_channels: int, size: int = 3, stride: int = 1, kind: str = "standard") -> nn.Conv2d:
    """A conv without bias, padded to keep the map's size (at stride 1)."""
    made = DiracConv2d if kind == "dirac" else nn.Conv2d
    return made(in_channels, out_channels, size, stride=stride, padding=size // 2, bias=False)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, kind: str = "standard") -> nn.Conv2d:
    return conv(in_channels, out_channels, 3, stride, kind)


def identity_kernel(weight: torch.Tensor) -> torch.Tensor:
    """The kernel with which a conv passes its input on (δ), channel c to channel c; where the counts differ, as the
    first version of szagoruyko/diracnets: the identity repeated, so more outputs copy inputs and more inputs are
    summed (its current version leaves the extra outputs at 0)."""
    out_channels, in_channels, *size = weight.shape
    shared = min(in_channels, out_channels)
    delta = nn.init.dirac_(torch.empty(shared, shared, *size))
    return delta.repeat(max(out_channels // in_channels, 1), max(in_channels // out_channels, 1), 1, 1)


class DiracConv2d(nn.Conv2d):
    """DiracNets' conv (Zagoruyko & Komodakis 2017): W = diag(a)·δ + diag(b)·Ŵ, where δ passes the input on and
    Ŵ is the weight with each output filter scaled to unit norm. a and b are learned per output channel."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dirac_scale = nn.Parameter(torch.full((self.out_channels,), DIRAC_SCALE))  # a
        self.weight_scale = nn.Parameter(torch.full((self.out_channels,), DIRAC_WEIGHT_SCALE))  # b
        self.register_buffer("delta", identity_kernel(self.weight), persistent=False)

    def kernel(self) -> torch.Tensor:
        per_channel = (-1, 1, 1, 1)
        unit = F.normalize(self.weight.flatten(1), dim=1).view_as(self.weight)
        return self.dirac_scale.view(per_channel) * self.delta + self.weight_scale.view(per_channel) * unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.kernel(), self.bias)


def norm2d(channels: int, norm: str = "bn") -> nn.Module:
    return nn.BatchNorm2d(channels) if norm == "bn" else nn.Identity()


def last_layer(norm: nn.Module, conv: nn.Conv2d) -> nn.Module:
    """The last layer of a branch that has parameters: its BN, or its conv where there is no normalisation."""
    return norm if isinstance(norm, nn.BatchNorm2d) else conv


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


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by the stride and append zero channels. No parameters."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def projection_shortcut(in_channels: int, out_channels: int, stride: int, norm: str = "bn") -> nn.Sequential:
    """Option B: 1x1 conv + BN (norm=none: the conv alone), used only where the shape changes."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        norm2d(out_channels, norm),
    )


def shortcut_of(kind: str, in_channels: int, out_channels: int, stride: int, norm: str = "bn") -> nn.Module:
    """The identity where the shape stays; where it changes, option A (no parameters) or B (a projection)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind == "A":
        return ZeroPadShortcut(stride, out_channels - in_channels)
    return projection_shortcut(in_channels, out_channels, stride, norm)


class Block(nn.Module):
    """What every CIFAR block keeps around its branch, for add_shortcut and the analyses: whether it adds a shortcut
    (residual), the branch's scale a and gate, its activation and whether it changes the shape. Its own __init__
    makes the branch's layers, then the shortcut (shortcut_after_branch): a projection's weights are drawn after
    the branch's, so a seed gives the same weights as it always has."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, options: BlockOptions):
        super().__init__()
        self.residual, self.residual_scale = options.residual, options.residual_scale
        self.gate, self.activation = branch_gate(options.branch_init), options.activation
        self.changes_shape = stride != 1 or in_channels != out_channels

    def shortcut_after_branch(self, in_channels: int, out_channels: int, stride: int, options: BlockOptions, norm=None):
        """The identity, option A or a projection (with `norm`, else the block's) for a residual block; a plain block
        adds none."""
        self.shortcut = nn.Identity()
        if self.residual:
            self.shortcut = shortcut_of(options.shortcut, in_channels, out_channels, stride, norm or options.norm)


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
