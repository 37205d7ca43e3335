"""Runs of a sweep sharing GPUs: one GPU per job where there are several, a memory share each, and the
CUDA MPS daemon for the sweep's lifetime (a fake nvidia-cuda-mps-control here: no GPU needed)."""

import os
import tempfile
from pathlib import Path

import pytest
import torch

from degradation import gpu_sharing
from conftest import compose_config


@pytest.fixture
def memory_fractions(monkeypatch) -> list[float]:
    """What the job asked torch for; CUDA looks visible and not yet started."""
    asked = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda fraction: asked.append(fraction))
    return asked


def test_parallel_sweep_jobs_are_pinned_to_gpus_round_robin(monkeypatch, memory_fractions):
    for job, expected in [(0, "4"), (1, "5"), (2, "6"), (3, "4")]:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
        gpu_sharing.place_sweep_job(job, jobs=4, spread=True)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == expected
    assert memory_fractions == [0.5] * 4  # 4 jobs on 3 GPUs: up to 2 share one
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    gpu_sharing.place_sweep_job(1, jobs=1, spread=True)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0" and memory_fractions == [0.5] * 4  # alone on its GPU: no bound


def test_jobs_sharing_one_gpu_each_get_their_share_of_its_memory(monkeypatch, memory_fractions):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    gpu_sharing.place_sweep_job(2, jobs=4, spread=False)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1" and memory_fractions == [0.25]


@pytest.fixture
def fake_mps(tmp_path, monkeypatch) -> Path:
    """A fake nvidia-cuda-mps-control on PATH that records its arguments, its input and its pipe folder."""
    calls = tmp_path / "calls.txt"
    script = tmp_path / "bin" / gpu_sharing.CONTROL
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\necho "args=$* pipe=${gpu_sharing.PIPE_ENV} input=$(cat)" >> {calls}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(gpu_sharing.PIPE_ENV, raising=False)
    monkeypatch.setattr(gpu_sharing, "gpu_visible", lambda: True)
    return calls


def test_a_joblib_sweep_on_a_gpu_runs_under_its_own_mps_daemon_until_it_ends(fake_mps):
    config = compose_config("launcher=joblib", "jobs=3")
    callback = gpu_sharing.MpsForSweep()
    callback.on_multirun_start(config)
    pipe = os.environ[gpu_sharing.PIPE_ENV]  # what the jobs, started next, inherit
    assert Path(pipe).is_dir() and fake_mps.read_text().splitlines() == [f"args=-d pipe={pipe} input="]
    callback.on_multirun_end(config)
    assert fake_mps.read_text().splitlines()[1] == f"args= pipe={pipe} input=quit"
    assert gpu_sharing.PIPE_ENV not in os.environ and not Path(pipe).exists()


@pytest.mark.parametrize("overrides", [
    ["launcher=joblib", "jobs=3", "mps=false"],  # turned off
    ["launcher=joblib", "jobs=1"],  # nothing shares the GPU
    ["launcher=joblib", "jobs=3", "trainer.accelerator=cpu"],
    ["launcher=local"],
], ids=["mps=false", "one-job", "cpu", "local"])
def test_no_mps_daemon_when_nothing_shares_a_gpu_or_it_is_turned_off(fake_mps, overrides):
    config = compose_config(*overrides)
    callback = gpu_sharing.MpsForSweep()
    callback.on_multirun_start(config)
    callback.on_multirun_end(config)
    assert not fake_mps.exists() and gpu_sharing.PIPE_ENV not in os.environ


def test_an_mps_daemon_that_will_not_start_leaves_the_jobs_time_slicing(fake_mps, caplog):
    script = fake_mps.parent.joinpath("bin", gpu_sharing.CONTROL)
    script.write_text(script.read_text() + "exit 1\n")  # records its call, then fails (e.g. not allowed here)
    callback = gpu_sharing.MpsForSweep()
    callback.on_multirun_start(compose_config("launcher=joblib", "jobs=2"))
    assert gpu_sharing.PIPE_ENV not in os.environ and "could not start the daemon" in caplog.text
    start, quit_ = fake_mps.read_text().splitlines()
    assert "degradation-mps-" in quit_ and "input=quit" in quit_  # our own pipe: never a daemon that ran before
    assert not list(Path(tempfile.gettempdir()).glob("degradation-mps-*"))
