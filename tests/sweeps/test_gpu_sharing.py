"""Runs of a sweep sharing GPUs: one GPU per job where there are several, a memory share each, and the
CUDA MPS daemon for the sweep's lifetime (a fake nvidia-cuda-mps-control here: no GPU needed)."""

import os
import tempfile
from pathlib import Path

import pytest
import torch

from conftest import compose_config
from degradation.sweeps import gpu_sharing

VISIBLE = "CUDA_VISIBLE_DEVICES"


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


def fake_program(folder: Path, name: str, body: str) -> Path:
    script = folder / name
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


def fake_gpus(bin_folder: Path, count: int, names=("NVIDIA H200",), mig: str = "[N/A]") -> None:
    """A fake nvidia-smi on PATH that lists `count` GPUs as the query for index, UUID, name and MIG mode does."""
    listed = "\\n".join(
        f"{index}, GPU-{index}{index}{index}-fake, {names[index % len(names)]}, {mig}" for index in range(count)
    )
    fake_program(bin_folder, "nvidia-smi", f'printf "{listed}\\n"')


@pytest.fixture
def fake_mps(tmp_path, monkeypatch) -> Path:
    """A fake nvidia-cuda-mps-control on PATH that records its arguments, its input, its pipe folder and the GPUs
    it was shown; one GPU (a fake nvidia-smi) and no CUDA_VISIBLE_DEVICES unless a test says otherwise."""
    calls = tmp_path / "calls.txt"
    (tmp_path / "bin").mkdir()
    fake_program(
        tmp_path / "bin",
        gpu_sharing.CONTROL,
        f'echo "args=$* pipe=${gpu_sharing.PIPE_ENV} visible=$CUDA_VISIBLE_DEVICES input=$(cat)" >> {calls}',
    )
    fake_gpus(tmp_path / "bin", 1)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(gpu_sharing.PIPE_ENV, raising=False)
    monkeypatch.delenv(VISIBLE, raising=False)
    monkeypatch.setattr(gpu_sharing, "gpu_visible", lambda: True)
    return calls


def test_a_joblib_sweep_on_a_gpu_runs_under_its_own_mps_daemon_until_it_ends(fake_mps):
    config = compose_config("launcher=joblib", "jobs=3")
    callback = gpu_sharing.MpsForSweep()
    callback.on_multirun_start(config)
    pipe = os.environ[gpu_sharing.PIPE_ENV]  # what the jobs, started next, inherit
    started = f"args=-d pipe={pipe} visible=GPU-000-fake input="
    assert Path(pipe).is_dir() and fake_mps.read_text().splitlines() == [started]
    callback.on_multirun_end(config)
    assert fake_mps.read_text().splitlines()[1] == f"args= pipe={pipe} visible=GPU-000-fake input=quit"
    assert gpu_sharing.PIPE_ENV not in os.environ and not Path(pipe).exists()
    assert VISIBLE not in os.environ  # as the sweep found it


def test_the_daemon_and_the_jobs_name_the_gpus_by_uuid(fake_mps, monkeypatch, memory_fractions):
    """On a SLURM node the sweep may see CUDA_VISIBLE_DEVICES=2,3: an MPS server started with it numbers those
    GPUs 0 and 1, so a job that keeps index 3 cannot connect. By UUID both mean the same GPUs."""
    fake_gpus(fake_mps.parent / "bin", 4)
    monkeypatch.setenv(VISIBLE, "2,3")
    config = compose_config("launcher=joblib", "jobs=4")  # spread over 2 GPUs: two jobs on each
    callback = gpu_sharing.MpsForSweep()
    callback.on_multirun_start(config)
    assert "visible=GPU-222-fake,GPU-333-fake " in fake_mps.read_text()  # what the daemon was started with
    inherited = os.environ[VISIBLE]  # what the jobs, started next, inherit
    for job, gpu in [(0, "GPU-222-fake"), (1, "GPU-333-fake")]:
        os.environ[VISIBLE] = inherited
        gpu_sharing.place_sweep_job(job, jobs=4, spread=True)
        assert os.environ[VISIBLE] == gpu
    assert memory_fractions == [0.5, 0.5]
    callback.on_multirun_end(config)
    assert os.environ[VISIBLE] == "2,3"  # as the sweep found it


