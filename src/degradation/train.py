"""Train one plain or residual CIFAR-10 network: `python -m degradation.train [overrides]`.

Reads top to bottom: compose and check the config, load the data, build the module and the
trainer, resume from the run directory's last checkpoint if there is one, train, write the summary.
"""

import gc
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities.exceptions import SIGTERMException
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from degradation import precision, provenance, sweep, tracking
from degradation.callbacks import CheckpointOnSignal, LockHeartbeat, Preempted, TrainTimer
from degradation.checkpoints import AtomicCheckpointIO, readable_checkpoint
from degradation.config import check_config, config_differences, warmup_steps
from degradation.data import CifarDataModule
from degradation.errors import UserError
from degradation.lock import RunLock, RunLocked
from degradation.models import count_parameters
from degradation.networks import build_net
from degradation.module import ClassifierModule, Diverged
from degradation.progress import Progress
from degradation.responses import RecordResponses
from degradation.rundir import COMPLETED, DIVERGED, FAILED, FINISHED, INTERRUPTED, METRIC_COLUMNS, RUNNING, VAL_COLUMNS, MetricsCsvLogger, RunDir

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
log = logging.getLogger("degradation.train")


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base=None)
def hydra_entry(cfg: DictConfig) -> dict | None:
    hydra_cfg = HydraConfig.get()
    run_dir = RunDir(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    if in_sweep and cfg.trainer.spread_gpus:
        sweep.assign_gpu(hydra_cfg.job.num)
    try:
        return train(cfg, run_dir)
    except RunLocked as locked:
        if not in_sweep:
            exit_with(locked)
        log.warning("skipped: %s", locked)  # a sweep goes on with the runs nobody else is training
    except OSError as error:
        # A full disk or a vanished run directory: say which file, not a traceback.
        message = f"{error.strerror or error}: {error.filename or run_dir.path}; the run stopped with its last checkpoint intact"
        if not in_sweep:
            exit_with(UserError(message), code=1)
        log.error("run failed: %s", message)
    except UserError as error:
        # Bad input stops a sweep too, before hours go into the other jobs. Exiting here, not in
        # main(), also keeps Hydra from adding lines of its own.
        run_dir.discard_if_empty(runs_root=Path(cfg.runs_root))
        exit_with(error)
    except Exception:
        if not in_sweep:
            raise
        log.exception("run failed: %s", run_dir.path)  # into this run's train.log; the sweep goes on
    return None


def train(cfg: DictConfig, run_dir: RunDir) -> dict:
    check_config(cfg)
    if cfg.dry_run:
        return plan(cfg, run_dir)
    lock = RunLock(run_dir.path)
    lock.acquire()  # two processes never train one run directory
    try:
        previous = previous_summary(cfg, run_dir)
        if previous is not None and previous["status"] in FINISHED:
            log.info("%s already %s; nothing to do (choose another name= to train again)", run_dir.path, previous["status"])
            return previous
        return train_locked(cfg, run_dir, lock, previous)
    finally:
        lock.release()
        release_device_memory()


def release_device_memory() -> None:
    """Frees what a run held on the GPU before the next run of a local sweep starts in this process.

    The Trainer and module form reference cycles that only a collection frees; compiled code and
    CUDA graphs keep their memory pools until dynamo is reset (a later run compiles again; a reset
    with nothing compiled costs nothing).
    """
    torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def plan(cfg: DictConfig, run_dir: RunDir) -> dict:
    """What a run would do, for dry runs: nothing is trained or written."""
    previous = previous_summary(cfg, run_dir)
    if previous is not None and previous["status"] in FINISHED:
        action = f"skip ({previous['status']})"
    else:
        action = "resume" if run_dir.last_checkpoint.is_file() else "train"
    log.info("dry run: would %s %s", action, run_dir.path)
    run_dir.discard_if_empty(runs_root=Path(cfg.runs_root))
    return {"status": f"would {action}"}


def previous_summary(cfg: DictConfig, run_dir: RunDir) -> dict | None:
    previous = run_dir.read_summary()
    if previous is not None:
        check_same_run(previous, cfg, run_dir)
    return previous


def train_locked(cfg: DictConfig, run_dir: RunDir, lock: RunLock, previous: dict | None) -> dict:
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    datamodule = build_datamodule(cfg)
    datamodule.setup()  # data errors surface here, before anything is trained
    module = build_module(cfg, datamodule.eval_names)
    timer = TrainTimer(cfg.data.batch_size)
    config = OmegaConf.to_container(cfg, resolve=True)
    wandb_logger, wandb_run = tracking.open_run(cfg, run_dir.path, wandb_run_id(previous), config)
    trainer = build_trainer(cfg, run_dir, datamodule, timer, wandb_logger)
    on_signal = CheckpointOnSignal(run_dir.last_checkpoint)
    trainer.callbacks += [LockHeartbeat(lock), on_signal, RecordResponses(run_dir.path)]  # Figure 7's data
    checkpoint = resume_point(run_dir)

    summary = start_summary(cfg, module, trainer, checkpoint, config)
    run_dir.write_config(OmegaConf.to_yaml(cfg, resolve=True))
    summary["wandb"] = wandb_run
    run_dir.write_summary(summary)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint)
        summary = finish_summary(summary, run_dir, trainer, timer, COMPLETED)
        log.info("completed: test error %.2f%%, train error %.2f%%", summary["final_test_err"], summary["final_train_err"])
    except Diverged as diverged:
        summary = finish_summary(summary, run_dir, trainer, timer, DIVERGED, error=str(diverged))
        log.warning("diverged: %s; the last checkpoint and the metrics before it are kept", diverged)
    except SIGTERMException:
        stopped = f"stopped by {on_signal.signal_name} at step {trainer.global_step}; checkpoint saved"
        record_end(run_dir, {**summary, "steps": trainer.global_step, "status": INTERRUPTED, "error": stopped}, wandb_logger)
        log.warning("%s: run the same command again to resume", stopped)
        raise Preempted(on_signal.signum) from None
    except BaseException as error:
        status = FAILED if isinstance(error, Exception) else INTERRUPTED
        record_end(run_dir, {**summary, "status": status, "error": f"{type(error).__name__}: {error}"}, wandb_logger)
        raise
    run_dir.write_summary(summary)
    tracking.finish(wandb_logger, summary, exit_code=0)
    return summary


