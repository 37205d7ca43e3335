"""Checkpoints that survive being killed mid-write, and the choice of which one to resume from.

Lightning's own save goes through an fsspec transaction whose temporary file lives in the system
temp folder: on another filesystem the final move is a copy, and nothing is fsynced. Here the
bytes go to a temporary file next to the checkpoint, are fsynced, and replace it with one rename;
the checkpoint being replaced is kept as previous.ckpt, the fallback when last.ckpt is unreadable.
Checkpoints are loaded with weights_only=True: tensors and plain containers, no pickled code.
"""

import io
import logging
import os
from pathlib import Path

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from degradation.runs.rundir import PREVIOUS_CHECKPOINT, temporary_path, write_atomically

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with an atomic, fsynced save and weights-only loading."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(exist_ok=True)  # checkpoints/ only: a vanished run directory stays an error
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomically(path, buffer.getvalue(), keep_previous_as=path.with_name(PREVIOUS_CHECKPOINT))

    def load_checkpoint(self, path, map_location="cpu", weights_only=None) -> dict:
        # Onto the CPU whatever device saved it (Lightning moves the state to this run's device next): a
        # run saved on cuda:1 resumes on cuda:0, and a GPU run on a machine without one.
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


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
            log.warning("%s is unreadable (%s: %s); moved to %s", path, type(error).__name__, str(error)[:120], corrupt.name)
    return None
