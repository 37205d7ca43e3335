"""Sweeps on a real SLURM cluster (tests/slurm/cluster.sh: slurmctld, slurmd, slurmdbd, munged on this machine):
submitted, preempted, requeued, cancelled, shared by two sweeps, failing. Skipped where no cluster answers."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import TINY_RUN, run_train, subprocess_env, tiny, train_command
from reliability.faults import WAITING

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "tests/slurm/cluster.sh"
SITE = Path(__file__).with_name("site")  # puts a FAULT into the jobs' Python (sitecustomize.py)
# What a job asks of this one-node cluster: no GPUs, one core, a little memory.
SMALL_JOBS = [
    "launcher=slurm",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=60",
]
# As users run sweeps: with W&B (the sweep presets' logger), offline without credentials. Its service is a process
# of the job that SLURM's signals reach too.
WANDB = ["logger=wandb", "logger.wandb.mode=offline"]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> dict[str, str]:
    """The environment that reaches the cluster; the module is skipped, with the reason, without one."""
    status = subprocess.run([str(CLUSTER), "status"], capture_output=True, text=True)
    if status.returncode != 0:
        pytest.skip(f"no SLURM cluster on this machine: `sudo {CLUSTER.relative_to(ROOT)} start` starts one (CI does)")
    return {"SLURM_CONF": status.stdout.strip()}


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory, fake_cifar_root) -> Path:
    """resnet-8, seeds 0-2, trained here one after another: what every SLURM run must end up equal to."""
    cwd = tmp_path_factory.mktemp("local")
    result = run_train("-m", *tiny(fake_cifar_root, "seed=0,1,2", "name=local"), cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd / "runs/local"


def start_sweep(cwd: Path, slurm: dict, *args: str, **env: str) -> subprocess.Popen:
    """A sweep of tiny jobs, in the background; sbatch hands its environment (FAULT, PYTHONPATH) to the jobs."""
    python_path = os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH")]))
    return subprocess.Popen(
        train_command("-m", *args, *SMALL_JOBS),
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=subprocess_env(**slurm, PYTHONPATH=python_path, **env),
    )


def finish(sweep: subprocess.Popen) -> tuple[int, str]:
    output, _ = sweep.communicate(timeout=300)
    return sweep.returncode, output


def summary(run: Path) -> dict | None:
    try:
        return json.loads((run / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def wait_until_waiting(run: Path, sweep: subprocess.Popen) -> str:
    """Waits until the run waits at step 9 with its signal handlers in place (faults.py's wait-step says so in its
    train.log): a signal sent earlier could reach it before the wait, which would then never end. Its SLURM job."""
    deadline = time.monotonic() + 180
    log = run / "train.log"
    while time.monotonic() < deadline and sweep.poll() is None:
        if log.is_file() and WAITING in log.read_text():
            return summary(run)["slurm"]["job_id"]
        time.sleep(0.2)
    raise AssertionError(f"{run} never waited at step 9: {finish(sweep)[1][-3000:] if sweep.poll() else ''}")


def stopped_and_resumed_at(run: Path) -> int:
    """The step a run stopped at on a signal (the one it was in when the signal came: 9 or 10), which must be the
    step its next start resumed from: no work lost."""
    log = (run / "train.log").read_text()
    stopped, resumed = (
        re.search(r"stopped by SIG\w+ at step (\d+)", log),
        re.search(r"from last.ckpt \(step (\d+)\)", log),
    )
    assert stopped and resumed and stopped.group(1) == resumed.group(1), log[-3000:]
    return int(stopped.group(1))


def same_metrics(run: Path, reference: Path) -> bool:
    return (run / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()


def wandb_ids(run: Path) -> set[str]:
    """The W&B run id of every offline attempt of a run (each attempt's file is named after it)."""
    return {path.stem.removeprefix("run-") for path in run.glob("wandb/offline-run-*/run-*.wandb")}


def table_rows(output: str, sweep_dir: str) -> dict[str, str]:
    """The sweep table's status of each run."""
    table = output[output.index(f"sweep {sweep_dir}") :].splitlines()[2:]
    return {line.split()[0]: line.split()[1] for line in table if "/seed=" in line.split(" ")[0]}


def test_make_sweep_cifar_on_slurm_ends_as_the_same_grid_trained_here(slurm, tmp_path, fake_cifar_root, local_runs):
    """A 2-run grid through `make sweep-cifar LAUNCHER=slurm`; the same command again submits nothing."""
    extra = " ".join([*tiny(fake_cifar_root, *WANDB), *SMALL_JOBS[1:], f"runs_root={tmp_path}/runs"])
    make = ["make", "-s", "sweep-cifar", "LAUNCHER=slurm", "ARCHS=resnet", "DEPTHS=8", "SEEDS=0,1", f"EXTRA={extra}"]
    first = subprocess.run(make, cwd=ROOT, env=subprocess_env(**slurm), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    output = first.stdout + first.stderr
    assert "submitted 2 job(s) as SLURM array" in output
    sweep = tmp_path / "runs/cifar"
    assert table_rows(output, str(sweep)) == {"resnet-8/seed=0": "completed", "resnet-8/seed=1": "completed"}
    for seed in (0, 1):
        run = sweep / f"resnet-8/seed={seed}"
        assert same_metrics(run, local_runs / f"resnet-8/seed={seed}")
        assert summary(run)["slurm"]["log"].startswith(str(sweep / ".submitit"))

    again = subprocess.run(make, cwd=ROOT, env=subprocess_env(**slurm), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "as SLURM array" not in again.stdout + again.stderr
    assert "2 of 2 runs finished or being trained elsewhere: not submitted" in again.stdout + again.stderr


def test_jobs_preempted_three_ways_are_requeued_and_end_as_uninterrupted_runs(
    slurm, tmp_path, fake_cifar_root, local_runs
):
    """scontrol requeue (SLURM requeues it), SIGTERM and submitit's SIGUSR2 (sent to the job's step, as SLURM sends
    `--signal=USR2@signal_delay_s` ahead of the time limit: the job requeues itself): each run checkpoints at the
    step it was in, its job starts again and resumes there; every step once, with an uninterrupted run's values."""
    ways = {0: ["scontrol", "requeue"], 1: ["scancel", "--signal=TERM"], 2: ["scancel", "--signal=USR2"]}
    release = tmp_path / "release"
    sweep = start_sweep(
        tmp_path,
        slurm,
        *tiny(fake_cifar_root, *WANDB, "seed=0,1,2", "name=preempted"),
        FAULT="wait-step:9",
        RELEASE=str(release),
    )
    runs = {seed: tmp_path / f"runs/preempted/resnet-8/seed={seed}" for seed in ways}
    jobs = {seed: wait_until_waiting(run, sweep) for seed, run in runs.items()}
    for seed, command in ways.items():
        subprocess.run([*command, jobs[seed]], check=True, env=subprocess_env(**slurm))
    # no release: the signal itself ends each run's wait at step 9 (faults.py), so it always lands there

    code, output = finish(sweep)
    assert code == 0, output[-4000:]
    assert table_rows(output, "runs/preempted") == {f"resnet-8/seed={seed}": "completed" for seed in ways}
    for seed, run in runs.items():
        assert output.count(f"SLURM job {jobs[seed]} (") >= 1  # the sweep said it was requeued
        assert stopped_and_resumed_at(run) >= 9 and summary(run)["resumed"]
        assert same_metrics(run, local_runs / f"resnet-8/seed={seed}"), seed
        # W&B on, its service signalled with the job: one W&B run across the requeue, and never the run's fate
        assert wandb_ids(run) == {summary(run)["wandb"]["id"]} and len(list(run.glob("wandb/offline-run-*"))) == 2
        assert "run failed" not in (run / "train.log").read_text()


def test_a_job_that_returns_while_slurm_requeues_it_is_followed_to_its_real_end(
    slurm, tmp_path, fake_cifar_root, local_runs
):
    """A preempted run that returns as if it had ended (what a W&B error at the preemption once made it do): its job
    writes a result file, and SLURM runs it again. The sweep waits for that second run, not for the result file."""
    release = tmp_path / "release"
    sweep = start_sweep(
        tmp_path,
        slurm,
        *tiny(fake_cifar_root, *WANDB, "seed=0", "name=returned"),
        FAULT="wait-step:9,preempted-returns:0",
        RELEASE=str(release),
    )
    run = tmp_path / "runs/returned/resnet-8/seed=0"
    job = wait_until_waiting(run, sweep)
    subprocess.run(["scontrol", "requeue", job], check=True, env=subprocess_env(**slurm))  # its signal releases

    code, output = finish(sweep)
    assert code == 0, output[-4000:]
    assert table_rows(output, "runs/returned") == {"resnet-8/seed=0": "completed"}
    assert stopped_and_resumed_at(run) >= 9
    assert same_metrics(run, local_runs / "resnet-8/seed=0")


def test_a_cancelled_job_is_reported_its_lock_released_and_the_rerun_resumes_it(
    slurm, tmp_path, fake_cifar_root, local_runs
):
    release = tmp_path / "release"
    args = tiny(fake_cifar_root, *WANDB, "seed=0", "name=cancelled")
    sweep = start_sweep(tmp_path, slurm, *args, FAULT="wait-step:9", RELEASE=str(release))
    run = tmp_path / "runs/cancelled/resnet-8/seed=0"
    job = wait_until_waiting(run, sweep)
    subprocess.run(["scancel", job], check=True, env=subprocess_env(**slurm))  # its SIGTERM ends the wait

    code, output = finish(sweep)
    assert code == 1, output[-4000:]
    assert table_rows(output, "runs/cancelled") == {"resnet-8/seed=0": "interrupted"}
    assert f"SLURM job {job}, log " in output and "1 run(s) failed" in output
    assert not (run / ".lock").exists()
    stopped_at = summary(run)["steps"]

    code, output = finish(start_sweep(tmp_path, slurm, *args))
    assert code == 0, output[-4000:]
    assert stopped_and_resumed_at(run) == stopped_at >= 9
    assert same_metrics(run, local_runs / "resnet-8/seed=0")


def test_two_sweeps_submitted_at_once_train_each_run_once(slurm, tmp_path, fake_cifar_root, local_runs):
    args = tiny(fake_cifar_root, *WANDB, "seed=0,1", "name=twice")
    sweeps = [start_sweep(tmp_path, slurm, *args) for _ in range(2)]
    for code, output in map(finish, sweeps):
        assert code == 0, output[-4000:]
    for seed in (0, 1):
        run = tmp_path / f"runs/twice/resnet-8/seed={seed}"
        log = (run / "train.log").read_text()
        assert log.count("run directory ") == 1, log  # trained by one job; the other skipped it
        assert same_metrics(run, local_runs / f"resnet-8/seed={seed}")


def test_a_gpu_request_on_a_cluster_without_gpus_is_one_error_line(slurm, tmp_path, fake_cifar_root):
    """The preset asks for a GPU per run; this cluster has none: sbatch's refusal, said once, nothing queued."""
    result = run_train(
        "-m", *tiny(fake_cifar_root, *WANDB, "seed=0", "name=gpu"), "launcher=slurm", cwd=tmp_path, **slurm
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and lines[-1].startswith(
        "error: sbatch refused the sweep's jobs: Invalid generic resource (gres) specification"
    ), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not any("sbatch: error" in line for line in lines)


def test_a_job_that_fails_on_the_cluster_is_reported_with_its_error_and_log(slurm, tmp_path, fake_cifar_root):
    """The data path is right where the sweep is checked and wrong inside the job (a folder the nodes lack)."""
    setup = 'hydra.launcher.setup=["export CIFAR_ROOT=/nowhere"]'
    args = [*TINY_RUN, "data.root=${oc.env:CIFAR_ROOT}", "seed=0", "name=broken", setup]
    code, output = finish(start_sweep(tmp_path, slurm, *args, CIFAR_ROOT=str(fake_cifar_root)))
    assert code == 1, output[-4000:]
    run = tmp_path / "runs/broken/resnet-8/seed=0"
    assert table_rows(output, "runs/broken") == {"resnet-8/seed=0": "failed"}
    assert "CIFAR-10 not found in /nowhere" in (run / "train.log").read_text()
    job = summary(run)["slurm"]
    assert f"SLURM job {job['job_id']}, log {job['log']}" in output and Path(job["log"]).is_file()
