"""One run's life in its run directory: lock it, plan (train, resume or skip), train, record the end.

Reads top to bottom: check the config, take the lock, skip a finished run, load the data, build the
module and the trainer, resume from the last checkpoint if there is one, train, write the summary.
"""

import gc
import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException

from degradation.errors import UserError, one_line
from degradation.runs import provenance, tracking
from degradation.runs.checkpoints import readable_checkpoint
from degradation.runs.environment import LOCKED, environment_record
from degradation.runs.lock import RunLock
from degradation.runs.rundir import COMPLETED, DIVERGED, FAILED, FINISHED, INTERRUPTED, RunDir
from degradation.training import build
from degradation.training.callbacks import (
    CheckpointOnSignal,
    LockHeartbeat,
    Preempted,
    RecordGradients,
    RecordResponses,
)
from degradation.training.config import check_config, config_differences
from degradation.training.module import Diverged
from degradation.training.summary import finish_summary, now, start_summary, wandb_run_id

log = logging.getLogger("degradation.train")


def train(cfg: DictConfig, run_dir: RunDir) -> dict:
    check_config(cfg)
    if cfg.dry_run:
        return plan(cfg, run_dir)
    lock = RunLock(run_dir.path)
    lock.acquire()  # two processes never train one run directory
    try:
        previous = previous_summary(cfg, run_dir)
        if previous is not None and previous["status"] in FINISHED:
            log.info(
                "%s already %s; nothing to do (choose another name= to train again)", run_dir.path, previous["status"]
            )
            return previous
        return train_locked(cfg, run_dir, lock, previous)
    finally:
        lock.release()
        release_device_memory()


def release_device_memory() -> None:
    """Frees what a run held on the GPU before the next run of a local sweep starts in this process.

    The Trainer and module form reference cycles that only a collection frees; compiled code and
    CUDA graphs keep their memory pools until dynamo is reset (a later run compiles again; a reset
    with nothing compiled costs nothing); cuBLAS keeps a workspace per stream it ran on until told
    to let go (torch has no public call for it).
    """
    torch._dynamo.reset()
    gc.collect()
    if torch.cuda.is_initialized():
        torch._C._cuda_clearCublasWorkspaces()
        torch.cuda.empty_cache()


def planned_action(cfg: DictConfig, run_dir: RunDir) -> str:
    """What running this config in this directory would do: train, resume, skip (<status>) or elsewhere
    (another process trains it now); refuses a directory made by another config."""
    previous = previous_summary(cfg, run_dir)
    if previous is not None and previous["status"] in FINISHED:
        return f"skip ({previous['status']})"
    if RunLock(run_dir.path).live_holder():
        return "elsewhere"
    return "resume" if run_dir.last_checkpoint.is_file() else "train"


def plan(cfg: DictConfig, run_dir: RunDir) -> dict:
    """What a run would do, for dry runs: nothing is trained or written."""
    action = planned_action(cfg, run_dir)
    log.info("dry run: would %s %s", action, run_dir.path)
    run_dir.discard_if_empty(runs_root=Path(cfg.runs_root))
    return {"status": f"would {action}"}


def previous_summary(cfg: DictConfig, run_dir: RunDir) -> dict | None:
    previous = run_dir.read_summary()
    if previous is not None:
        check_same_run(previous, cfg, run_dir)
    return previous


def check_same_run(previous: dict, cfg: DictConfig, run_dir: RunDir) -> None:
    """A run directory is resumed or skipped only by the config that made it."""
    changed = config_differences(previous["config"], OmegaConf.to_container(cfg, resolve=True))
    if changed:
        raise UserError(
            f"{run_dir.path} holds a run with a different config ({'; '.join(changed[:3])}): "
            "pass another name=... to keep both runs, or the run's own values to resume it"
        )


