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
from degradation.runs.rundir import FINISHED, RUNNING, find_runs

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
    """Checks every job before the first starts (a dry run stops there, with its plan); prints every run
    of the sweep with its status when the multirun ends, and exits 1 if any failed.

    Hydra turns a callback's exception into a warning, so a refusal exits here, with one line."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from degradation.sweeps.check import describe, plan_sweep  # composes configs: only in the launching process

        try:
            plan, notes = plan_sweep(config)
        except (UserError, HydraException, OmegaConfBaseException) as error:
            exit_with(error)
        if config.dry_run:
            print(describe(plan, notes, Path(config.hydra.sweep.dir)), flush=True)
            sys.exit(0)  # before Hydra's sweeper writes multirun.yaml or any job starts

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        table, failed = sweep_table(sweep_dir)
        print(f"\nsweep {sweep_dir}\n{table}", flush=True)
        if failed:
            print(f"{len(failed)} run(s) failed; their train.log has the error. Rerun the same command to retry them.")
            sys.exit(1)  # a scheduler or script sees that the sweep is not done

