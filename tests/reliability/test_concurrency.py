"""Promise 6: sweeps launched at the same time into one runs/ root, and two processes on one run directory,
never corrupt each other: a lock per run directory, and the loser says who holds it."""

import json
import os
import socket
import subprocess
import sys
import time

from tiny_runs import FAULTS_SCRIPT, assert_same_results, run_dir, run_ok

from conftest import run_train, subprocess_env, tiny


def test_two_sweeps_started_together_split_the_work_and_train_each_run_once(tmp_path, fake_cifar_root):
    """The first sweep is held inside its first run (plain-8) until the second sweep has finished: the second
    must skip plain-8 (locked) and train resnet-8; the first then finishes plain-8 and finds resnet-8 done."""
    args = ["-m", *tiny(fake_cifar_root, "model=plain,resnet")]
    run_ok(*args, "name=straight", cwd=tmp_path)
    release = tmp_path / "release"
    first = subprocess.Popen(
        [sys.executable, str(FAULTS_SCRIPT), *args, "name=shared"],
        cwd=tmp_path,
        env=subprocess_env(FAULT="wait-step:3", RELEASE=str(release)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    plain_lock = run_dir(tmp_path, "shared", "plain").path / ".lock"
    deadline = time.monotonic() + 120
    while not plain_lock.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    second = run_ok(*args, "name=shared", cwd=tmp_path)  # runs to its end while the first waits in plain-8
    release.touch()
    first_log = first.communicate(timeout=600)[0]
    second_log = second.stdout + second.stderr
    assert first.returncode == 0, first_log[-3000:]
    for arch in ("plain", "resnet"):
        assert_same_results(run_dir(tmp_path, "shared", arch), run_dir(tmp_path, "straight", arch))
    assert second_log.count("completed: test error") == 1 and "skipped:" in second_log  # trained resnet-8 only
    assert first_log.count("completed: test error") == 1 and "already completed" in first_log  # plain-8 only


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
