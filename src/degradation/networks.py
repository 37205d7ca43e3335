"""Which network a config builds: the paper's CIFAR family, or the ImageNet-style ResNets adapted to CIFAR."""

from torch import nn

from degradation.imagenet_resnets import ImageNetStyleResNet
from degradation.models import CifarNet

FAMILIES = ("cifar", "imagenet")


def build_net(family: str = "cifar", stride_in: str = "3x3", **net) -> nn.Module:
    """net: depth, residual, num_classes, init_mode, residual_scale, and shortcut (cifar family only)."""
    if family == "cifar":
        return CifarNet(**net)
    if family == "imagenet":
        net.pop("shortcut", None)  # always projections where the shape changes
        return ImageNetStyleResNet(stride_in=stride_in, **net)
    raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
