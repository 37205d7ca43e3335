"""The paper's training protocol as a LightningModule: schedule, evaluation, rows of metrics, checkpoint state.

SGD with momentum and weight decay; the learning rate is a function of the iteration (not the
epoch): an optional warm-up, then base_lr divided by 10 at each milestone. The step's arithmetic is
step.TrainStep (manual optimization), the same code the bench's bare loop runs; with
speed.cuda_graphs, whole_step.WholeStep replays it as one CUDA graph. Loss and error are
summed on the device and read back only when a row of metrics is logged, so training never waits
on the host between logs.
"""

import math
from contextlib import contextmanager
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from degradation.nets.registry import build_net
from degradation.training.speed import Speed, autocast
from degradation.training.step import Tally, TrainStep
from degradation.training.whole_step import EvalForward, WholeStep


@dataclass(frozen=True)
class LrSchedule:
    """Learning rate at each iteration: warm-up, then step decay at fixed iterations."""

    base_lr: float = 0.1
    milestones: tuple[int, ...] = (32_000, 48_000)
    gamma: float = 0.1
    warmup_steps: int = 0
    warmup_lr: float = 0.01
    warmup_shape: str = "constant"  # the paper's: warmup_lr throughout; "linear": warmup_lr rising towards base_lr

    def lr_at(self, step: int) -> float:
        """The rate used by the optimizer step with 0-based index `step`."""
        if step < self.warmup_steps:
            if self.warmup_shape == "linear":
                return self.warmup_lr + (self.base_lr - self.warmup_lr) * step / self.warmup_steps
            return self.warmup_lr
        decays = sum(step >= milestone for milestone in self.milestones)
        return self.base_lr * self.gamma**decays


class Diverged(RuntimeError):
    """The loss became NaN or infinite; the last checkpoint predates it."""

    def __init__(self, step: int, metric: str):
        super().__init__(f"{metric} is not finite at step {step}")
        self.step = step


def row_due(step: int, every: int, max_steps: int) -> bool:
    """Whether iteration `step` writes a metrics row (and the rows that go with it): every `every`, and the last."""
    return step % every == 0 or step >= max_steps


@contextmanager
def counted_as_a_step(optimizer):
    """Counts what runs inside as one optimizer step of manual optimization (trainer.global_step), for a step that
    bypasses LightningOptimizer.step. Lightning counts in two private hooks that LightningOptimizer.step calls; this
    is the one place the harness calls them, and tests/training/test_lightning_seam.py fails, with one line, when a
    Lightning release changes what they do."""
    optimizer._on_before_step()
    yield
    optimizer._on_after_step()


def parameter_groups(net: nn.Module, fixup_scalar_lr: float) -> list[dict]:
    """The optimizer's parameter groups, each with the factor its lr is of the schedule's (`lr_factor`): one group,
    except in a Fixup net, whose biases and multipliers (Fixup's scalars, the classifier's bias) train at
    fixup_scalar_lr times the lr, as Zhang et al.'s code trains every parameter named bias or scale."""
    if getattr(net, "fixup", None) is not True:
        return [{"params": list(net.parameters()), "lr_factor": 1.0}]
    scalar, other = [], []
    for name, parameter in net.named_parameters():
        (scalar if "bias" in name or "scale" in name else other).append(parameter)
    return [{"params": other, "lr_factor": 1.0}, {"params": scalar, "lr_factor": fixup_scalar_lr}]


