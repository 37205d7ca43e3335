"""Several runs of a sweep on one GPU (`launcher=joblib jobs=N`): the CUDA MPS daemon and a memory share each.

Processes on one GPU take turns (time-slicing): once a run's whole step is one CUDA graph the GPU is
busy, and N runs together go no faster than one alone. Under MPS their kernels run side by side
(measured on an H100 before this harness had it: 8 graphed ResNet-20 runs, 1.84x one alone). So a
joblib sweep starts the daemon for its jobs when `nvidia-cuda-mps-control` exists and stops it at the
end (`mps=false` turns that off), and every job that shares a GPU may use at most its share of the
GPU's memory (torch's per-process fraction), so one run cannot starve the others.
"""

import atexit
import logging
import math
import os
import shutil
import subprocess
import tempfile

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

CONTROL = "nvidia-cuda-mps-control"
PIPE_ENV, LOG_ENV = "CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"
log = logging.getLogger(__name__)


def gpu_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def shares_a_gpu(config: DictConfig) -> bool:
    """Whether this sweep's jobs run several at once on a GPU."""
    return config.get("jobs", 1) > 1 and config.trainer.accelerator != "cpu" and gpu_visible()


class MpsDaemon:
    """An MPS control daemon of our own: its pipe and log folders in a fresh temporary folder, named to
    the sweep's jobs through the environment they inherit."""

    def __init__(self):
        self.folder: str | None = None

    def env(self) -> dict[str, str]:
        """Where this daemon's pipe and log live: what its clients and its control commands must be told."""
        return {PIPE_ENV: os.path.join(self.folder, "pipe"), LOG_ENV: os.path.join(self.folder, "log")}

    def start(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="degradation-mps-")
        for path in self.env().values():
            os.makedirs(path)
        subprocess.run([CONTROL, "-d"], env={**os.environ, **self.env()}, check=True, capture_output=True, timeout=30)
        os.environ.update(self.env())  # the jobs, started after this, connect to this daemon
        atexit.register(self.stop)  # also when the sweep ends by an exception

    def stop(self) -> None:
        """Quits this daemon (never one that was running before: the command goes to our own pipe)."""
        if self.folder is None:
            return
        try:
            subprocess.run([CONTROL], input="quit\n", text=True, env={**os.environ, **self.env()}, capture_output=True,
                           timeout=30)
        finally:
            for name, value in self.env().items():
                if os.environ.get(name) == value:
                    del os.environ[name]
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


class MpsForSweep(Callback):
    """Hydra multirun callback: the MPS daemon for the sweep's lifetime, when its jobs share a GPU."""

    def __init__(self):
        self.daemon = MpsDaemon()

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if not (config.get("mps", False) and shares_a_gpu(config)):
            return
        if PIPE_ENV in os.environ:
            log.info("MPS: %s is set, so the jobs use the MPS daemon already running there", PIPE_ENV)
        elif shutil.which(CONTROL) is None:
            log.info("MPS: %s not found; the %d jobs take turns on the GPU", CONTROL, config.jobs)
        else:
            try:
                self.daemon.start()
            except (OSError, subprocess.SubprocessError) as error:
                self.daemon.stop()
                log.warning("MPS: could not start the daemon (%s); the %d jobs take turns on the GPU", error, config.jobs)
                return
            log.info("MPS: daemon started for %d jobs sharing the GPU (stopped when the sweep ends)", config.jobs)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if self.daemon.folder is not None:
            self.daemon.stop()
            log.info("MPS: daemon stopped")


def memory_share(jobs: int, gpus: int) -> float:
    """The fraction of one GPU's memory each of `jobs` runs spread over `gpus` GPUs may use."""
    return 1.0 / math.ceil(jobs / max(gpus, 1))


def place_sweep_job(job_num: int, jobs: int, spread: bool) -> None:
    """In a parallel sweep's job, before CUDA starts: with `spread` and several GPUs, pin the job to one of
    them (round robin, by CUDA_VISIBLE_DEVICES); then hold it to its share of its GPU's memory."""
    import torch

    if torch.cuda.is_initialized():  # a reused worker process keeps the GPU and the share it has
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    if spread and len(ids) >= 2:
        os.environ["CUDA_VISIBLE_DEVICES"] = ids[job_num % len(ids)]
    share = memory_share(jobs, len(ids) if spread else 1)
    if ids and share < 1:
        torch.cuda.set_per_process_memory_fraction(share)
