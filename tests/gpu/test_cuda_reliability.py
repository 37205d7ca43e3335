"""Kills, preemption, a sweep sharing the GPU, figures and the bench, on a GPU.

The resume promise on a GPU: with trainer.deterministic=true, a killed or preempted run started again
ends with a metrics.csv byte-identical to an uninterrupted run's. Without it, cuDNN may pick kernels
whose sums run in another order: the resumed run continues from exactly the saved state (weights,
momentum, schedule, loader position), every step appears once, the rows up to the checkpoint are
kept as they were, and later values differ from an uninterrupted run's only by that rounding.
"""

import json
import shutil
import signal
import subprocess
import sys

import pytest
from gpu_runs import (
    EVAL_EVERY,
    KILL_AT,
    ON_CPU,
    assert_completed_on_the_gpu,
    gpu_args,
    run_dir,
    run_with_fault,
    train_ok,
)

from conftest import run_train, subprocess_env
from degradation.runs.checkpoints import checkpoint_step

pytestmark = pytest.mark.gpu
DETERMINISTIC = ["trainer.deterministic=true"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, gpu_cifar_root):
    """Uninterrupted runs to compare with: deterministic kernels, and the default ones."""
    cwd = tmp_path_factory.mktemp("straight")
    train_ok(cwd, gpu_cifar_root, "name=deterministic", *DETERMINISTIC)
    train_ok(cwd, gpu_cifar_root, "name=default")
    return {"deterministic": run_dir(cwd, "deterministic"), "default": run_dir(cwd, "default")}


@pytest.mark.parametrize("fault", [f"kill-step:{KILL_AT}", f"signal-step:{KILL_AT}:TERM"])
def test_with_deterministic_kernels_a_stopped_run_resumes_to_identical_metrics(
    fault, tmp_path, gpu_cifar_root, straight
):
    stopped = run_with_fault(fault, tmp_path, gpu_cifar_root, "name=stopped", *DETERMINISTIC)
    expected_code = -signal.SIGKILL if fault.startswith("kill") else 128 + signal.SIGTERM
    assert stopped.returncode == expected_code, stopped.stderr[-2000:]
    run = run_dir(tmp_path, "stopped")
    if fault.startswith("signal"):
        assert checkpoint_step(run.last_checkpoint) == KILL_AT  # preemption saves where it stopped
    train_ok(tmp_path, gpu_cifar_root, "name=stopped", *DETERMINISTIC)
    assert_completed_on_the_gpu(run)
    assert run.metrics_path.read_text() == straight["deterministic"].metrics_path.read_text()


def test_without_deterministic_kernels_a_killed_run_resumes_from_its_exact_state(tmp_path, gpu_cifar_root, straight):
    killed = run_with_fault(f"kill-step:{KILL_AT}", tmp_path, gpu_cifar_root, "name=killed")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run = run_dir(tmp_path, "killed")
    checkpoint = checkpoint_step(run.last_checkpoint)
    assert checkpoint == EVAL_EVERY
    kept = [row for row in run.read_metrics() if row["step"] <= checkpoint]
    train_ok(tmp_path, gpu_cifar_root, "name=killed")
    assert_completed_on_the_gpu(run)
    rows, expected = run.read_metrics(), straight["default"].read_metrics()
    assert [row["step"] for row in rows] == [row["step"] for row in expected]  # every step once
    assert [row for row in rows if row["step"] <= checkpoint] == kept  # the rows before the checkpoint untouched
    final, uninterrupted = (
        run.read_summary()["final_train_loss"],
        straight["default"].read_summary()["final_train_loss"],
    )
    assert final == pytest.approx(uninterrupted, rel=0.1)  # rounding, not lost or repeated steps


def test_a_2x2_joblib_sweep_shares_the_gpu_and_its_figures_are_made(tmp_path, gpu_cifar_root):
    sweep = run_train(
        "-m",
        *gpu_args(
            gpu_cifar_root,
            "model=plain,resnet",
            "seed=0,1",
            "name=grid",
            "launcher=joblib",
            "jobs=4",
            "trainer.spread_gpus=false",
        ),
        cwd=tmp_path,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    for arch in ("plain", "resnet"):
        for seed in (0, 1):
            assert_completed_on_the_gpu(run_dir(tmp_path, "grid", arch, seed))
    figures = subprocess.run(
        [sys.executable, "-m", "degradation.report.figures", "--sweep", "runs/grid", "--ylim", "auto"],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert figures.returncode == 0, figures.stderr[-3000:]
    made = {path.name for path in (tmp_path / "figures/grid").iterdir()}
    assert {"fig6.png", "fig6.pdf", "fig7.png", "fig7.pdf", "table6.md", "table6.csv"} <= made  # Fig. 7 of depth 8
    assert "Figure 1 not drawn" in figures.stderr  # it compares plain-20 with plain-56


def test_the_bench_runs_every_path_on_the_gpu_at_a_tiny_size(tmp_path):
    args = [
        "--depths",
        "8",
        "--steps",
        "3",
        "--warmup",
        "2",
        "--rounds",
        "1",
        "--batch-size",
        "128",
        "--train-size",
        "1024",
        "--switches",
        "cuda_graphs,tf32,channels_last",
        "--share",
        "2",
        "--out",
        str(tmp_path),
    ]
    device = ["trainer.accelerator=cpu"] if ON_CPU else []
    result = subprocess.run(
        [sys.executable, "-m", "degradation.bench.measure", *args, *device],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [report_path] = tmp_path.glob("*/bench*.json")
    report = json.loads(report_path.read_text())
    assert ON_CPU or not report["device"].startswith("cpu")
    for row in report["networks"]:
        assert all(row[f"{path}_ms"] > 0 for path in ("harness", "reference", "bare"))
    switches = {row["switch"]: row for row in report["switches"]}
    assert ON_CPU or all(switches[name].get("ms", 0) > 0 for name in ("cuda_graphs", "tf32", "channels_last"))
    assert all(row["processes"] == 2 and row["aggregate_images_per_s"] > 0 for row in report["shared"])
    assert (
        ON_CPU
        or shutil.which("nvidia-cuda-mps-control") is None
        or [row["mps"] for row in report["shared"]] == [False, True]
    )