def record_end(run_dir: RunDir, summary: dict, wandb_logger) -> None:
    """Best effort for a run that did not complete: the disk may be full or the directory gone."""
    try:
        run_dir.write_summary(summary)
    except OSError as error:
        log.warning("could not record status %s in %s: %s", summary["status"], run_dir.summary_path, error)
    tracking.finish(wandb_logger, {"status": summary["status"]}, exit_code=1)


def wandb_run_id(previous: dict | None) -> str | None:
    """A resumed run continues the W&B run it started."""
    return ((previous or {}).get("wandb") or {}).get("id")


def check_same_run(previous: dict, cfg: DictConfig, run_dir: RunDir) -> None:
    """A run directory is resumed or skipped only by the config that made it."""
    changed = config_differences(previous["config"], OmegaConf.to_container(cfg, resolve=True))
    if changed:
        raise UserError(
            f"{run_dir.path} holds a run with a different config ({'; '.join(changed[:3])}): "
            "pass another name=... to keep both runs"
        )


def build_datamodule(cfg: DictConfig) -> CifarDataModule:
    data = cfg.data
    return CifarDataModule(
        root=data.root,
        download=data.download,
        batch_size=data.batch_size,
        eval_batch_size=data.eval_batch_size,
        val_size=data.val_size,
        split_seed=data.split_seed,
        pad=data.pad,
        flip=data.flip,
        drop_last=data.drop_last,
        seed=cfg.seed,
    )


def net_args(cfg: DictConfig) -> dict:
    """Keyword arguments of networks.build_net for this config."""
    model = cfg.model
    return dict(
        family=model.family,
        depth=model.depth,
        residual=model.residual,
        shortcut=model.shortcut,
        num_classes=cfg.data.num_classes,
        init_mode=model.init_mode,
        residual_scale=model.residual_scale,
        stride_in=model.stride_in,
    )


def build_module(cfg: DictConfig, eval_names: list[str]) -> ClassifierModule:
    optim = cfg.optim
    optim_args = dict(
        lr=optim.lr,
        momentum=optim.momentum,
        weight_decay=optim.weight_decay,
        nesterov=optim.nesterov,
        milestones=list(optim.milestones),
        gamma=optim.gamma,
        warmup_steps=warmup_steps(cfg),
        warmup_lr=optim.warmup_lr,
    )
    speed = OmegaConf.to_container(cfg.speed)
    return ClassifierModule(net_args(cfg), optim_args, log_every=cfg.trainer.log_every, eval_names=tuple(eval_names), speed=speed)


