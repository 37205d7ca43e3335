"""What computing one analysis of one net is given besides the net: the command's options, the device, the settings
its record will carry, where its progress goes, and (for a run) what an earlier, unfinished call recorded and how
to record a partial result, so that a long computation continues where it stopped."""

import sys
import time
from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass

import torch


class Reporter:
    """Progress on stderr: a line per net, and within one at most a line every few seconds."""

    def __init__(self, total: int, every_s: float = 10.0):
        self.total, self.index, self.every_s = total, 0, every_s

    def say(self, text: str) -> None:
        print(f"[{self.index}/{self.total}] {text}", file=sys.stderr, flush=True)

    def start(self, what: str) -> None:
        self.index += 1
        self.what, self.started, self.last = what, time.monotonic(), time.monotonic()
        self.say(what)

    def within(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s or done == total:
            self.last = now
            self.say(f"{self.what}: {done}/{total} ({now - self.started:.0f} s)")


@dataclass(frozen=True)
class Job:
    options: Namespace  # the command line's (an analysis reads its own options from it)
    device: torch.device
    settings: dict  # what the result depends on besides the weights: recorded with it
    progress: Reporter
    earlier: dict | None = None  # the run's record of this analysis as an earlier call left it (None: no run)
    save: Callable[[dict], None] = lambda partial: None  # writes a partial result as the run's record
