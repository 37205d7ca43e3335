"""Promise 2: on SIGTERM, SIGUSR1 or SIGUSR2 (what SLURM and submitit send before preemption) a run saves a
checkpoint and exits, and running it again (submitit's requeue, or by hand) ends exactly as an uninterrupted run."""

import signal

import pytest
from tiny_runs import assert_same_results, run_dir, run_ok, run_with_fault

from conftest import tiny
from degradation.runs.checkpoints import checkpoint_step
from wandb_files import records


@pytest.mark.parametrize(
    "name, step",
    [("TERM", 9), ("USR1", 9), ("USR2", 9), ("TERM", 10)],
    ids=["TERM", "USR1", "USR2", "TERM-at-an-epochs-last-step"],
)
def test_a_preempted_run_checkpoints_where_it_stopped_and_resumes_from_there(
    name, step, tmp_path, fake_cifar_root, straight_run
):
    """Step 10 is the last of the first epoch (10 batches): the resumed run goes on in the second."""
    args = tiny(fake_cifar_root, "name=preempted")
    stopped = run_with_fault(f"signal-step:{step}:{name}", *args, cwd=tmp_path)
    signum = getattr(signal, f"SIG{name}")
    assert stopped.returncode == 128 + signum, stopped.stderr[-2000:]  # what a shell reports for that signal
    run = run_dir(tmp_path, "preempted")
    summary = run.read_summary()
    assert summary["status"] == "interrupted" and f"stopped by SIG{name} at step {step}" in summary["error"]
    assert checkpoint_step(run.last_checkpoint) == step  # not the step-6 evaluation checkpoint: no work lost
    assert "Traceback" not in stopped.stderr

    resumed = run_ok(*args, cwd=tmp_path)
    assert f"from last.ckpt (step {step})" in resumed.stdout + resumed.stderr
    assert_same_results(run, straight_run)


def test_a_signal_during_an_evaluation_resumes_from_the_checkpoint_before_it(tmp_path, fake_cifar_root, straight_run):
    """Half an evaluation is no state to resume from: the run stops with a warning and keeps the step-6 checkpoint."""
    args = tiny(fake_cifar_root, "name=preempted")
    stopped = run_with_fault("signal-eval:2:TERM", *args, cwd=tmp_path)  # the evaluation at step 12
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    assert "arrived during an evaluation" in stopped.stdout + stopped.stderr
    run = run_dir(tmp_path, "preempted")
    assert run.read_summary()["status"] == "interrupted" and checkpoint_step(run.last_checkpoint) == 6
    resumed = run_ok(*args, cwd=tmp_path)
    assert "from last.ckpt (step 6)" in resumed.stdout + resumed.stderr
    assert_same_results(run, straight_run)


def wandb_ids(run) -> set[str]:
    """The W&B run id of every offline attempt (in its file's name: a service killed by the signal never wrote the
    records it still held, the run record among them) and of every run record written."""
    files = list(run.path.glob("wandb/offline-run-*/run-*.wandb"))
    written = [
        record.run.run_id for path in files for record in records(path) if record.WhichOneof("record_type") == "run"
    ]
    return {path.stem.removeprefix("run-") for path in files} | set(written)


def test_a_signal_to_every_process_with_wandb_on_is_a_preemption_and_one_wandb_run(
    tmp_path, fake_cifar_root, straight_run
):
    """SIGTERM to the run and every process it started (SLURM's way), W&B on: its service dies with the signal. The
    run still checkpoints at its step and exits as preempted; the rerun continues the same W&B run."""
    args = tiny(fake_cifar_root, "logger=wandb", "logger.wandb.mode=offline", "name=preempted")
    stopped = run_with_fault("signal-all:9:TERM", *args, cwd=tmp_path)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    run = run_dir(tmp_path, "preempted")
    summary = run.read_summary()
    assert summary["status"] == "interrupted" and "stopped by SIGTERM at step 9" in summary["error"]
    assert checkpoint_step(run.last_checkpoint) == 9
    assert (stopped.stdout + stopped.stderr).count("W&B stopped working") <= 1 and "Traceback" not in stopped.stderr

    resumed = run_ok(*args, cwd=tmp_path)
    assert "from last.ckpt (step 9)" in resumed.stdout + resumed.stderr
    assert_same_results(run, straight_run)
    assert wandb_ids(run) == {summary["wandb"]["id"]} and len(list(run.path.glob("wandb/offline-run-*"))) == 2


def test_a_preempted_run_is_marked_preempting_in_wandb(tmp_path, fake_cifar_root):
    """submitit's SIGUSR2 (ahead of the time limit) leaves W&B's service alive: the run tells it it is preempting,
    so W&B shows it preempted rather than crashed or failed."""
    args = tiny(fake_cifar_root, "logger=wandb", "logger.wandb.mode=offline", "name=preempted")
    stopped = run_with_fault("signal-step:9:USR2", *args, cwd=tmp_path)
    assert stopped.returncode == 128 + signal.SIGUSR2, stopped.stderr[-3000:]
    [wandb_file] = run_dir(tmp_path, "preempted").path.glob("wandb/offline-run-*/run-*.wandb")
    kinds = [record.WhichOneof("record_type") for record in records(wandb_file)]
    assert "preempting" in kinds and "W&B" not in stopped.stdout + stopped.stderr


def test_a_failure_after_a_preemption_signal_is_a_preemption_resumed_from_the_last_checkpoint(
    tmp_path, fake_cifar_root, straight_run
):
    """The signal reached the run's helper processes too (a compiler of torch.compile, the MPS daemon), and the step
    fails because one is gone: the run is preempted, not failed, and resumes from its last checkpoint (step 6)."""
    args = tiny(fake_cifar_root, "name=preempted")
    stopped = run_with_fault("fail-after-signal:9", *args, cwd=tmp_path)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    run = run_dir(tmp_path, "preempted")
    summary = run.read_summary()
    assert summary["status"] == "interrupted" and "RuntimeError: a compile worker died" in summary["error"]
    assert "Traceback" not in stopped.stderr

    resumed = run_ok(*args, cwd=tmp_path)
    assert "from last.ckpt (step 6)" in resumed.stdout + resumed.stderr
    assert_same_results(run, straight_run)
