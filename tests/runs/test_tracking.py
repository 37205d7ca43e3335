"""W&B never decides a run's fate (runs/tracking.py): every call after the start goes through the Courier, which
turns a failing or stuck W&B into one warning and never makes the training wait."""

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

from degradation.runs.tracking import Courier


def warnings_of(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


def test_calls_run_in_order_and_close_waits_for_them(caplog):
    courier, seen = Courier(), []
    for number in range(100):
        courier.send(seen.append, number)
    assert courier.close(deadline_s=10) and seen == list(range(100)) and warnings_of(caplog) == []


def test_a_call_that_raises_is_one_warning_and_the_calls_after_it_are_dropped(caplog):
    courier, seen = Courier(), []

    def lost_connection(_):
        raise ConnectionResetError("Connection lost")

    courier.send(seen.append, 1)
    for _ in range(3):
        courier.send(lost_connection, None)
    courier.send(seen.append, 2)
    assert not courier.close(deadline_s=10) and seen == [1]
    assert warnings_of(caplog) == [
        "W&B stopped working (ConnectionResetError: Connection lost); the run goes on "
        "without it: metrics.csv has every row"
    ]


def test_a_stuck_wandb_never_makes_the_training_wait(caplog):
    """A call that never returns (a stopped service): sending goes on at once, the queue's limit ends W&B, and
    close gives up at its deadline."""
    stuck = threading.Event()
    courier = Courier(behind_limit=10)
    started = time.monotonic()
    for _ in range(1000):
        courier.send(stuck.wait)
    assert time.monotonic() - started < 1.0
    assert not courier.close(deadline_s=0.5) and time.monotonic() - started < 2.0
    assert warnings_of(caplog) == [
        "W&B stopped working (it fell 10 calls behind); the run goes on without it: metrics.csv has every row"
    ]
    stuck.set()


def test_a_stopped_wandb_service_neither_blocks_the_calls_nor_the_process_exit(tmp_path):
    """Real W&B (offline) whose service is stopped (SIGSTOP): without the courier, the ~200th `run.log` blocks for
    ever, and so does wandb's exit hook. The process must end soon after close's deadline. (Its output goes to a
    file: the stopped service holds any pipe it inherited open.)"""
    script = textwrap.dedent(f"""
        import os, pathlib, signal, wandb
        from degradation.runs.tracking import Courier
        run = wandb.init(mode="offline", project="p", dir={str(tmp_path)!r}, settings=wandb.Settings(console="off"))
        service = int(open(f"/proc/{{os.getpid()}}/task/{{os.getpid()}}/children").read().split()[0])
        pathlib.Path({str(tmp_path / "service")!r}).write_text(str(service))
        os.kill(service, signal.SIGSTOP)
        courier = Courier()
        for step in range(2000):
            courier.send(run.log, {{"loss": 1.0, "padding": "x" * 1000}}, step)
        courier.send(wandb.finish)
        print(courier.close(deadline_s=2), flush=True)
    """)
    output = tmp_path / "output"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "WANDB_SILENT": "true"},
        )
        try:
            process.wait(timeout=60)
        finally:
            process.kill()
            if (tmp_path / "service").is_file():
                subprocess.run(["kill", "-9", (tmp_path / "service").read_text()], capture_output=True)
    printed = output.read_text()
    assert process.returncode == 0 and printed.splitlines()[-1] == "False", printed[-3000:]
    assert "did not finish within 2 s" in printed