def build_trainer(cfg, run_dir: RunDir, datamodule: CifarDataModule, timer: TrainTimer, wandb_logger) -> pl.Trainer:
    settings = cfg.trainer
    columns = METRIC_COLUMNS + (VAL_COLUMNS if "val" in datamodule.eval_names else ())
    loggers = [MetricsCsvLogger(run_dir.metrics_path, columns)] + ([wandb_logger] if wandb_logger else [])
    checkpoint = pl.callbacks.ModelCheckpoint(
        dirpath=run_dir.checkpoint_dir,
        filename=run_dir.last_checkpoint.stem,  # keep exactly one file, replaced after every evaluation
        save_top_k=1,
        monitor=None,
        enable_version_counter=False,
        save_on_train_epoch_end=False,
    )
    bar = sys.stderr.isatty() if settings.progress_bar == "auto" else bool(settings.progress_bar)
    precision.use_tf32(cfg.speed.tf32)
    progress = Progress(every=settings.log_every, batch_size=cfg.data.batch_size, bar=bar)
    return pl.Trainer(
        max_steps=settings.max_steps,
        max_epochs=-1,
        val_check_interval=settings.eval_every or datamodule.steps_per_epoch,
        check_val_every_n_epoch=None,  # evaluation counted in iterations, across epochs
        num_sanity_val_steps=0,
        accelerator=settings.accelerator,
        devices=settings.devices,
        precision=settings.precision,
        deterministic=settings.deterministic,
        benchmark=cfg.speed.cudnn_benchmark,
        logger=loggers,
        callbacks=[checkpoint, timer, progress],
        # On SLURM, submitit requeues preempted jobs and the run resumes from last.ckpt; Lightning's
        # own requeue would compete with it.
        plugins=[AtomicCheckpointIO(), *([SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else [])],
        log_every_n_steps=settings.log_every,
        enable_progress_bar=bar,
        enable_model_summary=bar,
        default_root_dir=run_dir.path,
    )


def resume_point(run_dir: RunDir) -> str | None:
    """The newest readable checkpoint, if any; metrics logged after it are dropped (they will be logged again)."""
    found = readable_checkpoint(run_dir.last_checkpoint)
    if found is None:
        if any(run_dir.checkpoint_dir.glob("*.corrupt")):
            log.warning("no readable checkpoint in %s: restarting from step 0", run_dir.checkpoint_dir)
        run_dir.metrics_path.unlink(missing_ok=True)  # rows of an attempt that never reached a checkpoint
        return None
    path, step = found
    run_dir.drop_metrics_after(step)
    log.info("resuming %s from %s (step %d)", run_dir.path, path.name, step)
    return str(path)


def start_summary(cfg, module: ClassifierModule, trainer: pl.Trainer, checkpoint, config: dict) -> dict:
    residual_twin = build_net(**{**net_args(cfg), "residual": True})
    return {
        "arch": cfg.model.arch,
        "family": cfg.model.family,
        "depth": cfg.model.depth,
        "shortcut": cfg.model.shortcut if cfg.model.residual else "none",
        "seed": cfg.seed,
        "params": count_parameters(module.net),
        # A plain twin lacks the projection shortcuts' parameters; option A shortcuts have none.
        "residual_twin_params": count_parameters(residual_twin),
        "steps": 0,
        "max_steps": cfg.trainer.max_steps,
        "status": RUNNING,
        "resumed": checkpoint is not None,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": provenance.device_name(trainer.strategy.root_device),
        "math": precision.math_in_force(trainer.precision),  # what Lightning runs, read back
        "versions": provenance.library_versions(),
        "git": provenance.git_commit(),
        "command": " ".join(["python -m degradation.train", *sys.argv[1:]]),
        "config": config,
    }


def finish_summary(summary: dict, run_dir: RunDir, trainer, timer: TrainTimer, status: str, error=None) -> dict:
    rows = run_dir.read_metrics()
    final = {}
    for metric in ("train_loss", "train_err", "test_loss", "test_err", "val_loss", "val_err"):
        measured = [row[metric] for row in rows if row.get(metric) is not None]
        if measured:
            final[f"final_{metric}"] = measured[-1]  # for a diverged run: the value where it diverged
    return {
        **summary,
        **final,
        "steps": trainer.global_step,
        "status": status,
        **({"error": error} if error else {}),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(timer.wall_time_s, 3),
        "train_images_per_s": timer.images_per_s and round(timer.images_per_s, 1),
    }


# --- the command line: one readable line for every error a user can fix --------------------


def one_line(error: Exception) -> str:
    if isinstance(error, MissingConfigException) and error.options:
        return f"{str(error).splitlines()[0]}; available: {', '.join(error.options)}"
    cause = error.__cause__
    if isinstance(error, HydraException) and isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None)
        if "not in struct" in str(cause) and key:
            return f"unknown config key '{key}' (add it with +{key}=... only if you mean to extend the config)"
        return f"{str(error).splitlines()[0]} {str(cause).splitlines()[0]}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def exit_with(error: Exception, code: int = 2) -> None:
    """Exit 2 for input the user can fix, 1 for a run that failed."""
    if os.environ.get("DEGRADATION_TRACEBACK") == "1":
        raise error
    print(f"error: {one_line(error)}", file=sys.stderr)
    sys.exit(code)


def main() -> None:
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        os.environ["DEGRADATION_TRACEBACK"] = "1"  # the user asked for full tracebacks
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let config errors reach us instead of Hydra's multi-line report
    try:
        hydra_entry()
    except (UserError, RunLocked, HydraException, OmegaConfBaseException) as error:
        exit_with(error)
    except OSError as error:  # Hydra could not create the run directory
        exit_with(UserError(f"cannot write {error.filename or 'the run directory'}: {error.strerror or error} (check runs_root)"))
    if sweep.failed_runs:
        sys.exit(1)


if __name__ == "__main__":
    main()
