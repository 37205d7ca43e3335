"""Progress of a run, timed: numbers on the progress bar on a terminal, plain log lines elsewhere,
and the run's wall time and training throughput (evaluation left out) for its summary."""

import logging
import time

import pytorch_lightning as pl

log = logging.getLogger("degradation.progress")


def duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


class Progress(pl.Callback):
    """Every `every` steps: images/s on the progress bar, or one log line when there is no bar."""

    def __init__(self, every: int, batch_size: int, bar: bool):
        self.every, self.batch_size, self.bar = every, batch_size, bar
        self.started = self.eval_started = None
        self.wall_time_s = self.eval_time_s = 0.0
        self.first_step = self.last_step = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self.started, self.first_step = time.perf_counter(), trainer.global_step

    def on_validation_start(self, trainer, pl_module) -> None:
        self.eval_started = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.eval_started is not None:
            self.eval_time_s += time.perf_counter() - self.eval_started

    def on_train_end(self, trainer, pl_module) -> None:
        self.wall_time_s = time.perf_counter() - self.started
        self.last_step = trainer.global_step

    @property
    def images_per_s(self) -> float | None:
        """Training throughput over the whole fit, evaluation time left out."""
        train_time = self.wall_time_s - self.eval_time_s
        steps = self.last_step - self.first_step
        return steps * self.batch_size / train_time if steps and train_time > 0 else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.every:
            return
        elapsed = time.perf_counter() - self.started
        steps_per_s = (step - self.first_step) / elapsed if elapsed > 0 else 0.0
        if self.bar:
            pl_module.log("img/s", steps_per_s * self.batch_size, prog_bar=True, logger=False)
            return
        metrics = trainer.progress_bar_metrics
        errors = " | ".join(f"{name} {float(metrics[name]):.2f}%" for name in ("train_err", "test_err") if name in metrics)
        eta = duration((trainer.max_steps - step) / steps_per_s) if steps_per_s else "?"
        log.info(
            "step %d/%d (%.0f%%) | %.0f img/s | %s | eta %s",
            step, trainer.max_steps, 100 * step / trainer.max_steps, steps_per_s * self.batch_size, errors or "-", eta,
        )
