"""A run on disk: its directory (the contract), lock, checkpoints, provenance, W&B record; a sweep read back as data."""
