"""A sweep of runs: jobs checked first (check), GPUs shared (gpu_sharing), SLURM followed (slurm), its table (table)."""
