"""The config's types and per-key rules: one dataclass per config group.

Registered with Hydra's ConfigStore (config.py), the dataclasses make Hydra check every value's type
while it composes: `optim.nesterov=maybe` or `optim.momentum=false` never reach a run. Each field
may carry a rule (`rule(check, expected)`) for what its type cannot say, such as "> 0" or "one of";
`check_rules` applies them and names the key, what it must be and what it got. The values (the
paper's defaults) live in the YAML files of conf/, not here.
"""

from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from omegaconf import MISSING

from degradation.errors import UserError

PRECISIONS = (
    "32-true",
    "bf16-mixed",
    "16-mixed",
    "bf16-true",
    "16-true",
    "64-true",  # Lightning's names
    "auto",
)  # ours: bf16-mixed where the device has bf16 units, else 32-true (training/precision.py)
WANDB_MODES = ("auto", "online", "offline", "disabled")


def rule(check: Callable[[Any], bool], expected: str, default=MISSING):
    """A field whose value must pass `check`; `expected` completes 'must be ...' in the error."""
    return field(default=default, metadata={"check": check, "expected": expected})


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def one_of(*choices) -> tuple[Callable[[Any], bool], str]:
    names = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in choices)
    return (lambda value: any(value is c if isinstance(c, bool) else value == c for c in choices)), f"one of {names}"


positive = (lambda v: is_number(v) and v > 0), "a number > 0"
non_negative = (lambda v: is_number(v) and v >= 0), "a number >= 0"
positive_int = (lambda v: is_int(v) and v > 0), "an integer > 0"
non_negative_int = (lambda v: is_int(v) and v >= 0), "an integer >= 0"


def one_device(value) -> bool:
    """1, or [k]: the k-th device. More than one would start Lightning's DDP, which the harness does not do
    (one loader for all ranks, DDP hooks inside a captured graph, every rank writing the run directory)."""
    if is_int(value):
        return value == 1
    return (
        hasattr(value, "__len__")
        and not isinstance(value, str)
        and len(value) == 1
        and is_int(value[0])
        and value[0] >= 0
    )


def check_rules(node, schema: type, prefix: str) -> None:
    """Applies every field's rule to a composed config node (recursing into nested dataclasses)."""
    for spec in fields(schema):
        key, value = f"{prefix}.{spec.name}" if prefix else spec.name, node[spec.name]
        if is_dataclass(spec.type):
            check_rules(value, spec.type, key)
        elif "check" in spec.metadata and not spec.metadata["check"](value):
            shown = list(value) if hasattr(value, "__iter__") and not isinstance(value, str) else value
            raise UserError(f"{key} must be {spec.metadata['expected']}, got {shown!r}")


@dataclass
class TopConfig:
    seed: int = rule(*non_negative_int)
    name: str = MISSING
    runs_root: str = MISSING
    dry_run: bool = MISSING


@dataclass
class OptimConfig:
    lr: float = rule(*positive)
    momentum: float = rule(lambda v: 0 <= v < 1, "in [0, 1)")
    weight_decay: float = rule(*non_negative)
    nesterov: bool = MISSING
    milestones: list[int] = rule(
        lambda v: all(m > 0 for m in v) and list(v) == sorted(v), "increasing positive iterations"
    )
    gamma: float = rule(*positive)
    warmup: Any = rule(*one_of("auto", True, False))
    warmup_steps: int = rule(*non_negative_int)
    warmup_lr: float = rule(*positive)
    warmup_shape: str = rule(*one_of("constant", "linear"))
    fixup_scalar_lr: float = rule(*positive)


@dataclass
class DataConfig:
    root: str = MISSING
    download: bool = MISSING
    num_classes: int = rule(*positive_int)
    batch_size: int = rule(*positive_int)
    eval_batch_size: int = rule(*positive_int)
    val_size: int = rule(*non_negative_int)
    split_seed: int = MISSING
    pad: int = rule(*non_negative_int)
    flip: bool = MISSING
    drop_last: bool = MISSING
    test_size: int | None = rule(
        lambda v: v is None or (is_int(v) and v > 0), "null (all test images) or an integer > 0"
    )


@dataclass
class TrainerConfig:
    max_steps: int = rule(*positive_int)
    log_every: int = rule(*positive_int)
    record_gradients: bool = MISSING
    eval_every: int | None = rule(lambda v: v is None or v > 0, "null (once per epoch) or an integer > 0")
    accelerator: str = MISSING
    devices: Any = rule(
        one_device,
        "1, or [k] for the k-th GPU (one device per run: for several GPUs, run a "
        "sweep with launcher=joblib, one run per GPU)",
    )
    precision: str = rule(*one_of(*PRECISIONS))
    deterministic: bool = MISSING
    progress_bar: Any = rule(*one_of("auto", True, False))
    spread_gpus: bool = MISSING


@dataclass
class WandbConfig:
    mode: str = rule(*one_of(*WANDB_MODES))
    project: str = MISSING
    entity: str | None = MISSING
    group: str = MISSING
    tags: list[str] = MISSING


@dataclass
class LoggerConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)
