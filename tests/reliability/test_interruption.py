"""Promise 1: a run killed at any moment and started again ends exactly as an uninterrupted run.

TINY_RUN: 12 steps of 10 per epoch, rows at steps 4, 6 (test), 8, 12 (train, then test merged into
the same row), checkpoints after the evaluations at steps 6 and 12.
"""

import pytest
from tiny_runs import assert_same_results, run_dir, run_ok, run_with_fault

from conftest import tiny

KILLS = [
    ("kill-step:9", "mid-step, mid-epoch, after the step-6 checkpoint"),
    ("kill-checkpoint:2", "inside the write of the step-12 checkpoint"),
    ("kill-rename:2", "between moving last.ckpt aside and installing the new one"),
    ("kill-metrics:5", "with the step-12 row cut to '1' while it is rewritten to add its test error"),
]
MORE_KILLS = [
    ("kill-step:3", "before any checkpoint"),
    ("kill-step:11", "in the second epoch"),
    ("kill-checkpoint:1", "inside the write of the first checkpoint"),
    ("kill-metrics:2", "with the step-6 row cut after its first character"),
]


def kill_then_rerun(fault, tmp_path, fake_cifar_root, straight_run):
    args = tiny(fake_cifar_root, "name=killed")
    killed = run_with_fault(fault, *args, cwd=tmp_path)
    assert killed.returncode == -9, killed.stderr[-2000:]  # it really died by SIGKILL
    run = run_dir(tmp_path, "killed")
    assert run.read_summary()["status"] == "running"
    rerun = run_ok(*args, cwd=tmp_path)
    assert_same_results(run, straight_run)
    assert "unreadable" not in rerun.stdout + rerun.stderr  # no kill ever leaves a broken checkpoint to resume from
    assert not list(run.checkpoint_dir.glob(".*.tmp"))  # the half-written checkpoint is gone


@pytest.mark.parametrize("fault, when", KILLS, ids=[fault for fault, _ in KILLS])
def test_a_run_killed_at_any_moment_ends_as_an_uninterrupted_one(fault, when, tmp_path, fake_cifar_root, straight_run):
    kill_then_rerun(fault, tmp_path, fake_cifar_root, straight_run)


@pytest.mark.slow
@pytest.mark.parametrize("fault, when", MORE_KILLS, ids=[fault for fault, _ in MORE_KILLS])
def test_more_kill_points(fault, when, tmp_path, fake_cifar_root, straight_run):
    kill_then_rerun(fault, tmp_path, fake_cifar_root, straight_run)


def test_a_corrupt_last_checkpoint_falls_back_to_the_previous_one_with_a_warning(tmp_path, fake_cifar_root):
    args = tiny(fake_cifar_root, "trainer.eval_every=3")  # checkpoints at steps 3, 6, 9, 12
    run_ok(*args, "name=straight", cwd=tmp_path)
    assert run_with_fault("kill-step:11", *args, "name=corrupt", cwd=tmp_path).returncode == -9
    run = run_dir(tmp_path, "corrupt")
    last = run.last_checkpoint
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated, as by a full disk or a bad copy

    rerun = run_ok(*args, "name=corrupt", cwd=tmp_path)
    log = rerun.stdout + rerun.stderr
    assert "last.ckpt is unreadable" in log and "from previous.ckpt (step 6)" in log
    assert_same_results(run, run_dir(tmp_path, "straight"))
    assert (run.checkpoint_dir / "last.ckpt.corrupt").is_file()  # kept for inspection, never loaded


def test_with_no_readable_checkpoint_the_run_restarts_from_zero_with_a_warning(tmp_path, fake_cifar_root, straight_run):
    args = tiny(fake_cifar_root, "name=garbage")
    assert run_with_fault("kill-step:9", *args, cwd=tmp_path).returncode == -9
    run = run_dir(tmp_path, "garbage")
    run.last_checkpoint.write_bytes(b"not a checkpoint")
    rerun = run_ok(*args, cwd=tmp_path)
    assert (
        "no readable checkpoint" in rerun.stdout + rerun.stderr
        and "restarting from step 0" in rerun.stdout + rerun.stderr
    )
    assert_same_results(run, straight_run)


def test_a_sweep_killed_mid_way_and_rerun_ends_as_an_uninterrupted_sweep(tmp_path, fake_cifar_root):
    args = ["-m", *tiny(fake_cifar_root, "model=plain,resnet")]
    run_ok(*args, "name=straight", cwd=tmp_path)
    assert run_with_fault("kill-step:9", *args, "name=killed", cwd=tmp_path).returncode == -9  # in the first job
    assert not run_dir(tmp_path, "killed", arch="resnet").path.exists()  # the second job never started
    run_ok(*args, "name=killed", cwd=tmp_path)
    for arch in ("plain", "resnet"):
        assert_same_results(run_dir(tmp_path, "killed", arch), run_dir(tmp_path, "straight", arch))
