import json
import os
import socket
import subprocess
import sys
import time

import pytest

from degradation.runs.lock import STALE_AFTER_S, RunLock, RunLocked


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_second_holder_is_refused_with_the_first_one_named(tmp_path):
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    first.acquire()
    with pytest.raises(RunLocked, match=f"pid {os.getpid()} on {socket.gethostname()}"):
        second.acquire()
    first.release()
    second.acquire()  # free again once released
    assert json.loads(second.path.read_text())["pid"] == os.getpid()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    lock = RunLock(tmp_path)
    lock.path.write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    lock.acquire()
    assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_a_lock_from_another_host_is_live_until_its_heartbeat_stops(tmp_path):
    lock = RunLock(tmp_path)
    lock.path.write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(RunLocked, match="elsewhere"):
        lock.acquire()
    old = time.time() - STALE_AFTER_S - 1
    os.utime(lock.path, (old, old))
    lock.acquire()
    assert json.loads(lock.path.read_text())["host"] == socket.gethostname()


def test_a_requeued_slurm_job_takes_over_the_lock_of_its_earlier_start_at_once(tmp_path, monkeypatch):
    """SLURM runs one start of a job at a time: a lock of the same job, from another node with a fresh heartbeat,
    was left by a start that is gone. Another job's lock from there still holds."""
    lock = RunLock(tmp_path)
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    lock.path.write_text(json.dumps({"pid": 1, "host": "node7", "slurm_job": "40"}))
    with pytest.raises(RunLocked, match="node7"):
        lock.acquire()
    lock.path.write_text(json.dumps({"pid": 1, "host": "node7", "slurm_job": "41"}))
    lock.acquire()
    assert json.loads(lock.path.read_text()) == {"pid": os.getpid(), "host": socket.gethostname(), "slurm_job": "41"}


def test_release_leaves_someone_elses_lock_alone(tmp_path):
    lock = RunLock(tmp_path)
    lock.path.write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    lock.release()
    assert lock.path.exists()
