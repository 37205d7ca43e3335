"""Each speed switch trains a few steps on CPU, and agrees with the paper's fp32 path in the first steps."""

import pytest
import torch

from degradation.rundir import RunDir
from conftest import TINY_RUN, run_train

FIRST_STEPS = 3
STEP_BY_STEP = ["trainer.log_every=1", "trainer.max_steps=6", "trainer.eval_every=6"]


def train_losses(tmp_path, fake_cifar_root, name, *overrides) -> tuple[list[float], str]:
    """Per-step training losses of a tiny run, and what it logged."""
    result = run_train(*TINY_RUN, *STEP_BY_STEP, f"data.root={fake_cifar_root}", f"name={name}", *overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = RunDir(tmp_path / f"runs/{name}/resnet-8/seed=0")
    assert run.read_summary()["status"] == "completed"
    return [row["train_loss"] for row in run.read_metrics()], result.stdout + result.stderr


@pytest.fixture(scope="module")
def reference_losses(tmp_path_factory, fake_cifar_root) -> list[float]:
    return train_losses(tmp_path_factory.mktemp("fp32"), fake_cifar_root, "fp32")[0]


@pytest.mark.parametrize(
    "overrides, rel",
    [
        (["speed.channels_last=true"], 1e-4),
        (["speed.fused_sgd=true"], 1e-4),
        (["speed.cudnn_benchmark=true"], 1e-4),
        (["speed.sync_every_step=true"], 0),  # reads the loss every step; computes exactly the same
        (["trainer.precision=bf16-mixed"], 2e-2),  # bf16 keeps 8 bits of mantissa
    ],
)
def test_a_speed_switch_trains_and_agrees_with_the_fp32_path(tmp_path, fake_cifar_root, reference_losses, overrides, rel):
    losses, _ = train_losses(tmp_path, fake_cifar_root, "switch", *overrides)
    assert len(losses) == len(reference_losses) == 6
    assert losses[:FIRST_STEPS] == pytest.approx(reference_losses[:FIRST_STEPS], rel=rel, abs=0)


def test_the_fast_preset_in_fp32_agrees_with_the_default_path(tmp_path, fake_cifar_root, reference_losses):
    """speed=fast compiles the network (and asks for CUDA graphs, which CPU lacks); fp32 keeps it comparable."""
    losses, log = train_losses(tmp_path, fake_cifar_root, "fast", "speed=fast", "trainer.precision=32-true")
    assert losses[:FIRST_STEPS] == pytest.approx(reference_losses[:FIRST_STEPS], rel=1e-4, abs=0)
    assert "speed.cuda_graphs needs a CUDA device" in log


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graphs_train_on_a_gpu(tmp_path, fake_cifar_root, reference_losses):
    losses, _ = train_losses(tmp_path, fake_cifar_root, "graphs", "speed.cuda_graphs=true")
    assert len(losses) == 6
