"""Hydra looks for launchers only in the hydra_plugins namespace: `launcher=slurm`'s class is registered here."""
