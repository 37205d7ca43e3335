"""What a sweep adds to single runs: the plan checked before any job starts, the end-of-sweep table and exit status."""

import logging
import sys
from pathlib import Path

from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from degradation.errors import UserError, exit_with
from degradation.runs.lock import RunLock
from degradation.runs.results import number
from degradation.runs.rundir import FINISHED, RUNNING, RunDir, find_runs

log = logging.getLogger(__name__)


NOT_RUN = "not run"  # planned, but no summary.json: its job never started, or ended before the run began


def sweep_table(sweep_dir: Path, planned: list[Path] = ()) -> tuple[str, list[str]]:
    """One line per run (every planned run, and any other run of the sweep folder): status, final errors, wall
    time; then, for each run that failed, its error and where its job logged; and the runs that failed."""
    lines = [f"{'run':<22} {'status':<12} {'steps':>7} {'train err %':>11} {'test err %':>10} {'wall s':>8}"]
    failed, reasons = [], []
    runs = {run.path: run for run in find_runs(sweep_dir)}
    runs.update({path: RunDir(path) for path in planned if path not in runs})
    for path in sorted(runs):
        run = runs[path]
        summary = run.read_summary() or {"status": NOT_RUN}
        name, status = str(run.path.relative_to(sweep_dir)), summary["status"]
        if status in (RUNNING, NOT_RUN) and RunLock(run.path).live_holder():
            status = "elsewhere"  # another process (a second sweep) is training it right now
        elif status not in FINISHED:  # diverged is a result (plain-110 may), not a failure
            failed.append(name)
            reasons.append(f"  {name}: {failure_reason(summary)}")
        lines.append(
            f"{name:<22} {status:<12} {summary.get('steps', 0):>7} "
            f"{number(summary.get('final_train_err')):>11} {number(summary.get('final_test_err')):>10} "
            f"{number(summary.get('wall_time_s'), 0):>8}"
        )
    return "\n".join(lines + reasons), failed


def failure_reason(summary: dict) -> str:
    if summary["status"] == NOT_RUN:
        return "never started (its job ended before the run began: see the lines above the table)"
    reason = f"{summary.get('error') or summary['status']}; its train.log has the details"
    job = summary.get("slurm")
    return f"{reason}; SLURM job {job['job_id']}, log {job.get('log', '(not under submitit)')}" if job else reason


class SweepTable(Callback):
    """Checks every job before the first starts (a dry run stops there, with its plan); prints every run
    of the sweep with its status when the multirun ends, and exits 1 if any failed.

    Hydra turns a callback's exception into a warning, so a refusal exits here, with one line."""

    def __init__(self):
        self.planned: list[Path] = []  # every job's run directory, so a job that never started is reported too

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from degradation.sweeps.check import describe, plan_sweep  # composes configs: only in the launching process

        try:
            plan, notes = plan_sweep(config)
        except (UserError, HydraException, OmegaConfBaseException) as error:
            exit_with(error)
        self.planned = [run_dir.path for _, run_dir, _ in plan]
        if config.dry_run:
            print(describe(plan, notes, Path(config.hydra.sweep.dir)), flush=True)
            sys.exit(0)  # before Hydra's sweeper writes multirun.yaml or any job starts

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        table, failed = sweep_table(sweep_dir, self.planned)
        print(f"\nsweep {sweep_dir}\n{table}", flush=True)
        if failed:
            print(f"{len(failed)} run(s) failed. Rerun the same command to retry them (interrupted runs resume).")
            sys.exit(1)  # a scheduler or script sees that the sweep is not done
