"""Which networks exist: each family registers its config keys with their rules (a dataclass, the
schema of its conf/model/ files) and its builder. The run directory names a network by family,
arch and depth (`rundir.run_name`), so no two networks share one.
"""

from collections.abc import Callable
from dataclasses import dataclass, fields

from omegaconf import MISSING
from torch import nn

from degradation.errors import UserError
from degradation.nets.cifar import BLOCK_KINDS, INIT_MODES, CifarNet, InvalidDepthError, blocks_per_stage
from degradation.nets.imagenet import BLOCKS, STRIDE_IN, ImageNetStyleResNet
from degradation.nets.parts import ACTIVATIONS, BRANCH_INITS, CONVS, NORMS, SHORTCUTS
from degradation.schema import is_int, is_number, non_negative, one_of, rule


def cifar_depth(depth) -> bool:
    """Some block's depth (6n + 2, or 9n + 2 for bottlenecks); check_cifar then holds it to the net's block."""
    for block in BLOCK_KINDS:
        try:
            blocks_per_stage(depth, block)
            return True
        except InvalidDepthError:
            pass
    return False


@dataclass
class NetworkKeys:
    """The model.* keys every family has; a family's schema extends it (docs/add-a-network.md)."""

    family: str = MISSING  # each family holds it to its own name
    arch: str = MISSING  # plain or resnet, from model.residual: names run directories and figure panels
    residual: bool = MISSING  # false: the plain twin, the same layers without shortcuts
    depth: int = MISSING  # each family says which depths it builds
    init_mode: str = rule(*one_of(*INIT_MODES))
    residual_scale: float = rule(*non_negative)  # a in y = x + a*F(x)


def family_rule(name: str, others: str):
    return rule(lambda family: family == name, f"{name} in this model config ({others})")


@dataclass
class CifarModel(NetworkKeys):
    """The paper's CIFAR nets (section 4.2): depth 6n+2, option A or B shortcuts, and the interventions."""

    family: str = family_rule("cifar", "other families: model=imagenet, model=resnet18 ...")
    depth: int = rule(
        cifar_depth,
        "6n+2 with n >= 1 (e.g. 8, 14, 20, 32, 44, 56, 110, 1202), 9n+2 with model.block=preact_bottleneck (164, 1001)",
    )
    shortcut: str = rule(*one_of(*SHORTCUTS))
    block: str = rule(*one_of(*BLOCK_KINDS))
    norm: str = rule(*one_of(*NORMS))
    branch_init: str = rule(*one_of(*BRANCH_INITS))
    drop_path: float = rule(lambda v: is_number(v) and 0 <= v < 1, "in [0, 1)")
    activation: str = rule(*one_of(*ACTIVATIONS))
    conv: str = rule(*one_of(*CONVS))


@dataclass
class ImagenetModel(NetworkKeys):
    """ResNet-18/34/50/101/152 adapted to CIFAR; projection shortcuts where the shape changes."""

    family: str = family_rule("imagenet", "the paper's nets: model=resnet, model=plain")
    depth: int = rule(
        lambda depth: is_int(depth) and depth in BLOCKS, f"one of {', '.join(map(str, BLOCKS))} for family imagenet"
    )
    stride_in: str = rule(*one_of(*STRIDE_IN))


def check_cifar(model: dict) -> None:
    """Combinations of the CIFAR nets' keys that make no sense, each said in one line with why."""
    try:
        blocks_per_stage(model["depth"], model.get("block", "original"))
    except InvalidDepthError as error:
        raise UserError(f"model.{error}") from None  # "model.depth must be 9n+2 ... for block ..."
    gated = model.get("branch_init", "none") != "none"
    if gated and not model["residual"]:
        raise UserError(
            f"model.branch_init={model['branch_init']} needs model.residual=true: a branch gated at 0 with no "
            "shortcut is a net whose output is 0"
        )
    if model.get("branch_init") in ("skipinit", "fixup") and model.get("norm", "bn") == "bn":
        raise UserError(
            f"model.branch_init={model['branch_init']} needs model.norm=none: it trains residual nets without BN, "
            "in place of it (model.branch_init=rezero works with BN)"
        )
    if model.get("drop_path", 0) > 0 and not model["residual"]:
        raise UserError(
            "model.drop_path needs model.residual=true: a dropped plain block has no shortcut to carry its input"
        )
    if model.get("init_mode") == "delta_orthogonal" and model.get("block") == "preact_bottleneck":
        raise UserError(
            "model.init_mode=delta_orthogonal needs convs with at least as many output as input channels: "
            "a bottleneck's first 1x1 conv reduces its channels to a quarter (use model.block=original or preact)"
        )
    if model.get("branch_init") == "fixup" and model.get("block", "original") != "original":
        raise UserError("model.branch_init=fixup needs model.block=original: Fixup rescales post-activation blocks")
    check_looks_linear_and_dirac(model)


