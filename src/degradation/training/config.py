"""The composed config: its schemas registered with Hydra, its checks, and what counts as the same run.

Types and per-key rules live with the keys (schema.py, nets/registry.py, speed.py); here are only the
rules that span keys. Each failure is a UserError whose message names the key, what it must be and
what it got.
"""

from dataclasses import asdict

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from degradation import schema
from degradation.conf import CONFIG_DIR
from degradation.errors import UserError
from degradation.nets.registry import FAMILIES, family_of
from degradation.runs.rundir import run_subdir, variant
from degradation.training.speed import Speed

# model.arch follows model.residual, so `model=resnet18 model.residual=false` lands in imagenet-plain-18/.
OmegaConf.register_new_resolver("plain_or_resnet", lambda residual: "resnet" if residual else "plain", replace=True)
OmegaConf.register_new_resolver(
    "run_subdir",
    lambda model, seed: run_subdir(model.family, model.arch, model.depth, seed, variant(model)),
    replace=True,
)

GROUP_SCHEMAS = {
    "optim": schema.OptimConfig,
    "data": schema.DataConfig,
    "trainer": schema.TrainerConfig,
    "logger": schema.LoggerConfig,
    "speed": Speed,
}
# Keys that say where and how a run is executed, not what it computes: a run may be resumed with others.
RUNTIME_KEYS = (
    "name",
    "runs_root",
    "logger",
    "data.root",
    "data.download",
    "data.eval_batch_size",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.progress_bar",
    "trainer.spread_gpus",
    "trainer.record_gradients",
    "dry_run",
    "jobs",  # launcher=joblib's parallel jobs
    "mps",  # launcher=joblib's GPU sharing
)


def fixup_scalar_lr_before_the_key(old: dict) -> float:
    """Before optim.fixup_scalar_lr, a Fixup net trained its scalars at the lr itself; on other nets the key does
    nothing."""
    return 1.0 if old.get("model", {}).get("branch_init") == "fixup" else 0.1


# Keys added after runs were first recorded (or dropped from a family they never applied to), with the
# value every older run had (or a function of the older run's whole config that gives it): a run directory
# made before is still resumed or skipped by the same command.
ADDED_KEYS = {
    "model.family": "cifar",
    "model.residual_scale": 1.0,
    "model.stride_in": "3x3",
    "model.shortcut": "B",
    "model.block": "original",
    "model.norm": "bn",
    "model.branch_init": "none",
    "model.drop_path": 0.0,
    "model.activation": "relu",
    "model.conv": "standard",
    "optim.warmup_shape": "constant",
    "optim.fixup_scalar_lr": fixup_scalar_lr_before_the_key,
    "data.test_size": None,
    **{f"speed.{key}": off for key, off in asdict(Speed()).items()},  # every switch was added off
}
ABSENT = object()
WARMUP_AUTO_MIN_DEPTH = 110  # the paper warms up ResNet-110 (and 1202); shallower nets start at 0.1


def register_schemas() -> None:
    """Makes the dataclasses the schemas that conf/'s group files extend (`/schema/<group>@_here_`)."""
    store = ConfigStore.instance()
    for group, node in GROUP_SCHEMAS.items():
        store.store(group="schema", name=group, node=node)
    for name, family in FAMILIES.items():
        store.store(group="schema/model", name=name, node=family.schema)


register_schemas()


def compose_config(overrides: list[str]) -> DictConfig:
    """The real config tree with overrides, as `python -m degradation.train` composes it (for the bench and tests)."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name="train", overrides=list(overrides))


def check_config(cfg: DictConfig) -> None:
    schema.check_rules(cfg, schema.TopConfig, "")
    schema.check_rules(cfg.model, OmegaConf.get_type(cfg.model), "model")  # its family's schema
    family_of(cfg.model).check(cfg.model)
    for group, node in GROUP_SCHEMAS.items():
        schema.check_rules(cfg[group], node, group)
    if cfg.speed.cudnn_benchmark and cfg.trainer.deterministic:
        raise UserError(
            "speed.cudnn_benchmark must be false when trainer.deterministic=true "
            "(benchmarked kernels are not bitwise repeatable), got True"
        )
    if "mps" in cfg and not isinstance(cfg.mps, bool):  # launcher=joblib's key (conf/launcher/joblib.yaml)
        raise UserError(f"mps must be true or false, got {cfg.mps!r}")
    if cfg.speed.cuda_graphs and cfg.trainer.precision == "16-mixed":
        raise UserError(
            "speed.cuda_graphs needs trainer.precision other than 16-mixed (its gradient scaler "
            "reads on the host whether gradients are finite, every step): use bf16-mixed"
        )


def warmup_steps(cfg: DictConfig) -> int:
    """Warm-up iterations in effect: optim.warmup=auto turns it on for depth >= 110, as in the paper."""
    warmup = cfg.optim.warmup
    on = cfg.model.depth >= WARMUP_AUTO_MIN_DEPTH if warmup == "auto" else warmup
    return cfg.optim.warmup_steps if on else 0


def config_differences(old: dict, new: dict) -> list[str]:
    """'key: old -> new' for every leaf that differs, runtime keys excepted: what makes the config `new` another
    run than the one recorded with `old` (empty: the same run)."""
    return leaf_differences(old, new, old, prefix="")


def value_before_added(path: str, old_run: dict):
    """The value a run recorded before the key `path` existed had (ABSENT for a key that was always there)."""
    before = ADDED_KEYS.get(path, ABSENT)
    return before(old_run) if callable(before) else before


def leaf_differences(old: dict, new: dict, old_run: dict, prefix: str) -> list[str]:
    """config_differences under `prefix` (old and new: the sub-trees there; old_run: the older run's whole config).
    A key only one side has is a difference, unless it was added since (ADDED_KEYS) with the value the run has."""
    changes = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        if path in RUNTIME_KEYS:
            continue
        before, after = old.get(key, ABSENT), new.get(key, ABSENT)
        if isinstance(after, dict) and (isinstance(before, dict) or before is ABSENT):
            changes += leaf_differences({} if before is ABSENT else before, after, old_run, prefix=f"{path}.")
            continue
        if before is ABSENT:
            before = value_before_added(path, old_run)  # recorded before the key existed
        elif after is ABSENT and before == value_before_added(path, old_run):
            continue  # dropped from a family it never applied to
        if before != after:
            show = lambda value: None if value is ABSENT else value  # noqa: E731
            changes.append(f"{path}: {show(before)!r} -> {show(after)!r}")
    return changes
