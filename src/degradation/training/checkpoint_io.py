"""Checkpoints that survive being killed mid-write: Lightning's checkpoint I/O, atomic and fsynced.

Lightning's own save goes through an fsspec transaction whose temporary file lives in the system
temp folder: on another filesystem the final move is a copy, and nothing is fsynced. Here the
bytes go to a temporary file next to the checkpoint, are fsynced, and replace it with one rename;
the checkpoint being replaced is kept as previous.ckpt, the fallback when last.ckpt is unreadable
(runs/checkpoints.py reads them).
"""

import io
from pathlib import Path

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from degradation.runs.rundir import PREVIOUS_CHECKPOINT, write_atomically


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
