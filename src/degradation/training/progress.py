"""What a run tells you while it trains, and its timing for the summary.

On a terminal: Lightning's progress bar, showing numbers the host already holds. Elsewhere (a log file,
SLURM, a sweep): one line every `log_every` steps or every `every_s` seconds, whichever comes first,
with the errors of the latest metrics row, and an ETA that counts the evaluations still to come; a
line before each long silent phase (an evaluation, Figure 7's responses). Every line also lands in
the run's train.log.
"""

import logging
import math
import time
import warnings

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

log = logging.getLogger("degradation.training.progress")
EVERY_S = 30.0  # a line at least this often when steps are slow


def quiet_lightning() -> None:
    """Lightning's banners (GPU/TPU available, the litlogger advert, 'fit stopped') and its own deprecation
    warnings are off: a run prints its own lines. Lightning's warnings about a run still show."""
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    logging.getLogger("lightning_fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def evaluations_left(step: int, max_steps: int, every: int) -> int:
    """Evaluations from `step` on (the one at `step` runs after its progress line): one every `every` steps,
    and one at the last step."""
    return max_steps // every - (step - 1) // every + (max_steps % every != 0)


class Progress(pl.Callback):
    def __init__(self, every: int, batch_size: int, bar: bool, every_s: float = EVERY_S):
        self.every, self.batch_size, self.bar, self.every_s = every, batch_size, bar, every_s
        self.started = self.eval_started = None
        self.last_line = 0.0
        self.wall_time_s = self.eval_time_s = 0.0
        self.evaluations = 0
        self.first_step = self.last_step = 0
        self.images_per_s_so_far: float | None = None  # training throughput at the latest line (or bar update)

    def on_train_start(self, trainer, pl_module) -> None:
        self.started = self.last_line = time.perf_counter()
        self.first_step = trainer.global_step

    def on_validation_start(self, trainer, pl_module) -> None:
        self.eval_started = time.perf_counter()
        if not self.bar:
            log.info("step %d: evaluating%s", trainer.global_step, self.expected(self.mean_eval_s()))

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.eval_started is not None:
            self.eval_time_s += time.perf_counter() - self.eval_started
            self.evaluations += 1

    def on_train_end(self, trainer, pl_module) -> None:
        self.wall_time_s = time.perf_counter() - self.started
        self.last_step = trainer.global_step
        if not self.bar:
            log.info(
                "step %d: measuring Figure 7's layer responses on the test set%s",
                trainer.global_step,
                self.expected(self.mean_eval_s()),
            )

    @property
    def images_per_s(self) -> float | None:
        """Training throughput over the whole fit, evaluation time left out."""
        train_time = self.wall_time_s - self.eval_time_s
        steps = self.last_step - self.first_step
        return steps * self.batch_size / train_time if steps and train_time > 0 else None

    def mean_eval_s(self) -> float | None:
        return self.eval_time_s / self.evaluations if self.evaluations else None

    @staticmethod
    def expected(seconds: float | None) -> str:
        return f" (about {duration(seconds)})" if seconds and seconds >= 1 else ""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step, now = trainer.global_step, time.perf_counter()
        if step % self.every and now - self.last_line < self.every_s:
            return
        self.last_line = now
        train_s = now - self.started - self.eval_time_s
        steps_per_s = (step - self.first_step) / train_s if train_s > 0 else 0.0
        self.images_per_s_so_far = steps_per_s * self.batch_size
        if self.bar:
            return  # the bar shows it (Bar)
        errors = " | ".join(f"{name} {value:.2f}%" for name, value in pl_module.latest_errors.items())
        log.info(
            "step %d/%d (%.0f%%) | %.0f img/s | %s | eta %s",
            step,
            trainer.max_steps,
            100 * step / trainer.max_steps,
            steps_per_s * self.batch_size,
            errors or "-",
            self.eta(trainer, step, steps_per_s),
        )

    def eta(self, trainer, step: int, steps_per_s: float) -> str:
        """Training steps left at the measured rate, plus the evaluations left (and the responses' test pass)
        at the measured time of one; '?' until there is a rate."""
        if not steps_per_s:
            return "?"
        left = (trainer.max_steps - step) / steps_per_s
        mean_eval_s = self.mean_eval_s()
        every = trainer.val_check_batch if isinstance(trainer.val_check_batch, int) else trainer.max_steps
        if mean_eval_s is not None and not math.isinf(every):
            left += (evaluations_left(step, trainer.max_steps, every) + 1) * mean_eval_s
        return duration(left) + ("" if mean_eval_s is not None else " + evaluations")


class Bar(TQDMProgressBar):
    """Lightning's progress bar with numbers the host already holds: the latest rows' errors and the measured
    images/s. Metrics logged to Lightning for the bar are tensors on the device, read with .item() at every
    refresh: each step would wait for the GPU."""

    def __init__(self, progress: Progress):
        super().__init__()
        self.progress = progress

    def get_metrics(self, trainer, pl_module) -> dict[str, str]:
        shown = {name: f"{value:.2f}%" for name, value in pl_module.latest_errors.items()}
        if self.progress.images_per_s_so_far:
            shown["img/s"] = f"{self.progress.images_per_s_so_far:.0f}"
        return shown
