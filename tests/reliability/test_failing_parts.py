"""Promise 5: when W&B or the disk fails, the run says so clearly and loses nothing it had saved."""

import shutil
import subprocess
import time

from tiny_runs import assert_same_results, run_dir, run_ok, run_with_fault

from conftest import run_train, subprocess_env, tiny, train_command
from degradation.runs.checkpoints import checkpoint_step

UNREACHABLE = {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_INIT_TIMEOUT": "10"}


def test_wandb_unreachable_falls_back_to_offline_logging_with_one_warning(tmp_path, fake_cifar_root):
    args = tiny(fake_cifar_root, "logger=wandb", "logger.wandb.mode=online", "name=nowandb")
    result = run_train(*args, cwd=tmp_path, **UNREACHABLE)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert log.count("W&B online failed") == 1 and "make wandb-sync" in log
    run = run_dir(tmp_path, "nowandb")
    summary = run.read_summary()
    assert summary["status"] == "completed" and summary["wandb"]["mode"] == "offline"
    assert list(run.path.glob("wandb/offline-run-*/run-*.wandb"))  # syncable later
    assert len(run.read_metrics()) == 4  # metrics.csv, the source of truth, is complete


def test_a_full_disk_stops_the_run_with_one_line_and_the_last_checkpoint_intact(
    tmp_path, fake_cifar_root, straight_run
):
    args = tiny(fake_cifar_root, "name=full")
    result = run_with_fault("enospc-metrics:3", *args, cwd=tmp_path)  # the step-8 row, after the step-6 checkpoint
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: No space left on device: ")
    assert "Traceback" not in result.stderr
    run = run_dir(tmp_path, "full")
    assert checkpoint_step(run.last_checkpoint) == 6 and run.read_summary()["status"] == "failed"

    run_ok(*args, cwd=tmp_path)  # space freed: the rerun resumes and loses nothing
    assert_same_results(run, straight_run)


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, fake_cifar_root, straight_run):
    args = tiny(fake_cifar_root, "name=full")
    result = run_with_fault("enospc-checkpoint:2", *args, cwd=tmp_path)  # inside the real write of the step-12 one
    assert result.returncode == 1 and "No space left on device" in result.stderr.strip().splitlines()[-1]
    run = run_dir(tmp_path, "full")
    assert checkpoint_step(run.last_checkpoint) == 6

    run_ok(*args, cwd=tmp_path)  # space freed: the rerun resumes from step 6 and loses nothing
    assert_same_results(run, straight_run)
    assert not list(run.checkpoint_dir.glob(".*.tmp"))  # the partial file is gone


def test_a_run_directory_that_vanishes_mid_run_stops_it_with_one_line(tmp_path, fake_cifar_root):
    args = tiny(fake_cifar_root, "trainer.max_steps=400", "trainer.eval_every=50", "name=vanish")
    run = run_dir(tmp_path, "vanish")
    process = subprocess.Popen(
        train_command(*args),
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while len(run.read_metrics()) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    shutil.rmtree(run.path)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith("error: No such file or directory: ")
    assert "Traceback" not in stderr


def test_wandb_service_killed_mid_run_is_one_warning_and_the_run_ends_as_without_wandb(
    tmp_path, fake_cifar_root, straight_run
):
    """W&B's service (wandb-core) gone at step 5, as SLURM's signal to every process takes it: every later W&B call
    raises; the run completes with the metrics of a run without W&B, and says so once."""
    args = tiny(fake_cifar_root, "logger=wandb", "logger.wandb.mode=offline", "name=nowandb")
    result = run_with_fault("kill-wandb:5", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert log.count("W&B stopped working (ConnectionResetError") == 1 and log.count("W&B") == 1, log[-3000:]
    assert "Traceback" not in log and "Exception ignored" not in log
    run = run_dir(tmp_path, "nowandb")
    assert_same_results(run, straight_run)
