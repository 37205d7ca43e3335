"""Config -> objects: the data module, the Lightning module and the Trainer of one run.

What training, the bench and the tests build runs from; nothing here runs anything.
"""

import sys

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.plugins.environments import SLURMEnvironment

from degradation.data.cifar10 import CifarDataModule
from degradation.nets.registry import net_args
from degradation.runs.provenance import pick_device
from degradation.runs.rundir import METRIC_COLUMNS, VAL_COLUMNS, RunDir
from degradation.training.callbacks import MetricsCsvLogger
from degradation.training.checkpoint_io import AtomicCheckpointIO
from degradation.training.config import warmup_steps
from degradation.training.module import ClassifierModule
from degradation.training.precision import run_precision
from degradation.training.progress import Bar, Progress
from degradation.training.speed import Speed


def section(cfg: DictConfig, name: str, leave_out: tuple[str, ...] = ()) -> dict:
    """A config group as plain keyword arguments, without the keys its consumer does not take."""
    return {
        key: value for key, value in OmegaConf.to_container(cfg[name], resolve=True).items() if key not in leave_out
    }


def build_datamodule(cfg: DictConfig) -> CifarDataModule:
    return CifarDataModule(**section(cfg, "data", leave_out=("num_classes",)), seed=cfg.seed)


def network_args(cfg: DictConfig) -> dict:
    """What nets.registry.build_net makes this config's network from."""
    return net_args(OmegaConf.to_container(cfg.model, resolve=True), cfg.data.num_classes)


def optimizer_args(cfg: DictConfig) -> dict:
    """The optimizer's values and the schedule's, with the warm-up in effect for this depth."""
    return {**section(cfg, "optim", leave_out=("warmup",)), "warmup_steps": warmup_steps(cfg)}


def precision_of(cfg: DictConfig) -> str:
    """trainer.precision as this run uses it on its device (`auto` resolved; precision.run_precision)."""
    return run_precision(cfg.trainer.precision, pick_device(cfg.trainer.accelerator))


def build_speed(cfg: DictConfig) -> Speed:
    return Speed.of(OmegaConf.to_container(cfg.speed))


def build_module(cfg: DictConfig, eval_names: list[str]) -> ClassifierModule:
    return ClassifierModule(
        network_args(cfg),
        optimizer_args(cfg),
        log_every=cfg.trainer.log_every,
        eval_names=tuple(eval_names),
        speed=build_speed(cfg).as_dict(),
    )


def build_trainer(
    cfg: DictConfig, run_dir: RunDir, datamodule: CifarDataModule, wandb_logger=None, callbacks: list[pl.Callback] = ()
) -> pl.Trainer:
    settings = cfg.trainer
    columns = METRIC_COLUMNS + (VAL_COLUMNS if "val" in datamodule.eval_names else ())
    loggers = [MetricsCsvLogger(run_dir.metrics_writer(columns))] + ([wandb_logger] if wandb_logger else [])
    checkpoint = pl.callbacks.ModelCheckpoint(
        dirpath=run_dir.checkpoint_dir,
        filename=run_dir.last_checkpoint.stem,  # keep exactly one file, replaced after every evaluation
        save_top_k=1,
        monitor=None,
        enable_version_counter=False,
        save_on_train_epoch_end=False,
    )
    bar = sys.stderr.isatty() if settings.progress_bar == "auto" else bool(settings.progress_bar)
    speed = build_speed(cfg)
    speed.apply_to_process()
    progress = Progress(every=settings.log_every, batch_size=cfg.data.batch_size, bar=bar)
    return pl.Trainer(
        max_steps=settings.max_steps,
        max_epochs=-1,
        val_check_interval=settings.eval_every or datamodule.steps_per_epoch,
        check_val_every_n_epoch=None,  # evaluation counted in iterations, across epochs
        num_sanity_val_steps=0,
        accelerator=settings.accelerator,
        devices=settings.devices if pick_device(settings.accelerator).type == "cuda" else 1,  # [k] names a GPU
        precision=precision_of(cfg),
        deterministic=settings.deterministic,
        benchmark=speed.cudnn_benchmark,
        logger=loggers,
        callbacks=[checkpoint, progress, *([Bar(progress)] if bar else []), *callbacks],
        # On SLURM, submitit requeues preempted jobs and the run resumes from last.ckpt; Lightning's
        # own requeue would compete with it.
        plugins=[AtomicCheckpointIO(), *([SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else [])],
        log_every_n_steps=settings.log_every,
        enable_progress_bar=bar,
        enable_model_summary=bar,
        default_root_dir=run_dir.path,
    )


def progress_of(trainer: pl.Trainer) -> Progress:
    return next(callback for callback in trainer.callbacks if isinstance(callback, Progress))
