"""A sweep checks every job before the first one starts; a dry run writes nothing and says what would happen."""

import pytest

from conftest import TINY_RUN, one_error_line, run_train


def refusal(result) -> str:
    return one_error_line(result.returncode, result.stderr)


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory, fake_cifar_root):
    """runs/s/resnet-8/seed={0,1}, completed."""
    cwd = tmp_path_factory.mktemp("sweep")
    result = run_train("-m", *TINY_RUN, f"data.root={fake_cifar_root}", "model.depth=8", "seed=0,1", "name=s", cwd=cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return cwd


def test_a_bad_job_anywhere_in_the_grid_stops_the_sweep_before_any_job_trains(tmp_path, fake_cifar_root):
    """The typo is in the second job: nothing (not even the first, valid job) is trained or written."""
    result = run_train(
        *TINY_RUN,
        f"data.root={fake_cifar_root}",
        "experiment=sweep_quick",
        "logger=csv",
        "model.depth=8,21",
        cwd=tmp_path,
    )
    line = refusal(result)
    assert line.startswith("error: job #1 (model=plain model.depth=21): model.depth must be 6n+2"), line
    assert not (tmp_path / "runs").exists()


def test_a_sweep_that_would_reuse_a_run_directory_of_another_config_is_refused_before_it_starts(
    finished_sweep, fake_cifar_root
):
    before = {path: path.read_bytes() for path in (finished_sweep / "runs").rglob("*") if path.is_file()}
    result = run_train(
        "-m",
        *TINY_RUN,
        f"data.root={fake_cifar_root}",
        "model.depth=8",
        "seed=1,0",
        "name=s",
        "optim.lr=0.05",
        cwd=finished_sweep,
    )
    line = refusal(result)
    assert (
        line.startswith("error: job #0 (seed=1): ")
        and "holds a run with a different config (optim.lr: 0.1 -> 0.05)" in line
    )
    assert {path: path.read_bytes() for path in (finished_sweep / "runs").rglob("*") if path.is_file()} == before


def test_missing_data_is_found_before_the_first_job(tmp_path):
    result = run_train("-m", *TINY_RUN, f"data.root={tmp_path}/nowhere", "seed=0,1", cwd=tmp_path)
    assert "CIFAR-10 not found in" in refusal(result) and not (tmp_path / "runs").exists()


def test_a_dry_run_writes_nothing_and_ends_with_its_plan(finished_sweep, fake_cifar_root):
    """Two runs exist, a third would be new: skip, skip, train; Hydra's multirun.yaml of the real sweep is kept."""
    multirun = finished_sweep / "runs/s/multirun.yaml"
    before = {path: path.read_bytes() for path in (finished_sweep / "runs").rglob("*") if path.is_file()}
    result = run_train(
        "-m",
        *TINY_RUN,
        f"data.root={fake_cifar_root}",
        "model.depth=8",
        "seed=0,1,2",
        "name=s",
        "dry_run=true",
        cwd=finished_sweep,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout
    assert output.count("skip (completed)") == 2 and "train                runs/s/resnet-8/seed=2" in output
    assert "dry run: 3 jobs: 1 to train, 0 to resume, 2 to skip, 0 being trained elsewhere; runs in runs/s/" in output
    assert {path: path.read_bytes() for path in (finished_sweep / "runs").rglob("*") if path.is_file()} == before
    assert multirun in before


def test_a_launcher_that_needs_slurm_is_refused_where_there_is_none(tmp_path, fake_cifar_root, monkeypatch):
    no_programs = tmp_path / "empty-bin"
    no_programs.mkdir()
    monkeypatch.setenv("PATH", str(no_programs))  # no sbatch, even on a cluster's login node or with SLURM installed
    result = run_train(
        *TINY_RUN,
        f"data.root={fake_cifar_root}",
        "experiment=sweep_quick",
        "logger=csv",
        "launcher=slurm",
        "dry_run=true",
        cwd=tmp_path,
    )
    assert "submits jobs with sbatch, which is not on this machine's PATH" in refusal(result)
