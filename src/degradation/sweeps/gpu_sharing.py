"""Several runs of a sweep on one GPU (`launcher=joblib jobs=N`): the CUDA MPS daemon and a memory share each.

Processes on one GPU take turns (time-slicing): once a run's whole step is one CUDA graph the GPU is
busy, and N runs together go no faster than one alone. Under MPS their kernels run side by side
(measured on an H100 before this harness had it: 8 graphed ResNet-20 runs, 1.84x one alone). So a
joblib sweep whose jobs really share a GPU (more jobs than GPUs when they are spread over them) starts
the daemon for its jobs when `nvidia-cuda-mps-control` exists and stops it at the end (`mps=false`
turns that off), and every job that shares a GPU may use at most its share of the GPU's memory
(torch's per-process fraction), so one run cannot starve the others.

The daemon and its jobs name the GPUs by UUID: an MPS server renumbers the GPUs that
CUDA_VISIBLE_DEVICES showed it from 0, so a job that kept a physical index (`3` on a SLURM node)
would fail to connect (NVIDIA's MPS documentation, "CUDA_VISIBLE_DEVICES").
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
VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"
log = logging.getLogger(__name__)


def gpu_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def listed_gpus() -> list[dict[str, str]] | None:
    """The physical GPUs as nvidia-smi lists them (index, uuid, name, mig); None when it cannot say."""
    fields = ("index", "uuid", "name", "mig")
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,uuid,name,mig.mode.current", "--format=csv,noheader"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [[value.strip() for value in line.split(",")] for line in listed.splitlines() if line.strip()]
    return [dict(zip(fields, row)) for row in rows if len(row) == len(fields)]


def mig_enabled(gpus: list[dict[str, str]] | None) -> bool:
    return any(gpu["mig"] == "Enabled" for gpu in gpus or [])


def gpu_uuids() -> list[str] | None:
    """The visible GPUs' UUIDs in CUDA_VISIBLE_DEVICES' order (every GPU when it is unset); None when they cannot
    be named with certainty: no nvidia-smi, MIG (CUDA then numbers the instances, not these GPUs), or GPUs of
    several kinds without CUDA_DEVICE_ORDER=PCI_BUS_ID (CUDA numbers the fastest first, nvidia-smi by bus)."""
    gpus = listed_gpus()
    if gpus is None or mig_enabled(gpus):
        return None
    if len({gpu["name"] for gpu in gpus}) > 1 and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        return None
    by_index = {gpu["index"]: gpu["uuid"] for gpu in gpus}
    visible = os.environ.get(VISIBLE_ENV)
    if visible is None:
        return list(by_index.values())
    uuids = []
    for entry in visible.replace(" ", "").split(","):
        uuid = by_index.get(entry, entry if entry.startswith(("GPU-", "MIG-")) else None)
        if uuid is None:
            break  # CUDA ignores an entry it cannot find and every entry after it
        uuids.append(uuid)
    return uuids


def gpu_count() -> int:
    uuids = gpu_uuids()
    if uuids is not None:
        return len(uuids)
    import torch

    return torch.cuda.device_count()


def shares_a_gpu(config: DictConfig) -> bool:
    """Whether several of this sweep's jobs run at once on one GPU: any two of them, unless they are spread
    over the GPUs (trainer.spread_gpus) and there are as many GPUs as jobs."""
    jobs = config.get("jobs", 1)
    if jobs < 2 or config.trainer.accelerator == "cpu" or not gpu_visible():
        return False
    return not config.trainer.spread_gpus or jobs > gpu_count()


def name_gpus_by_uuid() -> None:
    """Rewrites CUDA_VISIBLE_DEVICES (for this process's children) as the UUIDs of the GPUs it shows, so that an
    MPS daemon and its jobs mean the same GPUs; refuses MIG (this harness starts no daemon on MIG instances) and
    GPUs named by index whose UUIDs cannot be known."""
    uuids = gpu_uuids()
    if uuids is not None:
        os.environ[VISIBLE_ENV] = ",".join(uuids)
    elif mig_enabled(listed_gpus()):
        raise OSError("MIG is enabled on this node's GPUs (this harness starts no MPS daemon on MIG instances)")
    elif os.environ.get(VISIBLE_ENV, "").replace(",", "").isdigit():
        raise OSError(
            f"{VISIBLE_ENV}={os.environ[VISIBLE_ENV]} names GPUs by index and their UUIDs cannot be known "
            "(nvidia-smi missing, or GPUs of several kinds without CUDA_DEVICE_ORDER=PCI_BUS_ID): an MPS "
            "server would renumber them"
        )


class MpsDaemon:
    """An MPS control daemon of our own: its pipe and log folders in a fresh temporary folder, named to
    the sweep's jobs through the environment they inherit."""

    def __init__(self):
        self.folder: str | None = None
        self.visible_before: str | None = None  # CUDA_VISIBLE_DEVICES as it was before start()

    def env(self) -> dict[str, str]:
        """Where this daemon's pipe and log live: what its clients and its control commands must be told."""
        return {PIPE_ENV: os.path.join(self.folder, "pipe"), LOG_ENV: os.path.join(self.folder, "log")}

    def start(self) -> None:
        self.visible_before = os.environ.get(VISIBLE_ENV)
        self.folder = tempfile.mkdtemp(prefix="degradation-mps-")
        for path in self.env().values():
            os.makedirs(path)
        name_gpus_by_uuid()  # the daemon and the jobs started after it
        subprocess.run(
            [CONTROL, "-d"], env={**os.environ, **self.env()}, check=True, capture_output=True, text=True, timeout=30
        )
        os.environ.update(self.env())  # the jobs, started after this, connect to this daemon
        atexit.register(self.stop)  # also when the sweep ends by an exception

    def stop(self) -> None:
        """Quits this daemon (never one that was running before: the command goes to our own pipe)."""
        if self.folder is None:
            return
        try:
            subprocess.run(
                [CONTROL], input="quit\n", text=True, env={**os.environ, **self.env()}, capture_output=True, timeout=30
            )
        finally:
            for name, value in self.env().items():
                if os.environ.get(name) == value:
                    del os.environ[name]
            if self.visible_before is None:
                os.environ.pop(VISIBLE_ENV, None)
            else:
                os.environ[VISIBLE_ENV] = self.visible_before
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


def start_failure(error: Exception) -> str:
    """Why a daemon did not start, in one line: the error and what the program said."""
    said = (getattr(error, "stderr", None) or "").strip()
    return " ".join(f"{error}{': ' + said if said else ''}".split())


class MpsForSweep(Callback):
    """Hydra multirun callback: the MPS daemon for the sweep's lifetime, when its jobs share a GPU."""

    def __init__(self):
        self.daemon = MpsDaemon()

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if not (config.get("mps", False) and shares_a_gpu(config)):
            return
        if PIPE_ENV in os.environ:
            log.info("MPS: %s is set, so the jobs use the MPS daemon already running there", PIPE_ENV)
            try:
                name_gpus_by_uuid()
            except OSError as error:
                log.warning("MPS: %s; the jobs may fail to reach the GPU through that daemon", error)
        elif shutil.which(CONTROL) is None:
            log.info("MPS: %s not found; the %d jobs take turns on the GPU", CONTROL, config.jobs)
        else:
            try:
                self.daemon.start()
            except (OSError, subprocess.SubprocessError) as error:
                self.daemon.stop()
                log.warning(
                    "MPS: could not start the daemon (%s); the %d jobs take turns on the GPU",
                    start_failure(error),
                    config.jobs,
                )
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
    visible = os.environ.get(VISIBLE_ENV)  # by UUID under a sweep's MPS daemon
    ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    if spread and len(ids) >= 2:
        os.environ[VISIBLE_ENV] = ids[job_num % len(ids)]
    share = memory_share(jobs, len(ids) if spread else 1)
    if ids and share < 1:
        torch.cuda.set_per_process_memory_fraction(share)
