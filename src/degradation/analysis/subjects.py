"""What an analysis looks at: a run's network, trained (checkpoints/last.ckpt, weights only) or as it was at
init (rebuilt from the run's config with its seed: the same weights the run started from), or a network named
without a run (`plain-1202`); and CIFAR-10 images prepared as the run saw them (its training mean subtracted,
no augmentation).
"""

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import yaml
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

from degradation.analysis.responses import eager_net
from degradation.conf import model_preset
from degradation.data.cifar10 import (
    CIFAR_DIRNAME,
    NUM_CLASSES,
    Split,
    first_images,
    hold_out,
    load_cifar10,
    mean_image,
    normalize,
)
from degradation.errors import UserError
from degradation.nets.registry import FAMILIES, build_net, net_args
from degradation.runs.checkpoints import checkpoint_step, saved_network
from degradation.runs.rundir import NAMED_MODEL_KEYS, PAPER_FAMILY, RunDir, run_name, variant


@dataclass(frozen=True)
class Subject:
    """One network to analyse: its name (plain-56), its model config and seed, and the run it belongs to (if any)
    with the run's whole config as its summary.json recorded it."""

    name: str
    model: dict
    seed: int
    run_dir: RunDir | None = None
    config: dict = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return self.model["arch"]

    @property
    def depth(self) -> int:
        return self.model["depth"]


def of_run(run_dir: RunDir) -> Subject:
    config = (run_dir.read_summary() or {}).get("config")
    if not config:
        raise UserError(f"{run_dir.path} has no summary.json with its config: not a run directory")
    model = config["model"]
    return Subject(
        f"{run_name(model.get('family', PAPER_FAMILY), model['arch'], model['depth'], variant(model))}"
        f"/seed={config['seed']}",
        model,
        config["seed"],
        run_dir,
        config,
    )


def of_name(name: str, seed: int = 0) -> Subject:
    """A network named as its run directory would be, without a run: `plain-56`, `resnet-1202` (the paper's CIFAR
    nets, option A shortcuts), with a variant (`resnet-110-preact`, `resnet-56-norm-none-fixup`), or of another
    family (`imagenet-resnet-50`): the family's own config (conf/model/<family>.yaml) with the named keys."""
    family, arch, depth, suffix = parts_of_name(name)
    model = {**family_preset(family), "arch": arch, "residual": arch == "resnet", "depth": depth}
    model.update(named_keys(suffix, family))
    FAMILIES[family].check(model)
    return Subject(name, model, seed)


def parts_of_name(name: str) -> tuple[str, str, int, str]:
    """(family, arch, depth, variant) of `imagenet-resnet-50`, `resnet-110-preact`."""
    family, _, rest = name.partition("-")
    if family not in FAMILIES or family == PAPER_FAMILY:
        family, rest = PAPER_FAMILY, name
    arch, _, rest = rest.partition("-")
    depth, _, suffix = rest.partition("-")
    depth_rule = next(spec.metadata for spec in fields(FAMILIES[family].schema) if spec.name == "depth")
    if arch not in ("plain", "resnet") or not depth.isdigit() or not depth_rule["check"](int(depth)):
        prefix = "" if family == PAPER_FAMILY else f"{family}-"
        raise UserError(
            f"expected nets like plain-56, resnet-1202 or imagenet-resnet-50 ({prefix}plain or {prefix}resnet, then "
            f"a depth {depth_rule['expected']}), got {name!r}"
        )
    return family, arch, int(depth), suffix


def family_preset(family: str) -> dict:
    """Every key's default for a family: conf/model/resnet.yaml for the paper's nets, conf/model/<family>.yaml."""
    return model_preset("resnet" if family == PAPER_FAMILY else family)


def named_keys(suffix: str, family: str = PAPER_FAMILY) -> dict:
    """The model keys a run name's variant stands for (rundir.NAMED_MODEL_KEYS read backwards), checked by turning
    them into a name again."""
    rules = {spec.name: spec.metadata["check"] for spec in fields(FAMILIES[family].schema) if spec.metadata}
    model, rest = {}, suffix
    while rest:
        key, value, rest = next_named_key(rest, rules, model)
        model[key] = value
    if variant(model) != suffix or not all(rules[key](value) for key, value in model.items()):
        raise UserError(f"{suffix!r} is not a variant as run directories name them (e.g. preact, norm-none-fixup)")
    return model


