"""SLURM sweeps (`launcher=slurm`): hydra-submitit-launcher's launcher, with what a real cluster needs.

The library's launcher waits on its jobs one after another and raises at the first that ends without a
result (cancelled, killed), leaving the others unwatched; sbatch's refusal is a 20-line traceback. This one
says a refusal in one `error:` line, follows every job to its end through its requeues, and names the log
of a job that ended without a result; the sweep's table then reports every run.

Inside a job, after a preemption signal has become a checkpoint (training/callbacks.py), it asks SLURM what
it is doing with the job: one that SLURM is requeueing (preemption, `scontrol requeue`) or ending (`scancel`,
the time limit) is left to it; one still RUNNING (a signal sent ahead: submitit's USR2 before the time limit,
`scancel --signal=TERM`) is requeued by submitit's own handler, which counts time-outs (max_num_timeout).
"""

import contextlib
import io
import logging
import signal
import subprocess
import time
from pathlib import Path

import submitit
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf
from submitit.core.utils import FailedJobError, UncompletedJobError

from degradation.errors import UserError
from degradation.sweeps.check import compose_job
from degradation.training.callbacks import Preempted
from degradation.training.lifecycle import planned_action

log = logging.getLogger(__name__)
POLL_S = 2.0  # how often the sweep looks at its jobs (submitit asks sacct less often, backing off to 10 min)
EXECUTOR_KEYS = ("submitit_folder", "max_num_timeout")  # the executor's own arguments, not sbatch's


def run_in_job(run_job):
    """Runs one job of the sweep on the cluster; after a preemption, requeues the job where SLURM will not."""
    try:
        return run_job()
    except Preempted:
        requeue_unless_slurm_does()
        raise


def launch(launcher, job_overrides, initial_job_idx: int) -> list[JobReturn]:
    """Submits the sweep's jobs as one job array and follows every job to its end."""
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    returns = [JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED) for overrides in job_overrides]
    todo = [number for number, overrides in enumerate(job_overrides) if needs_a_job(launcher.config, overrides)]
    if len(todo) < len(job_overrides):
        log.info(
            "%d of %d runs finished or being trained elsewhere: not submitted",
            len(job_overrides) - len(todo),
            len(job_overrides),
        )
    if not todo:
        return returns
    job_args = [
        (
            list(job_overrides[number]),
            "hydra.sweep.dir",
            initial_job_idx + number,
            f"job_id_for_{number}",
            Singleton.get_state(),
        )
        for number in todo
    ]
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's refusal too: said once, below
            jobs = executor(launcher.params).map_array(launcher, *zip(*job_args))
    except (FailedJobError, subprocess.CalledProcessError, OSError) as refused:
        raise UserError(f"sbatch refused the sweep's jobs: {sbatch_reason(refused)}") from None
    names = [" ".join(filter_overrides(job_overrides[number])) for number in todo]
    log.info(
        "submitted %d job(s) as SLURM array %s (logs in %s/); following them to their end "
        "(Ctrl-C stops following, not the jobs)",
        len(jobs),
        jobs[0].job_id.split("_")[0],
        Path(launcher.params["submitit_folder"]).parent,
    )
    follow(jobs, names)
    for number, job in zip(todo, jobs):
        returns[number] = job_return(job, job_overrides[number])
    return returns


def needs_a_job(config, overrides) -> bool:
    """Whether the job's run has training left that nobody is doing: a finished run (a rerun of the sweep) or one a
    live process trains is not queued again."""
    hydra_overrides = list(OmegaConf.to_container(config.hydra.overrides.hydra, resolve=False))
    cfg, run_dir = compose_job(list(overrides), hydra_overrides)
    return planned_action(cfg, run_dir) in ("train", "resume")


def executor(params: dict) -> submitit.AutoExecutor:
    """The executor hydra-submitit-launcher builds, from the same parameters."""
    built = submitit.AutoExecutor(
        cluster="slurm", folder=params["submitit_folder"], slurm_max_num_timeout=params["max_num_timeout"]
    )
    queue_keys = set(OmegaConf.structured(BaseQueueConf).keys())
    built.update_parameters(
        **{
            key if key in queue_keys else f"slurm_{key}": value
            for key, value in params.items()
            if key not in EXECUTOR_KEYS
        }
    )
    return built


