"""Weights & Biases for one run: a Lightning WandbLogger that never prompts and always finishes.

metrics.csv stays the source of truth; W&B receives the same rows (step = iteration) for dashboards,
grouped per sweep. Mode `auto` is online when credentials exist and offline otherwise; offline runs
are uploaded later with `make wandb-sync`. No API key is ever read into the config or written anywhere.
"""

import logging
import netrc
from contextlib import contextmanager
import os
from pathlib import Path

from omegaconf import DictConfig

from degradation.errors import one_line

log = logging.getLogger(__name__)

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


def open_run(cfg: DictConfig, run_dir: Path, run_id: str | None, config: dict):
    """(logger, what the summary remembers of it), started now; never stops the training.

    If W&B cannot start (unreachable, no network, bad API key), the run logs offline with one
    warning and stays syncable with `make wandb-sync`; if even that fails, it goes on without W&B.
    """
    try:
        wandb_logger = make_logger(cfg, run_dir, run_id, config)
        return wandb_logger, start(wandb_logger)
    except Exception as error:
        if resolve_mode(cfg.logger.wandb.mode) == "offline":
            log.warning("W&B failed (%s); this run logs to metrics.csv only", one_line(error, with_type=True))
            return None, None
        log.warning("W&B online failed (%s); logging offline instead: `make wandb-sync` uploads it later", one_line(error, with_type=True))
        finish_quietly()
    offline = cfg.copy()
    offline.logger.wandb.mode = "offline"
    try:
        with forced_mode("offline"):
            wandb_logger = make_logger(offline, run_dir, run_id, config)
            return wandb_logger, start(wandb_logger)
    except Exception as error:
        log.warning("W&B offline failed too (%s); this run logs to metrics.csv only", one_line(error, with_type=True))
        finish_quietly()
        return None, None


def finish_quietly() -> None:
    try:
        import wandb

        wandb.finish(exit_code=1, quiet=True)
    except Exception:
        pass


@contextmanager
def forced_mode(mode: str):
    """WANDB_MODE in the environment wins over the config; this overrides it for one attempt."""
    saved = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = mode
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("WANDB_MODE", None)
        else:
            os.environ["WANDB_MODE"] = saved


def start(wandb_logger) -> dict | None:
    """Starts the W&B run now (not lazily) and returns what the summary should remember of it."""
    if wandb_logger is None:
        return None
    experiment = wandb_logger.experiment
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
