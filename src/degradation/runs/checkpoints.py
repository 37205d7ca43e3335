"""Reading a run's checkpoints: onto the CPU, weights only (tensors and plain containers, no pickled code), and
the choice of which one to resume from. Writing them is training/checkpoint_io.py's.
"""

import logging
import os
from pathlib import Path
from typing import NamedTuple

import torch

from degradation.runs.rundir import PREVIOUS_CHECKPOINT, temporary_path

log = logging.getLogger(__name__)


def load(path: Path) -> dict:
    """A checkpoint's contents on the CPU, whatever device saved it."""
    return torch.load(path, map_location="cpu", weights_only=True)


class SavedNetwork(NamedTuple):
    """What a checkpoint holds of its network: the arguments that build it, its weights, the step it was saved at."""

    net_args: dict
    weights: dict
    step: int


def saved_network(path: Path) -> SavedNetwork:
    """The network of a training checkpoint (the module holds it as `net`, its hyper-parameters as `net`)."""
    saved = load(path)
    weights = {
        name.removeprefix("net."): value for name, value in saved["state_dict"].items() if name.startswith("net.")
    }
    return SavedNetwork(saved["hyper_parameters"]["net"], weights, saved["global_step"])


def checkpoint_step(path: Path) -> int:
    """The iteration a Lightning checkpoint was saved at."""
    return load(path)["global_step"]


def readable_checkpoint(last: Path) -> tuple[Path, int] | None:
    """(path, step) of the newest checkpoint that loads: last.ckpt, else previous.ckpt.

    An unreadable one (truncated, corrupted) is renamed to <name>.corrupt and reported, so a run
    never continues from mixed state and the evidence stays for inspection.
    """
    temporary_path(last).unlink(missing_ok=True)  # a save that was killed before its rename
    for path in (last, last.with_name(PREVIOUS_CHECKPOINT)):
        if not path.is_file():
            continue
        try:
            return path, checkpoint_step(path)
        except Exception as error:  # truncated zip, bad pickle, missing keys: all mean unreadable
            corrupt = path.with_name(path.name + ".corrupt")
            os.replace(path, corrupt)
            log.warning(
                "%s is unreadable (%s: %s); moved to %s", path, type(error).__name__, str(error)[:120], corrupt.name
            )
    return None
