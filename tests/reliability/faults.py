"""`python -m degradation.train` with faults injected, chosen by FAULT=<kind>:<count>[:<signal>][,<kind>:...].

    kill-step:N          SIGKILL in the middle of training step N (after its forward pass)
    kill-checkpoint:K    SIGKILL inside the K-th checkpoint write, with only half its bytes on disk
    kill-rename:K        SIGKILL between the two renames that install the K-th checkpoint
    kill-metrics:K       SIGKILL with only the first character of the K-th metrics row written
    signal-step:N:SIG    send SIGTERM or SIGUSR1 to itself during training step N
    signal-all:N:SIG     send SIG<SIG> to itself and every process it started (W&B's service among them) during
                         training step N, as SLURM signals every process of a job
    signal-eval:K:SIG    send SIGTERM or SIGUSR1 to itself during the first batch of the K-th evaluation
    kill-wandb:N         SIGTERM W&B's service (wandb-core) during training step N, as a scheduler's signal would
    fail-after-signal:N  during training step N, SIGTERM to itself, then a failure (as when the signal also took down
                         a helper process the step relied on, a compiler of torch.compile say)
    preempted-returns:0  a preempted run returns as if it had ended (what a W&B error at the preemption once did),
                         so its SLURM job writes a result while SLURM has requeued it
    wait-step:N          wait during training step N until the file named by RELEASE exists (at most 5 min) or a
                         preemption signal arrives (the run then stops at step N; resumed, it does not pass N again);
                         once its signal handlers are in place it says WAITING in train.log: a test signals the
                         run after that, never before the wait
    enospc-metrics:K     the K-th metrics row fails with "No space left on device"
    enospc-checkpoint:K  the K-th checkpoint fails with "No space left on device" half-way through

Used by the reliability tests as `python faults.py <overrides>`, and inside SLURM jobs through
tests/slurm/site/sitecustomize.py; the training code is untouched.
"""

import errno
import logging
import os
import signal
import sys
import time
from pathlib import Path
from unittest import mock

from degradation import cli
from degradation.runs.rundir import MetricsWriter
from degradation.training import checkpoint_io
from degradation.training.module import ClassifierModule


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def signal_self(name: str):
    """An action that sends this process SIG<name> (TERM, USR1)."""
    signum = getattr(signal, f"SIG{name}")
    return lambda: os.kill(os.getpid(), signum)


def children() -> list[int]:
    """Every process this one started, and theirs."""
    found, todo = [], [os.getpid()]
    while todo:
        listed = Path(f"/proc/{todo.pop()}/task")
        for task in listed.iterdir() if listed.is_dir() else ():
            kids = (task / "children").read_text().split() if (task / "children").is_file() else []
            found += [int(kid) for kid in kids]
            todo += [int(kid) for kid in kids]
    return found


def signal_all(name: str):
    """An action that sends SIG<name> to this process and all it started, as SLURM does to a job's processes."""
    signum = getattr(signal, f"SIG{name}")

    def send() -> None:
        for pid in children():
            os.kill(pid, signum)
        os.kill(os.getpid(), signum)

    return send


def kill_wandb_service() -> None:
    services = [pid for pid in children() if "wandb-core" in Path(f"/proc/{pid}/cmdline").read_text()]
    assert services, "no W&B service to kill"
    for pid in services:
        os.kill(pid, signal.SIGTERM)
        while Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text():
            time.sleep(0.01)  # gone before the step's row goes to W&B


def fail_after_signal() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    raise RuntimeError("a compile worker died (simulated)")


def preempted_returns() -> None:
    from degradation.training import lifecycle
    from degradation.training.callbacks import Preempted

    train = lifecycle.train

    def returning(*args, **kwargs):
        try:
            return train(*args, **kwargs)
        except Preempted:
            return None

    lifecycle.train = returning


