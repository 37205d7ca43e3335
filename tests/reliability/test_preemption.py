"""Promise 2: on SIGTERM, SIGUSR1 or SIGUSR2 (what SLURM and submitit send before preemption) a run saves a checkpoint and exits,
and running it again (submitit's requeue, or by hand) ends exactly as an uninterrupted run."""

import signal

import pytest

from degradation.runs.checkpoints import checkpoint_step
from tiny_runs import assert_same_results, run_dir, run_ok, run_with_fault, tiny


@pytest.mark.parametrize("name, step", [("TERM", 9), ("USR1", 9), ("USR2", 9), ("TERM", 10)],
                         ids=["TERM", "USR1", "USR2", "TERM-at-an-epochs-last-step"])
def test_a_preempted_run_checkpoints_where_it_stopped_and_resumes_from_there(name, step, tmp_path, fake_cifar_root,
                                                                              straight_run):
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
