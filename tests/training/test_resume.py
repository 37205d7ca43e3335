"""An interrupted run, started again, ends exactly as an uninterrupted one."""

from pathlib import Path
from unittest import mock

import pytest
import torch

from conftest import TINY_RUN, CrashAt, add_callback, compose_config
from degradation.runs.rundir import RunDir
from degradation.training import lifecycle

# 10 steps per epoch; checkpoints after the evaluations at 7, 14, 21; rows every 4 steps.
OVERRIDES = [*TINY_RUN, "trainer.max_steps=24", "trainer.eval_every=7"]
CRASH_AT_STEP = 17  # mid-epoch, three steps after the step-14 checkpoint; row 16 is on disk by then


def straight_and_crashed(cfg, tmp_path, monkeypatch) -> tuple[RunDir, RunDir]:
    """The same config trained straight through, and again crashing at CRASH_AT_STEP (the crash still armed)."""
    straight, resumed = RunDir(tmp_path / "straight"), RunDir(tmp_path / "resumed")
    for run in (straight, resumed):
        run.path.mkdir()
    lifecycle.train(cfg, straight)
    add_callback(monkeypatch, CrashAt(CRASH_AT_STEP))
    with pytest.raises(RuntimeError, match="simulated crash"):
        lifecycle.train(cfg, resumed)
    return straight, resumed


@pytest.mark.parametrize(
    "speed",
    [
        pytest.param([], id="eager"),
        # speed.compile keeps parameter names, so a compiled run's checkpoint loads into the compiled network again
        pytest.param(["speed.compile=true"], id="compiled", marks=pytest.mark.slow),
        # the whole-step path: its rate tensor, fused SGD and in-place tally restart from the checkpoint
        pytest.param(["speed.cuda_graphs=true"], id="whole-step"),
    ],
)
def test_a_crashed_run_resumes_from_its_checkpoint_to_the_same_metrics(tmp_path, fake_cifar_root, monkeypatch, speed):
    cfg = compose_config(*OVERRIDES, f"data.root={fake_cifar_root}", *speed)
    straight, resumed = straight_and_crashed(cfg, tmp_path, monkeypatch)
    assert resumed.read_summary()["status"] == "failed"
    assert max(row["step"] for row in resumed.read_metrics()) == 16  # logged after the checkpoint: dropped on resume

    monkeypatch.undo()
    summary = lifecycle.train(cfg, resumed)
    assert summary["status"] == "completed" and summary["resumed"] is True
    assert resumed.metrics_path.read_text() == straight.metrics_path.read_text()
    assert summary["final_test_err"] == straight.read_summary()["final_test_err"]


def as_if_saved_on(device: str, checkpoint: Path) -> None:
    """Rewrites a checkpoint as if its tensors had been saved from `device`: torch records each storage's
    device in the file and, unless told otherwise, loads it back there."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    with mock.patch.object(torch.serialization, "location_tag", lambda storage: device):
        torch.save(state, checkpoint)


def test_a_checkpoint_saved_on_another_device_resumes_here_to_the_same_metrics(tmp_path, fake_cifar_root, monkeypatch):
    """A run started on cuda:1 (trainer.devices=[1]) and resumed where that device does not exist (here: the CPU)
    loads its checkpoint onto the CPU first and continues the same data stream: the same metrics as a run
    that never stopped (trainer.accelerator and trainer.devices may differ on resume)."""
    cfg = compose_config(*OVERRIDES, f"data.root={fake_cifar_root}", "trainer.accelerator=cpu")
    straight, resumed = straight_and_crashed(cfg, tmp_path, monkeypatch)
    monkeypatch.undo()
    for checkpoint in resumed.checkpoint_dir.glob("*.ckpt"):
        as_if_saved_on("cuda:1", checkpoint)

    on_cuda_1 = compose_config(
        *OVERRIDES, f"data.root={fake_cifar_root}", "trainer.accelerator=cpu", "trainer.devices=[1]"
    )
    summary = lifecycle.train(on_cuda_1, resumed)
    assert summary["status"] == "completed" and summary["resumed"] is True, summary.get("error")
    assert resumed.metrics_path.read_text() == straight.metrics_path.read_text()