def disk_full(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def nth_call(count: int, original, fault):
    """Wraps `original` so that its count-th call runs `fault(original, *args)` instead."""
    calls = 0

    def wrapper(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == count:
            return fault(original, *args, **kwargs)
        return original(*args, **kwargs)

    return wrapper


def during_evaluation(count: int, action):
    original = ClassifierModule.validation_step
    evaluations = 0

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        nonlocal evaluations
        if batch_idx == 0 and dataloader_idx == 0:
            evaluations += 1
            if evaluations == count:
                action()
        return original(self, batch, batch_idx, dataloader_idx)

    ClassifierModule.validation_step = validation_step


def wait_for(path: Path, timeout_s: float = 300.0, until=lambda: False) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists() and not until() and time.monotonic() < deadline:
        time.sleep(0.05)


PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


WAITING = "fault wait-step: waiting for the release or a signal"


def wait_for_release_or_a_signal(release: Path) -> None:
    """A signal ends the wait the moment it arrives (then handled as the run would): a test that signals a waiting
    run never races the signal's delivery against its own release of the wait. The wait is announced only once
    these handlers are in place; a signal sent before the wait began would find no one to end it."""
    previous = {sig: signal.getsignal(sig) for sig in PREEMPTION_SIGNALS}
    signalled = []

    def on_signal(signum, frame):
        signalled.append(signum)
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    for sig in PREEMPTION_SIGNALS:
        signal.signal(sig, on_signal)
    logging.getLogger(__name__).warning(WAITING)  # into the run's train.log
    try:
        wait_for(release, until=lambda: bool(signalled))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def during_step(step: int, action):
    original = ClassifierModule.training_step

    def training_step(self, batch, batch_idx):
        loss = original(self, batch, batch_idx)
        if self.global_step == step:  # the step's update is done; its row and checkpoint are not
            action()
        return loss

    ClassifierModule.training_step = training_step


def half_written_checkpoint(original, path, data, **kwargs):
    """Runs the real write, and kills it when it syncs the file it wrote: cut to half its bytes."""

    def fsync_then_die(descriptor):
        os.ftruncate(descriptor, len(data) // 2)
        die()

    with mock.patch.object(os, "fsync", fsync_then_die):
        original(path, data, **kwargs)


def killed_between_renames(original, path, data, **kwargs):
    """Runs the real write, and kills it after its first rename (last.ckpt moved aside), before the second."""
    real_replace, renames = os.replace, 0

    def replace_then_die(source, destination):
        nonlocal renames
        renames += 1
        if renames == 2:
            die()
        real_replace(source, destination)

    with mock.patch.object(os, "replace", replace_then_die):
        original(path, data, **kwargs)


def half_written_row(original, writer, *args, **kwargs):
    """The real write, cut after the row's first character: the worst place, as '12,...' then reads as step 1."""
    original(writer, *args, **kwargs)
    content = writer.path.read_bytes()
    last_line_start = content.rstrip(b"\r\n").rfind(b"\n") + 1
    writer.path.write_bytes(content[: last_line_start + 1])
    die()


def no_space_for_row(original, writer, *args, **kwargs):
    raise disk_full(writer.path)


def no_space_for_checkpoint(original, path, data, **kwargs):
    """Runs the real write; the disk fills up when it syncs the file it wrote, a third of the bytes on disk."""

    def fsync_on_a_full_disk(descriptor):
        os.ftruncate(descriptor, len(data) // 3)
        raise disk_full(path)

    with mock.patch.object(os, "fsync", fsync_on_a_full_disk):
        original(path, data, **kwargs)


def install(faults: str) -> None:
    """One fault, or several separated by commas."""
    for fault in faults.split(","):
        install_one(fault)


def install_one(fault: str) -> None:
    kind, count, *rest = fault.split(":")
    count = int(count)
    if kind == "kill-step":
        during_step(count, die)
    elif kind == "signal-step":
        during_step(count, signal_self(rest[0]))
    elif kind == "signal-all":
        during_step(count, signal_all(rest[0]))
    elif kind == "kill-wandb":
        during_step(count, kill_wandb_service)
    elif kind == "fail-after-signal":
        during_step(count, fail_after_signal)
    elif kind == "preempted-returns":
        preempted_returns()
    elif kind == "signal-eval":
        during_evaluation(count, signal_self(rest[0]))
    elif kind == "wait-step":
        release = Path(os.environ["RELEASE"])
        during_step(count, lambda: wait_for_release_or_a_signal(release))
    elif kind in ("kill-checkpoint", "kill-rename", "enospc-checkpoint"):
        fault_fn = {
            "kill-checkpoint": half_written_checkpoint,
            "kill-rename": killed_between_renames,
            "enospc-checkpoint": no_space_for_checkpoint,
        }[kind]
        checkpoint_io.write_atomically = nth_call(count, checkpoint_io.write_atomically, fault_fn)
    elif kind in ("kill-metrics", "enospc-metrics"):
        fault_fn = half_written_row if kind == "kill-metrics" else no_space_for_row
        MetricsWriter.write = nth_call(count, MetricsWriter.write, fault_fn)
    else:
        raise SystemExit(f"unknown FAULT {fault!r}")


if __name__ == "__main__":
    install(os.environ["FAULT"])
    sys.argv = ["train", *sys.argv[1:], "hydra.job.name=train"]
    cli.main()
