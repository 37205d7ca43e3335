"""A sweep of runs: every job checked before the first starts (check), GPUs shared by parallel jobs (gpu_sharing),
SLURM jobs followed through their requeues (slurm), the end-of-sweep table and exit status (table)."""
