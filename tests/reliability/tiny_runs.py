"""Tiny runs through the real entry point, with or without a fault from faults.py."""

import subprocess
import sys
from pathlib import Path

from conftest import run_train, subprocess_env
from degradation.runs.rundir import RunDir

FAULTS_SCRIPT = Path(__file__).with_name("faults.py")


def run_with_fault(fault: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(FAULTS_SCRIPT), *args],
        cwd=cwd,
        env=subprocess_env(FAULT=fault),
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_ok(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = run_train(*args, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def run_dir(cwd: Path, name: str, arch: str = "resnet", seed: int = 0) -> RunDir:
    return RunDir(cwd / f"runs/{name}/{arch}-8/seed={seed}")


def assert_same_results(run: RunDir, straight: RunDir) -> None:
    """Every step exactly once, with the values of the uninterrupted run."""
    assert run.metrics_path.read_text() == straight.metrics_path.read_text()
    assert run.gradients_path.read_text() == straight.gradients_path.read_text()
    summary, expected = run.read_summary(), straight.read_summary()
    assert summary["status"] == "completed" and summary["steps"] == expected["steps"]
    assert (summary["final_test_err"], summary["final_train_loss"]) == (
        expected["final_test_err"],
        expected["final_train_loss"],
    )
