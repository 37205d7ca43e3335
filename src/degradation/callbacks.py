"""Small Lightning callbacks of a training run: timing and the lock heartbeat."""

import time

import pytorch_lightning as pl


class TrainTimer(pl.Callback):
    """Wall time of the fit, and training throughput with evaluation time left out."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
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
        train_time = self.wall_time_s - self.eval_time_s
        steps = self.last_step - self.first_step
        return steps * self.batch_size / train_time if steps and train_time > 0 else None


class LockHeartbeat(pl.Callback):
    """Keeps the run directory's lock fresh, so other hosts can tell a live holder from a dead one."""

    def __init__(self, lock, every_s: float = 60.0):
        self.lock, self.every_s, self.last = lock, every_s, 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.lock.heartbeat()
            self.last = now