class ClassifierModule(pl.LightningModule):
    """Trains a network with the paper's protocol and logs one row of metrics per log/eval step.

    net: keyword arguments of nets.registry.build_net. optim: lr, momentum, weight_decay, nesterov and the
    schedule's milestones, gamma, warmup_steps, warmup_lr, warmup_shape. Rows go to every attached logger
    with the iteration as step: train_loss/train_err/lr every `log_every` steps, and
    <name>_loss/<name>_err for each evaluation set in `eval_names` after each evaluation.
    speed: the switches of speed.Speed (layout, compilation, fused SGD, per-step host sync).
    """

    def __init__(
        self,
        net: dict,
        optim: dict,
        log_every: int = 100,
        eval_names: tuple[str, ...] = ("test",),
        speed: dict | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False  # the step is step.TrainStep's
        self.speed = Speed.of(speed)
        self.speed_applied = False
        self.net = build_net(**net)
        self.schedule = LrSchedule(
            base_lr=optim["lr"],
            milestones=tuple(optim["milestones"]),
            gamma=optim["gamma"],
            warmup_steps=optim["warmup_steps"],
            warmup_lr=optim["warmup_lr"],
            warmup_shape=optim.get("warmup_shape", "constant"),  # older checkpoints lack the key
        )
        self.log_every, self.eval_names = log_every, tuple(eval_names)
        self.train_tally = Tally()
        self.eval_tallies: list[Tally] = []
        self.train_step: TrainStep | None = None  # made when training starts, around Lightning's optimizer
        self.eval_forward: EvalForward | None = None  # made at the first evaluation
        self.latest_errors: dict[str, float] = {}  # of the latest rows, for progress lines and the bar (host floats)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.speed.layout(images))

    def configure_model(self) -> None:
        """Applies the layout and compilation switches once; parameter names stay those of the network."""
        if self.speed_applied:  # Lightning may call this hook more than once
            return
        self.speed_applied = True
        self.speed.apply_to_net(self.net)

    # --- training ---------------------------------------------------------------------------

    def on_train_start(self) -> None:
        optimizer = self.optimizers()
        if self.speed.cuda_graphs:
            self.train_step = WholeStep(
                self.net,
                optimizer.optimizer,
                self.speed,
                self.train_tally,
                batch_size=self.trainer.datamodule.batch_size,
                autocast=self.graph_autocast,
            )
        else:
            # Lightning's optimizer wrapper counts the steps and applies the precision plugin; its
            # autocast is already around training_step, so the step adds none of its own.
            self.train_step = TrainStep(
                self.net, optimizer, self.speed, self.train_tally, backward=self.manual_backward
            )

    def graph_autocast(self):
        """Mixed precision inside a captured graph: Lightning's autocast caches casts, which a graph must not."""
        return autocast(self.device, self.trainer.precision, cache_enabled=False)

    def training_step(self, batch, batch_idx) -> None:
        images, labels = batch
        lr = self.schedule.lr_at(self.global_step)
        if isinstance(self.train_step, WholeStep):
            with counted_as_a_step(self.optimizers()):  # a replayed graph steps the raw optimizer
                self.train_step(images, labels, lr=lr)
        else:
            self.train_step(images, labels, lr=lr)
        self.end_of_step(self.global_step)  # global_step counts the update just made

    def end_of_step(self, step: int) -> None:
        """The training row, when one is due; written here so that every callback sees it at this step."""
        last_step = step >= self.trainer.max_steps
        if row_due(step, self.log_every, self.trainer.max_steps):
            loss, error = self.train_tally.read()
            self.log_row(train_loss=loss, train_err=error, lr=self.schedule.lr_at(step - 1))
            self.stop_if_diverged(train_loss=loss)
        if last_step:
            self.trainer.should_stop = True  # makes Lightning evaluate (and checkpoint) this final step

    def configure_optimizers(self):
        optim = self.hparams.optim
        return self.speed.optimizer(
            parameter_groups(self.net, optim.get("fixup_scalar_lr", 1.0)),  # as before the key (ADDED_KEYS)
            lr=self.schedule.base_lr,
            momentum=optim["momentum"],
            weight_decay=optim["weight_decay"],
            nesterov=optim["nesterov"],
        )

    # --- evaluation -------------------------------------------------------------------------

    def on_validation_epoch_start(self) -> None:
        self.eval_tallies = [Tally() for _ in self.eval_names]
        if self.eval_forward is None:
            self.eval_forward = EvalForward(
                self.net,
                self.speed.layout,
                self.trainer.datamodule.eval_batch_size,
                graph=self.speed.cuda_graphs,
                autocast=self.graph_autocast,
            )

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        images, labels = batch
        logits = self.eval_forward(images)
        self.eval_tallies[dataloader_idx].add(F.cross_entropy(logits, labels), logits, labels)

    def on_validation_epoch_end(self) -> None:
        row = {}
        for name, tally in zip(self.eval_names, self.eval_tallies):
            row[f"{name}_loss"], row[f"{name}_err"] = tally.read()
        self.log_row(**row)
        # Checked before the checkpoint callback runs, so no checkpoint ever holds diverged weights.
        # The open training window is checked too: it may have diverged since its last row.
        open_window_loss = self.train_tally.peek_loss()
        self.stop_if_diverged(**row, open_train_window_loss=open_window_loss)

    def stop_if_diverged(self, **values: float) -> None:
        for name, value in values.items():
            if value is not None and not math.isfinite(value):
                raise Diverged(self.global_step, name)

    # --- logging and checkpoint state -------------------------------------------------------

    def log_row(self, **metrics: float) -> None:
        """Hands metrics for the current iteration to every logger; rows at one step are merged there."""
        self.latest_errors.update({name: value for name, value in metrics.items() if name.endswith("_err")})
        # The epoch of the step just taken, from the step: Lightning's own counter runs one ahead after a resume
        # from a checkpoint taken at an epoch's last step.
        metrics["epoch"] = max(self.global_step - 1, 0) // self.trainer.num_training_batches
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.global_step)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["train_tally"] = self.train_tally.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.train_tally.load_state_dict(checkpoint["train_tally"])