def check_looks_linear_and_dirac(model: dict) -> None:
    crelu, dirac = model.get("activation") == "crelu", model.get("conv") == "dirac"
    if crelu and model["residual"]:
        raise UserError(
            "model.activation=crelu needs model.residual=false: looks-linear is an init for plain nets, and a "
            "shortcut would have to carry the CReLU's doubled channels"
        )
    if crelu and model.get("init_mode") == "delta_orthogonal":
        raise UserError(
            "model.activation=crelu sets its own init (mirrored weights [W, -W]) on convs that take twice as many "
            "channels as they give, where model.init_mode=delta_orthogonal is not defined: use fan_in or fan_out"
        )
    if dirac and (crelu or model.get("branch_init") == "fixup"):
        other = "model.activation=crelu" if crelu else "model.branch_init=fixup"
        raise UserError(
            f"model.conv=dirac does not combine with {other}: a Dirac conv's identity part stays where "
            + ("the mirrored weights make the net linear" if crelu else "Fixup zeroes a branch's last conv")
        )


def check_imagenet(model: dict) -> None:
    if model.get("init_mode") == "delta_orthogonal" and BLOCKS[model["depth"]][0] == "bottleneck":
        raise UserError(
            f"model.init_mode=delta_orthogonal needs convs with at least as many output as input channels: "
            f"ResNet-{model['depth']}'s bottlenecks reduce theirs (1x1, 4 x width -> width); ResNet-18/34 have none"
        )


@dataclass(frozen=True)
class Family:
    schema: type  # the model.* keys of this family and their rules
    build: Callable[..., nn.Module]  # called with those keys (family and arch excepted) and num_classes
    shortcut: Callable[[dict], str]  # how summary.json names the shortcuts of a residual net
    check: Callable[[dict], None] = lambda model: None  # refuses combinations of its keys that make no sense

    def build_keys(self) -> list[str]:
        """The model.* keys the builder takes (family and arch name the network, they do not shape it)."""
        return [spec.name for spec in fields(self.schema) if spec.name not in ("family", "arch")]


FAMILIES: dict[str, Family] = {
    "cifar": Family(CifarModel, CifarNet, lambda model: model["shortcut"], lambda model: check_cifar(model)),
    "imagenet": Family(ImagenetModel, ImageNetStyleResNet, lambda model: "B", lambda model: check_imagenet(model)),
}


def family_of(model: dict) -> Family:
    return FAMILIES[model.get("family", "cifar")]  # checkpoints from before families existed are the paper's


def net_args(model: dict, num_classes: int) -> dict:
    """What a run's network is made of: its family, num_classes and the family's keys (checkpoints keep this). A key
    an older run's config lacks (it was trained before the key existed) is left to the builder's default, which is
    the paper's value, as the run had it."""
    keys = {key: model[key] for key in family_of(model).build_keys() if key in model}
    return {"num_classes": num_classes, "family": model.get("family", "cifar"), **keys}


def build_net(family: str = "cifar", num_classes: int = 10, **keys) -> nn.Module:
    """From net_args(...). Keys of other families (older checkpoints recorded all of them) are ignored."""
    own = FAMILIES[family].build_keys()
    return FAMILIES[family].build(num_classes=num_classes, **{key: value for key, value in keys.items() if key in own})


def shortcut_name(model: dict) -> str:
    return family_of(model).shortcut(model) if model["residual"] else "none"


def families_with(key: str) -> list[str]:
    """The families whose configs have model.<key> (for saying that another family's key was set)."""
    return [name for name, family in FAMILIES.items() if key in {spec.name for spec in fields(family.schema)}]
