"""The Lightning side of a run: its metrics.csv logger, the lock heartbeat, checkpoint on preemption, gradient
norms every log_every iterations, Figure 7's responses when training ends."""

import logging
import os
import signal
import time

import pytorch_lightning as pl
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from degradation.analysis.gradients import GradientRecorder
from degradation.analysis.responses import DEFINITION, eager_copy, response_stds
from degradation.runs.rundir import MetricsWriter, RunDir
from degradation.training.module import row_due

log = logging.getLogger(__name__)
PREEMPTION_SIGNALS = (
    signal.SIGTERM,
    signal.SIGUSR1,
    signal.SIGUSR2,
)  # what SLURM and submitit send ahead of a preemption or time limit


class MetricsCsvLogger(Logger):
    """A Lightning logger that hands every logged step to the run directory's metrics.csv writer."""

    def __init__(self, writer: MetricsWriter):
        super().__init__()
        self.writer = writer

    @property
    def name(self) -> str:
        return "metrics_csv"

    @property
    def version(self) -> str:
        return ""

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """The config is saved next to the metrics (config.yaml, summary.json); nothing to do here."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.writer.write(step, metrics)


class LockHeartbeat(pl.Callback):
    """Keeps the run directory's lock fresh, so other hosts can tell a live holder from a dead one."""

    def __init__(self, lock, every_s: float = 60.0):
        self.lock, self.every_s, self.last = lock, every_s, 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.lock.heartbeat()
            self.last = now


class Preempted(SystemExit):
    """Ends the process after a preemption signal, with the exit status a shell gives that signal."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)


class CheckpointOnSignal(pl.Callback):
    """On SIGTERM, SIGUSR1 or SIGUSR2: finish the current step, save last.ckpt, and stop.

    Lightning already turns SIGTERM into a SIGTERMException raised after the step's hooks,
    evaluation and logging; SIGUSR1 and SIGUSR2 are routed into the same path. The checkpoint is written when
    that exception passes through on_exception, where the step, its metrics rows and the loader
    position agree, so the rerun (submitit's requeue, or by hand) continues exactly there.
    """

    def __init__(self, path):
        self.path, self.signum = path, None
        self.previous_handlers, self.fitting = {}, False

    @property
    def signal_name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    def on_fit_start(self, trainer, pl_module) -> None:
        # Installed before Lightning registers its SIGTERM handler, which then calls this one too.
        self.fitting = True
        for signum in PREEMPTION_SIGNALS:
            self.previous_handlers[signum] = signal.signal(signum, self.received)

    def received(self, signum, frame) -> None:
        if not self.fitting:
            return self.pass_on(signum, frame)
        if self.signum is None:
            self.signum = signum
        if signum != signal.SIGTERM:
            os.kill(os.getpid(), signal.SIGTERM)  # Lightning's stop-after-this-step path

    def pass_on(self, signum, frame) -> None:
        """After the fit, a signal goes to the handler from before it (submitit's, which requeues a SLURM job on
        SIGUSR2): Lightning puts this handler back when it tears down, as it found it registered."""
        handler = self.previous_handlers.get(signum, signal.SIG_DFL)
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.fitting = False  # Lightning calls no teardown hook after an exception
        if not isinstance(exception, SIGTERMException) or self.signum is None:
            return
        if trainer.validating:  # half an evaluation is no state to resume from
            log.warning(
                "%s arrived during an evaluation: the rerun resumes from the previous checkpoint", self.signal_name
            )
            return
        trainer.save_checkpoint(self.path)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self.fitting = False
        for signum, handler in self.previous_handlers.items():
            if signal.getsignal(signum) == self.received:
                signal.signal(signum, handler)


class RecordResponses(pl.Callback):
    """Writes responses.json when training ends, while the Trainer still holds the run's device.

    Why a callback and not code after fit(): Lightning's teardown moves the module back to the CPU
    when fit() returns, while the test batches live on the run's device (the crash of every GPU run).
    Measured on an eager copy of the trained network placed on the run's device.
    """

    def __init__(self, run_dir: RunDir):
        self.run_dir = run_dir

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        net = eager_copy(pl_module).to(trainer.strategy.root_device)
        stds = response_stds(net, trainer.datamodule.test_loader())
        self.run_dir.write_responses(DEFINITION, stds, trainer.global_step)


class RecordGradients(pl.Callback):
    """Appends the gradient and weight norms of every conv/linear layer to gradients.csv at the steps that
    write a row of metrics (every log_every iterations and the last): the gradients are those of the step just
    taken, still in place (the next step clears them), also when that step was a replayed CUDA graph. The norms
    are taken on the device and read in one go, at row steps only."""

    def __init__(self, run_dir: RunDir, every: int):
        self.run_dir, self.every = run_dir, every
        self.recorder: GradientRecorder | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module) -> None:
        self.recorder = GradientRecorder(pl_module.net)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if row_due(step, self.every, trainer.max_steps):
            self.run_dir.append_gradients(self.recorder.read(step))
