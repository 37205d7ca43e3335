"""A run on disk: the run directory (the contract), its lock, its checkpoints, where its numbers came from, its W&B
record, and a sweep of runs read back as data."""
