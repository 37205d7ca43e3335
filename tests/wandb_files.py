"""Reads the run record back from an offline W&B run's `.wandb` file (no network, no wandb API).

The file is a leveldb-style log: a 7-byte header, then 32 KiB blocks of records, each with a
7-byte header (crc32, length, type) and a piece of a protobuf `Record`.
"""

import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = 7
FULL, LAST = 1, 4


def records(path: Path) -> list:
    data, position, pending, parsed = path.read_bytes(), HEADER, b"", []
    while position + HEADER <= len(data):
        left_in_block = BLOCK - position % BLOCK
        if left_in_block < HEADER:
            position += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + HEADER])
        position += HEADER
        pending += data[position : position + length]
        position += length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            parsed.append(record)
            pending = b""
    return parsed


def run_record(path: Path):
    return next(r.run for r in records(path) if r.WhichOneof("record_type") == "run")
