"""Runs for the CUDA suite (`make test-gpu`): the real entry point on the GPU, a few hundred steps of
tiny nets on a synthetic CIFAR folder with batches of the paper's size.

DEGRADATION_GPU_TESTS_ON_CPU=1 runs these tests on the CPU with a dozen steps: a developer's check of
the tests' own logic on a machine without a GPU; it proves nothing about CUDA.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

from conftest import run_train, subprocess_env
from degradation.runs.rundir import RunDir

ON_CPU = os.environ.get("DEGRADATION_GPU_TESTS_ON_CPU") == "1"
STEPS, EVAL_EVERY, LOG_EVERY = (12, 6, 4) if ON_CPU else (300, 100, 50)
KILL_AT = 9 if ON_CPU else 150  # after the first evaluation's checkpoint, before the second
FAULTS_SCRIPT = Path(__file__).parents[1] / "reliability" / "faults.py"

GPU_RUN = [
    f"trainer.accelerator={'cpu' if ON_CPU else 'gpu'}",
    "model.depth=8",
    f"data.batch_size={16 if ON_CPU else 128}",  # 1250 images: 10 steps per epoch, the last one partial
    "data.eval_batch_size=200",  # 500 test images: a partial evaluation batch too (new shapes for compiled code)
    f"trainer.max_steps={STEPS}",
    f"trainer.log_every={LOG_EVERY}",
    f"trainer.eval_every={EVAL_EVERY}",
    "trainer.progress_bar=false",
    "data.download=false",
]


def gpu_args(cifar_root: Path, *overrides: str) -> list[str]:
    return [*GPU_RUN, f"data.root={cifar_root}", *overrides]


def train_ok(cwd: Path, cifar_root: Path, *overrides: str) -> subprocess.CompletedProcess:
    result = run_train(*gpu_args(cifar_root, *overrides), cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def run_with_fault(fault: str, cwd: Path, cifar_root: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(FAULTS_SCRIPT), *gpu_args(cifar_root, *overrides)],
        cwd=cwd,
        env=subprocess_env(FAULT=fault),
        capture_output=True,
        text=True,
        timeout=600,
    )


def run_dir(cwd: Path, name: str, arch: str = "resnet", seed: int = 0) -> RunDir:
    return RunDir(cwd / f"runs/{name}/{arch}-8/seed={seed}")


def assert_completed_on_the_gpu(run: RunDir) -> dict:
    """Completed, every step trained on the GPU, finite metrics, Figure 7's data written."""
    summary = run.read_summary()
    assert summary["status"] == "completed" and summary["steps"] == STEPS, summary.get("error")
    assert ON_CPU or not summary["device"].startswith("cpu"), summary["device"]
    losses = [row["train_loss"] for row in run.read_metrics() if row["train_loss"] is not None]
    assert len(losses) == STEPS // LOG_EVERY and all(math.isfinite(loss) for loss in losses)
    stds = run.path.joinpath("responses.json")
    assert stds.is_file(), "responses.json missing"
    return summary