def sbatch_reason(refused: Exception) -> str:
    lines = [line.strip() for line in str(refused).splitlines() if line.strip()]
    reason = next((line for line in lines if "error" in line.lower()), lines[0] if lines else type(refused).__name__)
    hint = (
        " (a cluster without GPUs as generic resources: hydra.launcher.gpus_per_node=0)"
        if "gres" in reason.lower()
        else ""
    )
    return reason.removeprefix("sbatch: error: ") + hint


# SLURM's states of a job that has not ended: a requeued job is PENDING (or REQUEUED) again, whatever it left behind.
NOT_ENDED = {
    "PENDING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
}


def follow(jobs: list, names: list[str]) -> None:
    """Waits for every job to end, saying when SLURM has requeued one (it then resumes from its checkpoint).

    A job has ended when SLURM says so, not when submitit finds a result file: a job that returned while SLURM
    requeued it (a preemption its run did not hand over) leaves a result and runs again."""
    restarts = dict.fromkeys((job.job_id for job in jobs), 0)
    while True:
        states = job_states(jobs[0].job_id.split("_")[0])
        for job, name in zip(jobs, names):
            state, count = states.get(job.job_id, (None, restarts[job.job_id]))
            if count > restarts[job.job_id]:
                log.warning("SLURM job %s (%s) was requeued: it resumes from its last checkpoint", job.job_id, name)
                restarts[job.job_id] = count
        if all(job.done() and states.get(job.job_id, (None,))[0] not in NOT_ENDED for job in jobs):
            return
        time.sleep(POLL_S)


def job_states(array_id: str) -> dict[str, tuple[str, int]]:
    """Each started task of a job array: its state and how often SLURM has started it again (scontrol's JobState and
    Restarts; sacct keeps neither as it is now). Empty when scontrol cannot say (the job is long gone)."""
    try:
        shown = subprocess.run(["scontrol", "show", "job", "-o", array_id], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    states = {}
    for line in shown.stdout.splitlines():
        fields = dict(field.split("=", 1) for field in line.split() if "=" in field)
        if "Restarts" in fields and "JobState" in fields:
            states[job_id_of(fields)] = (fields["JobState"], int(fields["Restarts"]))
    return states


def job_id_of(fields: dict[str, str]) -> str:
    """submitit's name of a job that scontrol shows: <array>_<task>, or the job's id (a sweep of one job is no
    array)."""
    if "ArrayTaskId" in fields:
        return f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
    return fields["JobId"]


def job_return(job, overrides) -> JobReturn:
    """What Hydra gets back for a job. A job that ended without a result is logged here and reported by the sweep
    table (from its run directory), so Hydra is not handed an exception that would hide the table."""
    try:
        returned = job.results()[0]
    except (UncompletedJobError, FailedJobError):
        returned = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
    if returned.status != JobStatus.COMPLETED:
        log.error(
            "SLURM job %s (%s) ended %s without a result; its log: %s",
            job.job_id,
            " ".join(filter_overrides(overrides)),
            job.state,
            job.paths.stderr,
        )
        returned.status, returned.return_value = JobStatus.COMPLETED, None
    return returned


def requeue_unless_slurm_does() -> None:
    """In a job that stopped at a preemption signal with a checkpoint saved."""
    job_id = submitit.JobEnvironment().job_id
    state = slurm_state(job_id)
    if state != "RUNNING":
        log.warning(
            "SLURM job %s is %s: SLURM requeues a preempted job itself; a cancelled or timed-out one ends "
            "here (rerun the sweep to resume it)",
            job_id,
            state or "of unknown state",
        )
        return
    log.warning("requeueing SLURM job %s: it resumes from this checkpoint when it starts again", job_id)
    signal.raise_signal(getattr(signal, f"SIG{submitit.JobEnvironment.USR_SIG}"))  # submitit's handler: requeue, exit


def slurm_state(job_id: str) -> str | None:
    try:
        result = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None
