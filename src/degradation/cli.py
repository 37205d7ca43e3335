"""The command line of training: `python -m degradation.train [overrides]` (or `degradation-train`).

One readable `error:` line for everything a user can fix, and exit codes a scheduler can act on:
0 done, 1 a run (or a sweep's run) failed, 2 bad input, 128+signal when preempted.
"""

import logging
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from degradation.conf import CONFIG_DIR
from degradation.errors import UserError, exit_with
from degradation.nets.registry import families_with
from degradation.runs.lock import RunLocked
from degradation.runs.rundir import RunDir
from degradation.sweeps import gpu_sharing
from degradation.training import lifecycle
from degradation.training.progress import quiet_lightning
from hydra_plugins.degradation_launcher.slurm_launcher import SlurmLauncher

log = logging.getLogger("degradation.train")


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base=None)
def hydra_entry(cfg: DictConfig) -> dict | None:
    hydra_cfg = HydraConfig.get()
    run_dir = RunDir(hydra_cfg.runtime.output_dir)
    quiet_lightning()
    logging.captureWarnings(True)  # warnings go through logging: into train.log too, not only to the terminal
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    if in_sweep and cfg.trainer.accelerator != "cpu":
        gpu_sharing.place_sweep_job(hydra_cfg.job.num, cfg.get("jobs", 1), cfg.trainer.spread_gpus)
    try:
        return lifecycle.train(cfg, run_dir)
    except RunLocked as locked:
        if not in_sweep:
            exit_with(locked)
        log.warning("skipped: %s", locked)  # a sweep goes on with the runs nobody else is training
    except OSError as error:
        # A full disk or a vanished run directory: say which file, not a traceback.
        where = error.filename or run_dir.path
        message = f"{error.strerror or error}: {where}; the run stopped with its last checkpoint intact"
        if not in_sweep:
            exit_with(UserError(message), code=1)
        log.error("run failed: %s", message)
    except UserError as error:
        if in_sweep and os.environ.get("SUBMITIT_EXECUTOR"):
            # A job of its own (SLURM, submitit_local) cannot stop the others: the run records why it failed.
            lifecycle.record_failure(cfg, run_dir, error)
            log.error("run failed: %s", error)
            return None
        # Bad input stops a sweep too, before hours go into the other jobs. Exiting here, not in
        # main(), also keeps Hydra from adding lines of its own.
        run_dir.discard_if_empty(runs_root=Path(cfg.runs_root))
        exit_with(error)
    except Exception:
        if not in_sweep:
            raise
        log.exception("run failed: %s", run_dir.path)  # into this run's train.log; the sweep goes on
    return None


def another_familys_key(error: Exception) -> UserError | None:
    """`model.block=preact` with model=resnet18: a key its family does not have, said with the families that do."""
    key = getattr(error.__cause__, "full_key", None) or ""
    owners = families_with(key.removeprefix("model.")) if key.startswith("model.") else []
    if not isinstance(error.__cause__, ConfigKeyError | ConfigAttributeError) or not owners:
        return None
    return UserError(f"{key} is not a key of this model's family: only family {' and '.join(owners)} has it")


def main() -> None:
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        os.environ["DEGRADATION_TRACEBACK"] = "1"  # the user asked for full tracebacks
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let config errors reach us instead of Hydra's multi-line report
    Plugins.instance().register(SlurmLauncher)  # Hydra's own scan misses it in an editable install
    try:
        hydra_entry()
    except (UserError, RunLocked, HydraException, OmegaConfBaseException) as error:
        exit_with(another_familys_key(error) or error)
    except OSError as error:  # Hydra could not create the run directory
        exit_with(
            UserError(
                f"cannot write {error.filename or 'the run directory'}: {error.strerror or error} (check runs_root)"
            )
        )
