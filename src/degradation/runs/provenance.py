"""Where a result came from: library versions, the git commit of the harness, the device (which one a run uses,
and its name), the SLURM job it trained in."""

import functools
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

PACKAGES = ("torch", "torchvision", "pytorch-lightning", "hydra-core", "omegaconf", "numpy", "wandb")
SOURCE_DIR = Path(__file__).resolve().parent


def library_versions() -> dict[str, str | None]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return versions


@functools.cache
def git_commit() -> dict[str, str | bool | None]:
    """The harness's commit and whether its working tree had uncommitted changes, read once per process: the runs
    of an in-process sweep (Hydra's basic launcher, a joblib worker) run the code imported when it started, and a
    commit made while they train must not be recorded as theirs."""

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(["git", *args], cwd=SOURCE_DIR, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def pick_device(accelerator: str = "auto") -> torch.device:
    """The device a run's Trainer would pick for this accelerator, for work outside a Trainer."""
    wants_gpu = accelerator in ("auto", "gpu", "cuda")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def slurm_job() -> dict[str, str] | None:
    """The SLURM job this process runs in (an array task as <array>_<task>, as sacct and submitit name it) and,
    under submitit, the job's log; None outside SLURM."""
    if "SLURM_JOB_ID" not in os.environ:
        return None
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = {"job_id": f"{array}_{task}" if array and task else os.environ["SLURM_JOB_ID"]}
    if os.environ.get("SUBMITIT_FOLDER"):
        from submitit.core.utils import JobPaths

        paths = JobPaths(
            os.environ["SUBMITIT_FOLDER"], job_id=job["job_id"], task_id=int(os.environ.get("SLURM_PROCID", 0))
        )
        job["log"] = str(paths.stderr)
    return job
