"""Puts faults.py's FAULT into the Python of a SLURM job: the SLURM tests run sweeps with this folder on PYTHONPATH,
which sbatch passes on to the jobs with the rest of the environment. Outside a job (the sweep itself) it does
nothing."""

import os
import sys
from pathlib import Path

if os.environ.get("FAULT") and os.environ.get("SLURM_JOB_ID"):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "reliability"))
    import faults

    faults.install(os.environ["FAULT"])
