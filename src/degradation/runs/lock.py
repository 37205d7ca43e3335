"""One process at a time per run directory.

The lock is a file created atomically (O_EXCL) that names its holder. It is stale when its process
is gone (same host), when its heartbeat stopped (another host): the holder refreshes the file's mtime
while training, or when its holder was an earlier start of this SLURM job (SLURM runs one start of
a job at a time: a requeued job takes over its own lock at once, on any host).
"""

import json
import os
import socket
import time
from pathlib import Path

from degradation.runs.rundir import RunDir

FRESH_S = 10  # an unreadable lock younger than this is being written, not abandoned
STALE_AFTER_S = 15 * 60  # a holder on another host that has not refreshed the lock for this long is gone


class RunLocked(Exception):
    def __init__(self, path: Path, holder: dict):
        super().__init__(f"{path.parent} is being trained by pid {holder.get('pid')} on {holder.get('host')}")
        self.holder = holder


def holder_alive(holder: dict, lock_path: Path) -> bool:
    if holder.get("slurm_job") and holder.get("slurm_job") == os.environ.get("SLURM_JOB_ID"):
        return False  # an earlier start of this requeued job
    if holder.get("host") != socket.gethostname():
        return time.time() - lock_path.stat().st_mtime < STALE_AFTER_S
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = RunDir(run_dir).lock_path

    def acquire(self) -> None:
        """Takes the lock, replacing a stale one; raises RunLocked if a live process holds it."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "slurm_job": os.environ.get("SLURM_JOB_ID")}
        while True:
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = self.read_holder()
                if holder is None and self.age_s() < FRESH_S:  # its holder is still writing its name
                    raise RunLocked(self.path, {"pid": "?", "host": "?"}) from None
                if holder is not None and holder_alive(holder, self.path):
                    raise RunLocked(self.path, holder) from None
                self.path.unlink(missing_ok=True)  # stale: its holder is gone
                continue
            with os.fdopen(descriptor, "w") as file:
                json.dump(me, file)
            return

    def live_holder(self) -> dict | None:
        """Who holds the lock, if that process is still alive."""
        holder = self.read_holder()
        return holder if holder is not None and holder_alive(holder, self.path) else None

    def read_holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None  # vanished, or half-written by a holder that died: treat as stale

    def age_s(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return float("inf")

    def heartbeat(self) -> None:
        self.path.touch(exist_ok=True)

    def release(self) -> None:
        holder = self.read_holder()
        if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)