@pytest.mark.parametrize("gpus", ["no nvidia-smi", "mixed kinds"])
def test_gpus_named_by_index_whose_uuids_cannot_be_known_take_turns_without_mps(fake_mps, monkeypatch, caplog, gpus):
    """nvidia-smi numbers GPUs by PCI bus; CUDA, unless CUDA_DEVICE_ORDER=PCI_BUS_ID, numbers the fastest first:
    on a node with GPUs of several kinds an index may mean another GPU to each."""
    if gpus == "no nvidia-smi":
        fake_program(fake_mps.parent / "bin", "nvidia-smi", "exit 9")
    else:
        fake_gpus(fake_mps.parent / "bin", 4, names=("NVIDIA H200", "NVIDIA A100"))
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    monkeypatch.setenv(VISIBLE, "3")
    callback = gpu_sharing.MpsForSweep()
    callback.on_multirun_start(compose_config("launcher=joblib", "jobs=2", "trainer.spread_gpus=false"))
    assert "could not start the daemon (CUDA_VISIBLE_DEVICES=3 names GPUs by index" in caplog.text
    assert "args=-d" not in fake_mps.read_text() and gpu_sharing.PIPE_ENV not in os.environ
    assert os.environ[VISIBLE] == "3"
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    if gpus == "mixed kinds":  # in bus order both mean the same GPU
        assert gpu_sharing.gpu_uuids() == ["GPU-333-fake"]


def test_mig_instances_take_turns_without_mps(fake_mps, caplog):
    """With MIG, CUDA numbers the instances, not the GPUs nvidia-smi lists: no daemon, one warning."""
    fake_gpus(fake_mps.parent / "bin", 1, mig="Enabled")
    callback = gpu_sharing.MpsForSweep()
    callback.on_multirun_start(compose_config("launcher=joblib", "jobs=2"))
    assert "could not start the daemon (MIG is enabled" in caplog.text and "args=-d" not in fake_mps.read_text()
    assert VISIBLE not in os.environ


@pytest.mark.parametrize(
    "overrides, gpus",
    [
        (["launcher=joblib", "jobs=3", "mps=false"], 1),  # turned off
        (["launcher=joblib", "jobs=1"], 1),  # nothing shares the GPU
        (["launcher=joblib", "jobs=3", "trainer.accelerator=cpu"], 1),
        (["launcher=local"], 1),
        (["launcher=joblib", "jobs=4"], 4),  # spread over 4 GPUs: one job each
    ],
    ids=["mps=false", "one-job", "cpu", "local", "a-gpu-per-job"],
)
def test_no_mps_daemon_when_nothing_shares_a_gpu_or_it_is_turned_off(fake_mps, overrides, gpus):
    fake_gpus(fake_mps.parent / "bin", gpus)
    config = compose_config(*overrides)
    callback = gpu_sharing.MpsForSweep()
    callback.on_multirun_start(config)
    callback.on_multirun_end(config)
    assert not fake_mps.exists() and gpu_sharing.PIPE_ENV not in os.environ


def test_an_mps_daemon_that_will_not_start_leaves_the_jobs_time_slicing(fake_mps, caplog):
    script = fake_mps.parent.joinpath("bin", gpu_sharing.CONTROL)
    script.write_text(script.read_text() + "exit 1\n")  # records its call, then fails (e.g. not allowed here)
    folders = lambda: set(Path(tempfile.gettempdir()).glob("degradation-mps-*"))  # noqa: E731
    others = folders()  # other processes' (a sweep running beside the tests)
    callback = gpu_sharing.MpsForSweep()
    callback.on_multirun_start(compose_config("launcher=joblib", "jobs=2"))
    assert gpu_sharing.PIPE_ENV not in os.environ and "could not start the daemon" in caplog.text
    start, quit_ = fake_mps.read_text().splitlines()
    assert "degradation-mps-" in quit_ and "input=quit" in quit_  # our own pipe: never a daemon that ran before
    assert folders() == others  # its own folder removed