def next_named_key(rest: str, rules: dict, taken: dict) -> tuple[str, object, str]:
    """(key, value, what is left) for the first label of `rest`: norm-none, droppath0.5, or a bare value."""
    token, _, after = rest.partition("-")
    for key, (_, label) in NAMED_MODEL_KEYS.items():
        prefix = label.split("{")[0]
        if key not in rules:  # not a key of this family
            continue
        if prefix.endswith("-") and token == prefix[:-1] and after:  # norm-none
            value, _, remainder = after.partition("-")
            return key, value, remainder
        if prefix and not prefix.endswith("-") and token.startswith(prefix):  # droppath0.5
            return key, yaml.safe_load(token.removeprefix(prefix)), after
    for key, (_, label) in NAMED_MODEL_KEYS.items():
        if label == "{}" and key in rules and key not in taken and rules[key](token):  # preact, fixup, delta_orthogonal
            return key, token, after
    raise UserError(f"{token!r} in {rest!r} names no intervention (docs/beyond-the-paper.md lists them)")


def init_net(subject: Subject) -> nn.Module:
    """The network as its run started: seeded with the run's seed right before it is built, as training does."""
    torch.manual_seed(subject.seed)
    try:
        return build_net(**net_args(subject.model, NUM_CLASSES))
    except ValueError as error:
        raise UserError(f"{subject.name}: {error}") from None


def trained_step(subject: Subject) -> int | None:
    """The step of the run's last.ckpt (what a trained analysis looks at), None without one. Not summary.json's
    steps: a diverged run's checkpoint is older than its last step, a running one's newer than its summary."""
    checkpoint = subject.run_dir.last_checkpoint if subject.run_dir else None
    return checkpoint_step(checkpoint) if checkpoint is not None and checkpoint.is_file() else None


def trained_net(subject: Subject) -> tuple[nn.Module, int]:
    """(network with the weights of checkpoints/last.ckpt, the step it was saved at)."""
    checkpoint = subject.run_dir.last_checkpoint if subject.run_dir else None
    if checkpoint is None or not checkpoint.is_file():
        raise UserError(f"{subject.name}: no checkpoint at {checkpoint} (trained analyses need the run's last.ckpt)")
    saved = saved_network(checkpoint)
    return eager_net(saved.net_args, saved.weights), saved.step


def low_memory_forward(net: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The network's output, keeping only about sqrt(blocks) of its blocks' activations for the backward pass
    (the rest are recomputed): 256 inputs through a 1202-layer net would otherwise hold ~30 GB. A BN layer in
    train mode sees the same batch when recomputed, so the numbers are those of a plain forward."""
    if not hasattr(net, "blocks") or len(net.blocks) < 16:
        return net(inputs)
    return net.head(
        checkpoint_sequential(net.blocks, math.isqrt(len(net.blocks)), net.stem(inputs), use_reentrant=False)
    )


@dataclass(frozen=True)
class Images:
    """Normalised images (float32, the run's training mean subtracted) and their labels, on one device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, size: int):
        for start in range(0, len(self), size):
            yield self.images[start : start + size], self.labels[start : start + size]


def data_root(subject: Subject, root: str | None) -> str:
    """Where the subject's CIFAR-10 is: `root` if given, else its run's data.root (else data/); refused if absent."""
    root = root or subject.config.get("data", {}).get("root", "data")
    if not (Path(root) / CIFAR_DIRNAME).is_dir():
        raise UserError(f"no CIFAR-10 under {root} (pass --data-root, or python -m degradation.train once to download)")
    return root


def cifar_images(subject: Subject, root: str | None, split: str, size: int | None, device: torch.device) -> Images:
    """The first `size` images of the test set or of the run's training split (validation images held out as the
    run held them out), prepared as the run prepared them."""
    data = subject.config.get("data", {})
    train, test = load_cifar10(data_root(subject, root), download=False)
    train, _ = hold_out(train, data.get("val_size", 0), data.get("split_seed", 0))
    chosen: Split = first_images(train if split == "train" else test, size)
    return Images(normalize(chosen.images, mean_image(train)).to(device), chosen.labels.to(device))


@torch.no_grad()
def error_and_loss(net: nn.Module, images: Images, batch_size: int = 500) -> tuple[float, float]:
    """(error in %, mean cross-entropy) of the network in eval mode."""
    net.eval()
    wrong, loss = 0, 0.0
    for batch, labels in images.batches(batch_size):
        logits = net(batch).float()
        wrong += (logits.argmax(1) != labels).sum().item()
        loss += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item()
    return 100.0 * wrong / len(images), loss / len(images)
