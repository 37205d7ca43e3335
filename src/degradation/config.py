"""Checks of a composed config, beyond what Hydra's strict keys already catch.

Each failure is a UserError whose message names the key, what it must be and what it got.
"""

from omegaconf import DictConfig, OmegaConf

from degradation.errors import UserError
from degradation.imagenet_resnets import BLOCKS, STRIDE_IN, valid_depths
from degradation.models import SHORTCUTS, InvalidDepthError, blocks_per_stage
from degradation.module import SPEED_OFF
from degradation.networks import FAMILIES
from degradation.tracking import MODES

# model.arch follows model.residual, so `model=resnet18 model.residual=false` lands in plain-18/.
OmegaConf.register_new_resolver("plain_or_resnet", lambda residual: "resnet" if residual else "plain", replace=True)

WARMUP_CHOICES = ("auto", True, False)
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")  # Lightning's names
# Keys that say where and how a run is executed, not what it computes: a run may be resumed with others.
RUNTIME_KEYS = ("name", "runs_root", "logger", "data.root", "data.download", "data.eval_batch_size",
                "trainer.accelerator", "trainer.devices", "trainer.progress_bar", "trainer.spread_gpus",
                "dry_run")
# Keys added after runs were first recorded, with the value every older run had: a run directory made
# before a key existed is still resumed or skipped by the same command.
ADDED_KEYS = {
    "model.family": "cifar", "model.residual_scale": 1.0, "model.stride_in": "3x3",
    **{f"speed.{key}": off for key, off in SPEED_OFF.items()},  # every switch was added off
}
ABSENT = object()
WARMUP_AUTO_MIN_DEPTH = 110  # the paper warms up ResNet-110 (and 1202); shallower nets start at 0.1


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def require(ok: bool, key: str, expected: str, value) -> None:
    if not ok:
        raise UserError(f"{key} must be {expected}, got {value!r}")


def check_config(cfg: DictConfig) -> None:
    require(is_int(cfg.seed), "seed", "an integer", cfg.seed)
    check_model(cfg.model)
    check_optim(cfg.optim)
    check_data(cfg.data)
    check_trainer(cfg.trainer)
    check_speed(cfg.speed, cfg.trainer)
    check_logger(cfg.logger)


def check_model(model: DictConfig) -> None:
    require(model.family in FAMILIES, "model.family", f"one of {', '.join(FAMILIES)}", model.family)
    if model.family == "cifar":
        try:
            blocks_per_stage(model.depth)
        except InvalidDepthError as error:
            raise UserError(f"model.{error}") from None
        require(model.shortcut in SHORTCUTS, "model.shortcut", f"one of {', '.join(SHORTCUTS)}", model.shortcut)
    else:
        require(model.depth in BLOCKS, "model.depth", f"one of {valid_depths()} for family imagenet", model.depth)
        require(model.shortcut == "B", "model.shortcut", "B (projections) for family imagenet", model.shortcut)
    require(isinstance(model.residual, bool), "model.residual", "true or false", model.residual)
    require(model.stride_in in STRIDE_IN, "model.stride_in", f"one of {', '.join(STRIDE_IN)}", model.stride_in)
    require(
        isinstance(model.residual_scale, (int, float)) and not isinstance(model.residual_scale, bool)
        and model.residual_scale >= 0,
        "model.residual_scale",
        "a number >= 0",
        model.residual_scale,
    )


def check_optim(optim: DictConfig) -> None:
    positive = lambda value: isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0  # noqa: E731
    require(positive(optim.lr), "optim.lr", "a number > 0", optim.lr)
    require(positive(optim.warmup_lr), "optim.warmup_lr", "a number > 0", optim.warmup_lr)
    require(positive(optim.gamma), "optim.gamma", "a number > 0", optim.gamma)
    require(
        isinstance(optim.momentum, (int, float)) and 0 <= optim.momentum < 1,
        "optim.momentum",
        "in [0, 1)",
        optim.momentum,
    )
    require(
        isinstance(optim.weight_decay, (int, float)) and optim.weight_decay >= 0,
        "optim.weight_decay",
        "a number >= 0",
        optim.weight_decay,
    )
    milestones = list(optim.milestones)
    require(
        all(is_int(m) and m > 0 for m in milestones) and milestones == sorted(milestones),
        "optim.milestones",
        "increasing positive iterations",
        milestones,
    )
    require(optim.warmup in WARMUP_CHOICES, "optim.warmup", "auto, true or false", optim.warmup)
    require(is_int(optim.warmup_steps) and optim.warmup_steps >= 0, "optim.warmup_steps", "an integer >= 0", optim.warmup_steps)


def check_data(data: DictConfig) -> None:
    for key in ("batch_size", "eval_batch_size"):
        require(is_int(data[key]) and data[key] > 0, f"data.{key}", "an integer > 0", data[key])
    require(is_int(data.val_size) and data.val_size >= 0, "data.val_size", "an integer >= 0", data.val_size)
    require(is_int(data.pad) and data.pad >= 0, "data.pad", "an integer >= 0", data.pad)


def check_logger(logger: DictConfig) -> None:
    require(logger.wandb.mode in MODES, "logger.wandb.mode", f"one of {', '.join(MODES)}", logger.wandb.mode)


def check_trainer(trainer: DictConfig) -> None:
    require(trainer.progress_bar in ("auto", True, False), "trainer.progress_bar", "auto, true or false", trainer.progress_bar)
    require(trainer.precision in PRECISIONS, "trainer.precision", f"one of {', '.join(PRECISIONS)}", trainer.precision)
    require(is_int(trainer.max_steps) and trainer.max_steps > 0, "trainer.max_steps", "an integer > 0", trainer.max_steps)
    require(is_int(trainer.log_every) and trainer.log_every > 0, "trainer.log_every", "an integer > 0", trainer.log_every)
    require(
        trainer.eval_every is None or (is_int(trainer.eval_every) and trainer.eval_every > 0),
        "trainer.eval_every",
        "null (once per epoch) or an integer > 0",
        trainer.eval_every,
    )


def check_speed(speed: DictConfig, trainer: DictConfig) -> None:
    for key, value in speed.items():
        require(isinstance(value, bool), f"speed.{key}", "true or false", value)
    require(
        not (speed.cudnn_benchmark and trainer.deterministic),
        "speed.cudnn_benchmark",
        "false when trainer.deterministic=true (benchmarked kernels are not bitwise repeatable)",
        speed.cudnn_benchmark,
    )


def warmup_steps(cfg: DictConfig) -> int:
    """Warm-up iterations in effect: optim.warmup=auto turns it on for depth >= 110, as in the paper."""
    warmup = cfg.optim.warmup
    on = cfg.model.depth >= WARMUP_AUTO_MIN_DEPTH if warmup == "auto" else warmup
    return cfg.optim.warmup_steps if on else 0


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """'key: old -> new' for every leaf that differs, runtime keys excepted."""
    changes = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        if path in RUNTIME_KEYS:
            continue
        before, after = old.get(key, ABSENT), new.get(key, ABSENT)
        if isinstance(after, dict) and (isinstance(before, dict) or before is ABSENT):
            changes += config_differences({} if before is ABSENT else before, after, prefix=f"{path}.")
        elif before is ABSENT and ADDED_KEYS.get(path, ABSENT) == after:
            continue
        elif before != after:
            show = lambda value: None if value is ABSENT else value  # noqa: E731
            changes.append(f"{path}: {show(before)!r} -> {show(after)!r}")
    return changes
