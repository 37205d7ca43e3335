"""What a sweep adds to single runs: the end-of-sweep table (and exit status) and one GPU per parallel job."""

import logging
import os
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from degradation.lock import RunLock
from degradation.results import number
from degradation.rundir import FINISHED, MULTIRUN_FILE, RUNNING, find_runs, remove_empty_folders

log = logging.getLogger(__name__)


def sweep_table(sweep_dir: Path) -> tuple[str, list[str]]:
    """One line per run: status, final errors, wall time; and the runs that failed."""
    lines = [f"{'run':<22} {'status':<12} {'steps':>7} {'train err %':>11} {'test err %':>10} {'wall s':>8}"]
    failed = []
    for run in find_runs(sweep_dir):
        summary = run.read_summary()
        name, status = str(run.path.relative_to(sweep_dir)), summary["status"]
        if status == RUNNING and RunLock(run.path).live_holder():
            status = "elsewhere"  # another process (a second sweep) is training it right now
        elif status not in FINISHED:  # diverged is a result (plain-110 may), not a failure
            failed.append(name)
        lines.append(
            f"{name:<22} {status:<12} {summary.get('steps', 0):>7} "
            f"{number(summary.get('final_train_err')):>11} {number(summary.get('final_test_err')):>10} "
            f"{number(summary.get('wall_time_s'), 0):>8}"
        )
    return "\n".join(lines), failed


class SweepTable(Callback):
    """Prints every run of the sweep with its status when a multirun ends; exits 1 if any failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if [path.name for path in sweep_dir.iterdir()] == [MULTIRUN_FILE]:  # no run started: a dry run
            (sweep_dir / MULTIRUN_FILE).unlink()
        remove_empty_folders(sweep_dir, up_to=Path(config.runs_root))
        if not sweep_dir.is_dir():
            return
        table, failed = sweep_table(sweep_dir)
        print(f"\nsweep {sweep_dir}\n{table}", flush=True)
        if failed:
            print(f"{len(failed)} run(s) failed; their train.log has the error. Rerun the same command to retry them.")
            sys.exit(1)  # a scheduler or script sees that the sweep is not done


def assign_gpu(job_num: int) -> None:
    """Pins a parallel sweep job to one GPU (round robin) on a machine with several.

    Works by CUDA_VISIBLE_DEVICES, so it must run before CUDA is initialised in this process.
    """
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    if len(ids) >= 2 and not torch.cuda.is_initialized():  # a reused worker process keeps the GPU it has
        os.environ["CUDA_VISIBLE_DEVICES"] = ids[job_num % len(ids)]
