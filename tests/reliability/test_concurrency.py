"""Promise 6: sweeps launched at the same time into one runs/ root, and two processes on one run directory,
never corrupt each other: a lock per run directory, and the loser says who holds it."""

import json
import os
import socket
import subprocess

from conftest import run_train, subprocess_env, train_command
from tiny_runs import assert_same_results, run_dir, run_ok, tiny


def test_two_sweeps_started_together_train_each_run_exactly_once(tmp_path, fake_cifar_root):
    args = ["-m", *tiny(fake_cifar_root, "model=plain,resnet")]
    run_ok(*args, "name=straight", cwd=tmp_path)
    sweeps = [subprocess.Popen(train_command(*args, "name=shared"), cwd=tmp_path, env=subprocess_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    logs = [sweep.communicate(timeout=600)[0] for sweep in sweeps]
    assert [sweep.returncode for sweep in sweeps] == [0, 0], logs
    for arch in ("plain", "resnet"):
        assert_same_results(run_dir(tmp_path, "shared", arch), run_dir(tmp_path, "straight", arch))
    # Each run was trained by one sweep; the other skipped it (locked) or found it done.
    trained = sum(log.count("completed: test error") for log in logs)
    assert trained == 2, logs
    assert all(("skipped:" in log and "is being trained by pid" in log) or "already completed" in log for log in logs)


def test_a_run_locked_by_a_live_process_is_skipped_by_a_sweep_and_refused_alone(tmp_path, fake_cifar_root):
    locked = tmp_path / "runs/lk/plain-8/seed=0"
    locked.mkdir(parents=True)
    (locked / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    holder = f"being trained by pid {os.getpid()} on {socket.gethostname()}"
    swept = run_train("-m", *tiny(fake_cifar_root, "model=plain,resnet", "name=lk"), cwd=tmp_path)
    assert swept.returncode == 0 and holder in swept.stdout + swept.stderr
    assert run_dir(tmp_path, "lk").read_summary()["status"] == "completed"
    assert not (locked / "summary.json").exists()  # the held run was left alone
    alone = run_train(*tiny(fake_cifar_root, "model=plain", "name=lk"), cwd=tmp_path)
    assert alone.returncode == 2 and alone.stderr.strip().startswith("error:") and holder in alone.stderr
    assert len(alone.stderr.strip().splitlines()) == 1
