"""A sweep checks itself before any job starts: every job's config, the data, the run directories
(clashes, live locks) and the launcher. One `error:` line naming the job on a problem, before anything
is trained or written. A dry run prints the plan and a summary, and writes nothing at all.
"""

import shutil
from collections import Counter
from pathlib import Path

from hydra import compose
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from degradation.data.cifar10 import ensure_cifar10, has_all_batches
from degradation.errors import UserError
from degradation.runs.rundir import RunDir
from degradation.training.config import check_config
from degradation.training.lifecycle import planned_action

# Launchers that hand jobs to a program that must exist on this machine.
LAUNCHER_PROGRAMS = {"SlurmLauncher": "sbatch"}


def job_overrides(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, as Hydra's basic sweeper expands the grid (sweep params, then the command line)."""
    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    task = list(OmegaConf.to_container(config.hydra.overrides.task, resolve=False))
    parsed = OverridesParser.create().parse_overrides(params + task)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def compose_job(overrides: list[str], hydra_overrides: list[str]) -> tuple[DictConfig, RunDir]:
    """A job's config and its run directory, composed as the job itself will compose them (with the
    command line's hydra.* overrides, e.g. hydra.searchpath)."""
    cfg = compose(config_name="train", overrides=[*hydra_overrides, *overrides], return_hydra_config=True)
    run_dir = RunDir(Path(OmegaConf.select(cfg, "hydra.sweep.dir")) / OmegaConf.select(cfg, "hydra.sweep.subdir"))
    with open_dict(cfg):
        del cfg["hydra"]  # as a job sees its config
    return cfg, run_dir


def check_launcher(config: DictConfig) -> None:
    target = str(OmegaConf.select(config, "hydra.launcher._target_") or "")
    program = next((program for name, program in LAUNCHER_PROGRAMS.items() if target.endswith(name)), None)
    if program and shutil.which(program) is None:
        raise UserError(
            f"this launcher submits jobs with {program}, which is not on this machine's PATH "
            "(launcher=local or launcher=joblib run here)"
        )


def check_data(cfg: DictConfig, dry_run: bool) -> str | None:
    """Refuses a missing CIFAR-10 that may not be downloaded; a dry run downloads nothing and says so."""
    if dry_run and cfg.data.download and not has_all_batches(Path(cfg.data.root) / "cifar-10-batches-py"):
        return f"CIFAR-10 will be downloaded into {cfg.data.root}/"
    if not dry_run or not cfg.data.download:
        ensure_cifar10(cfg.data.root, download=cfg.data.download)
    return None


def plan_sweep(config: DictConfig) -> tuple[list[tuple[str, RunDir, str]], list[str]]:
    """(the job's overrides, its run directory, what it would do) for every job; UserError names a bad job."""
    check_launcher(config)
    plan, directories, data_checked = [], {}, {}
    jobs = job_overrides(config)
    hydra_overrides = list(OmegaConf.to_container(config.hydra.overrides.hydra, resolve=False))
    for number, overrides in enumerate(jobs):
        name = " ".join(o for o in overrides if not all(o in job for job in jobs)) or " ".join(overrides[:3])
        try:
            cfg, run_dir = compose_job(overrides, hydra_overrides)
            check_config(cfg)
            if cfg.data.root not in data_checked:
                data_checked[cfg.data.root] = check_data(cfg, config.dry_run)
            action = planned_action(cfg, run_dir)
        except UserError as error:
            raise UserError(f"job #{number} ({name}): {error}") from None
        if run_dir.path in directories:
            raise UserError(
                f"jobs #{directories[run_dir.path]} and #{number} ({name}) would both write {run_dir.path}: "
                "vary only what names run directories (model, model.depth, seed), or use name="
            )
        directories[run_dir.path] = number
        plan.append((name, run_dir, action))
    return plan, [note for note in data_checked.values() if note]


def describe(plan, notes, sweep_dir: Path) -> str:
    """The dry run's report: one line per job, then the counts and where runs and figures will go."""
    lines = [f"{action:<20} {run_dir.path}" for _, run_dir, action in plan]
    counts = Counter(action.split(" ")[0] for _, _, action in plan)
    lines += notes
    lines.append(
        f"dry run: {len(plan)} jobs: {counts['train']} to train, {counts['resume']} to resume, "
        f"{counts['skip']} to skip, {counts['elsewhere']} being trained elsewhere; "
        f"runs in {sweep_dir}/, figures with `make figures SWEEP={sweep_dir}`. Nothing was written."
    )
    return "\n".join(lines)
