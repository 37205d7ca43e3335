"""Weights & Biases for one run: a Lightning WandbLogger that never prompts and always finishes.

metrics.csv stays the source of truth; W&B receives the same rows (step = iteration) for dashboards,
grouped per sweep. Mode `auto` is online when credentials exist and offline otherwise; offline runs
are uploaded later with `make wandb-sync`. No API key is ever read into the config or written anywhere.
"""

import logging
import netrc
import os
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger(__name__)

MODES = ("auto", "online", "offline", "disabled")
WANDB_HOST = "api.wandb.ai"


def has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(WANDB_HOST) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(requested: str) -> str:
    """online/offline/disabled; WANDB_MODE in the environment wins, as wandb users expect."""
    requested = os.environ.get("WANDB_MODE", requested)
    if requested == "auto":
        return "online" if has_credentials() else "offline"
    if requested == "online" and not has_credentials():
        log.warning("W&B: no credentials (WANDB_API_KEY or ~/.netrc); logging offline, sync later")
        return "offline"
    return requested


def run_name(cfg: DictConfig) -> str:
    return f"{cfg.model.arch}-{cfg.model.depth}-s{cfg.seed}"


def make_logger(cfg: DictConfig, run_dir: Path, run_id: str | None, config: dict):
    """A WandbLogger for this run, or None when W&B is disabled. run_id continues an earlier run."""
    settings = cfg.logger.wandb
    mode = resolve_mode(settings.mode)
    if mode == "disabled":
        return None
    from pytorch_lightning.loggers import WandbLogger
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")  # wandb's banner would drown the progress output
    return WandbLogger(
        save_dir=str(run_dir),
        project=settings.project,
        entity=settings.entity,
        group=settings.group,
        name=run_name(cfg),
        tags=[cfg.model.arch, f"depth-{cfg.model.depth}", *settings.tags],
        id=run_id,
        resume="allow",
        mode=mode,
        config=config,
        settings=wandb.Settings(console="off", x_disable_stats=True),
    )


def start(wandb_logger) -> dict | None:
    """Starts the W&B run now (not lazily) and returns what the summary should remember of it."""
    if wandb_logger is None:
        return None
    experiment = wandb_logger.experiment
    experiment.define_metric("*", step_metric="trainer/global_step")
    return {"id": experiment.id, "mode": experiment.settings.mode, "group": experiment.group}


def finish(wandb_logger, summary: dict, exit_code: int) -> None:
    """Copies the run's summary values and closes the W&B run, so the next job starts a new one."""
    if wandb_logger is None:
        return
    import wandb

    if wandb.run is not None:
        scalars = {key: value for key, value in summary.items() if isinstance(value, (int, float, str))}
        wandb.run.summary.update(scalars)
    wandb.finish(exit_code=exit_code)
