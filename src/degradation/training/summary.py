"""summary.json: what a run is, how it ended, its final errors and where its numbers came from."""

import sys
from datetime import UTC, datetime

import pytorch_lightning as pl
from omegaconf import DictConfig

from degradation.nets.cifar import count_parameters
from degradation.nets.registry import build_net, shortcut_name
from degradation.runs import provenance
from degradation.runs.rundir import RUNNING, RunDir, variant
from degradation.training import precision
from degradation.training.build import network_args, progress_of

FINAL_METRICS = ("train_loss", "train_err", "test_loss", "test_err", "val_loss", "val_err")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def start_summary(
    cfg: DictConfig, net, trainer: pl.Trainer, resumed: bool, config: dict, wandb_run, environment: dict
) -> dict:
    residual_twin = build_net(**{**network_args(cfg), "residual": True})
    return {
        "arch": cfg.model.arch,
        "family": cfg.model.family,
        "depth": cfg.model.depth,
        "variant": variant(config["model"]),  # what else makes it another net than the paper's ('' if nothing)
        "shortcut": shortcut_name(config["model"]),
        "seed": cfg.seed,
        "params": count_parameters(net),
        # A plain twin lacks the projection shortcuts' parameters; option A shortcuts have none.
        "residual_twin_params": count_parameters(residual_twin),
        "steps": 0,
        "max_steps": cfg.trainer.max_steps,
        "status": RUNNING,
        "resumed": resumed,
        "started_at": now(),
        "device": provenance.device_name(trainer.strategy.root_device),
        "math": precision.math_in_force(trainer.precision, cfg.trainer.precision),  # what Lightning runs, read back
        "versions": provenance.library_versions(),
        "environment": environment,  # against uv.lock: {"lock": its hash, "state": "locked" or what differs}
        "git": provenance.git_commit(),
        "slurm": provenance.slurm_job(),
        "command": " ".join(["python -m degradation.train", *sys.argv[1:]]),
        "config": config,
        "wandb": wandb_run,
    }


def finish_summary(summary: dict, run_dir: RunDir, trainer: pl.Trainer, status: str, error=None) -> dict:
    """The summary at the end of a fit: final values of every metric (for a diverged run: where it diverged)."""
    rows = run_dir.read_metrics()
    final = {}
    for metric in FINAL_METRICS:
        measured = [row[metric] for row in rows if row.get(metric) is not None]
        if measured:
            final[f"final_{metric}"] = measured[-1]
    progress = progress_of(trainer)
    step = trainer.lightning_module.train_step
    warmup_s, capture_s = getattr(step, "warmup_s", None), getattr(step, "capture_s", None)  # whole_step.WholeStep's
    return {
        **summary,
        **final,
        "steps": trainer.global_step,
        "status": status,
        **({"error": error} if error else {}),
        "finished_at": now(),
        "wall_time_s": round(progress.wall_time_s, 3),
        "train_images_per_s": progress.images_per_s and round(progress.images_per_s, 1),
        "warmup_s": warmup_s and round(warmup_s, 2),
        "capture_s": capture_s and round(capture_s, 2),
    }


def wandb_run_id(previous: dict | None) -> str | None:
    """A resumed run continues the W&B run it started."""
    return ((previous or {}).get("wandb") or {}).get("id")