def train_locked(cfg: DictConfig, run_dir: RunDir, lock: RunLock, previous: dict | None) -> dict:
    log.info(
        "run directory %s (%s-%d, seed %d, %d steps)",
        run_dir.path,
        cfg.model.arch,
        cfg.model.depth,
        cfg.seed,
        cfg.trainer.max_steps,
    )
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    datamodule = build.build_datamodule(cfg)
    datamodule.setup()  # data errors surface here, before anything is trained
    module = build.build_module(cfg, datamodule.eval_names)
    config = OmegaConf.to_container(cfg, resolve=True)
    environment = checked_environment()
    wandb_run = tracking.open_run(cfg, run_dir.path, wandb_run_id(previous), {**config, "environment": environment})
    on_signal = CheckpointOnSignal(run_dir.last_checkpoint)
    callbacks = [LockHeartbeat(lock), on_signal, RecordResponses(run_dir)]  # the last one: Figure 7's data
    if cfg.trainer.record_gradients:
        callbacks.insert(-1, RecordGradients(run_dir, cfg.trainer.log_every))
    trainer = build.build_trainer(cfg, run_dir, datamodule, wandb_run.logger, callbacks)
    checkpoint = resume_point(run_dir)

    summary = start_summary(cfg, module.net, trainer, checkpoint is not None, config, wandb_run.record, environment)
    run_dir.write_config(OmegaConf.to_yaml(cfg, resolve=True))
    run_dir.write_summary(summary)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint)
        summary = finish_summary(summary, run_dir, trainer, COMPLETED)
        log.info(
            "completed: test error %.2f%%, train error %.2f%%", summary["final_test_err"], summary["final_train_err"]
        )
    except Diverged as diverged:
        summary = finish_summary(summary, run_dir, trainer, DIVERGED, error=str(diverged))
        log.warning("diverged: %s; the last checkpoint and the metrics before it are kept", diverged)
    except SIGTERMException:
        raise end_preempted(run_dir, summary, trainer, on_signal, wandb_run) from None
    except BaseException as error:
        if on_signal.signum is not None:
            # The signal went to every process of the job (SLURM's way) and took down a helper this run relied on
            # (a compiler of torch.compile, the MPS daemon): a preemption, resumed from the last checkpoint.
            raise end_preempted(run_dir, summary, trainer, on_signal, wandb_run, error) from None
        status = FAILED if isinstance(error, Exception) else INTERRUPTED
        record_end(run_dir, {**summary, "status": status, "error": f"{type(error).__name__}: {error}"}, wandb_run)
        raise
    run_dir.write_summary(summary)
    wandb_run.finish(summary, exit_code=0)
    return summary


def checked_environment() -> dict:
    """This environment against uv.lock, said once in the log when it is not the tested set."""
    record = environment_record()
    if record["state"] != LOCKED:
        log.warning(
            "this environment is not uv.lock's tested set: %s (`make install` installs the lock); the run "
            "goes on and summary.json records it",
            record["state"],
        )
    return record


def end_preempted(
    run_dir: RunDir,
    summary: dict,
    trainer: pl.Trainer,
    on_signal: CheckpointOnSignal,
    wandb_run,
    error: BaseException | None = None,
) -> Preempted:
    """Records a run stopped by a preemption signal; the exit that hands it over to its requeue (or a rerun)."""
    stopped = f"stopped by {on_signal.signal_name} at step {trainer.global_step}"
    if error is None:
        stopped += "; checkpoint saved"
    else:
        stopped += f" ({one_line(error, with_type=True)} after the signal); it resumes from its last checkpoint"
    record_end(
        run_dir,
        {**summary, "steps": trainer.global_step, "status": INTERRUPTED, "error": stopped},
        wandb_run,
        preempted=True,
    )
    log.warning("%s: run the same command again to resume", stopped)
    return Preempted(on_signal.signum)


def record_end(run_dir: RunDir, summary: dict, wandb_run, preempted: bool = False) -> None:
    """Best effort for a run that did not complete: the disk may be full or the directory gone."""
    try:
        run_dir.write_summary(summary)
    except OSError as error:
        log.warning("could not record status %s in %s: %s", summary["status"], run_dir.summary_path, error)
    wandb_run.finish({"status": summary["status"]}, exit_code=1, preempted=preempted)


def record_failure(cfg: DictConfig, run_dir: RunDir, error: Exception) -> None:
    """A run that could not start, in a job that nobody watches (a SLURM job): a summary says failed and why, so
    the sweep's table reports it and a rerun tries again. A run that has a summary keeps it (its status already
    says it did not finish; another config's run is never touched)."""
    if run_dir.read_summary() is not None:
        return
    run_dir.write_summary(
        {
            "arch": cfg.model.arch,
            "family": cfg.model.family,
            "depth": cfg.model.depth,
            "seed": cfg.seed,
            "steps": 0,
            "max_steps": cfg.trainer.max_steps,
            "status": FAILED,
            "error": one_line(error),
            "started_at": now(),
            "slurm": provenance.slurm_job(),
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
    )


def resume_point(run_dir: RunDir) -> str | None:
    """The newest readable checkpoint, if any; metrics logged after it are dropped (they will be logged again)."""
    found = readable_checkpoint(run_dir.last_checkpoint)
    if found is None:
        if any(run_dir.checkpoint_dir.glob("*.corrupt")):
            log.warning("no readable checkpoint in %s: restarting from step 0", run_dir.checkpoint_dir)
        run_dir.metrics_path.unlink(missing_ok=True)  # rows of an attempt that never reached a checkpoint
        run_dir.gradients_path.unlink(missing_ok=True)
        return None
    path, step = found
    run_dir.drop_metrics_after(step)
    run_dir.drop_gradients_after(step)
    log.info("resuming %s from %s (step %d)", run_dir.path, path.name, step)
    return str(path)
