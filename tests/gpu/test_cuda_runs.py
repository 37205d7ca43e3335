"""Every training path completes on a GPU, with Figure 7's data, on the right device, without leaking memory."""

import json

import pytest
import pytorch_lightning as pl
import torch

from degradation import lifecycle
from degradation.rundir import RunDir
from conftest import CompiledGraphsAfterStep, CrashAt, add_callback, compose_config
from gpu_runs import GPU_RUN, KILL_AT, ON_CPU, STEPS, assert_completed_on_the_gpu, run_dir, train_ok

pytestmark = pytest.mark.gpu

PATHS = {
    "default": [],
    "channels_last": ["speed.channels_last=true"],
    "compile": ["speed.compile=true"],
    "cuda_graphs": ["speed.cuda_graphs=true"],
    "fused_sgd": ["speed.fused_sgd=true"],
    "cudnn_benchmark": ["speed.cudnn_benchmark=true"],
    "tf32": ["speed.tf32=true"],
    "bf16-mixed": ["trainer.precision=bf16-mixed"],
    "speed=fast": ["speed=fast"],
}


@pytest.mark.parametrize("arch", ["plain", "resnet"])
@pytest.mark.parametrize("path", list(PATHS))
def test_every_training_path_completes_with_its_responses(path, arch, tmp_path, gpu_cifar_root):
    result = train_ok(tmp_path, gpu_cifar_root, f"model={arch}", "name=path", *PATHS[path])
    summary = assert_completed_on_the_gpu(run_dir(tmp_path, "path", arch))
    config = summary["config"]
    assert summary["math"]["precision"] == config["trainer"]["precision"]
    assert summary["math"]["tf32_conv"] is config["speed"]["tf32"]
    assert ON_CPU or "needs a CUDA device" not in result.stdout + result.stderr  # CUDA graphs were not skipped
    losses = [row["train_loss"] for row in run_dir(tmp_path, "path", arch).read_metrics() if row["train_loss"]]
    assert losses[-1] < losses[0]  # it learned: the synthetic classes are told apart by a bright channel


def test_cuda_graphs_replay_the_eager_arithmetic(tmp_path, gpu_cifar_root):
    """The whole-step graph changes when kernels launch, not what they compute: every step's loss agrees
    with the eager path that uses the same fused SGD kernel (steps 1-3 warm up, 4 is captured, 5-6 replay)."""
    step_by_step = ["trainer.log_every=1", "trainer.max_steps=6", "trainer.eval_every=6"]

    def losses(name, *overrides):
        result = train_ok(tmp_path, gpu_cifar_root, f"name={name}", *step_by_step, *overrides)
        return [row["train_loss"] for row in run_dir(tmp_path, name).read_metrics()], result.stdout + result.stderr

    (eager, _), (graphed, log) = losses("eager", "speed.fused_sgd=true"), losses("graphed", "speed.cuda_graphs=true")
    assert ON_CPU or "whole step captured as one CUDA graph" in log
    assert len(graphed) == 6 and graphed == pytest.approx(eager, rel=1e-5, abs=0)


@pytest.mark.skipif(ON_CPU, reason="counts CUDA graph captures and replays")
@pytest.mark.parametrize("speed", [["speed.cuda_graphs=true"], ["speed=fast"]], ids=["cuda_graphs", "fast"])
def test_the_whole_step_is_captured_once_and_replayed_at_every_full_batch(tmp_path, gpu_cifar_root, monkeypatch, speed):
    """Two graphs per run (the training step, the evaluation forward), each recorded once; every full
    training batch after the warm-up replays; nothing compiles after the first step (partial batches
    and evaluations run uncompiled)."""
    from torch._dynamo.utils import counters

    from degradation.whole_step import WARMUP_STEPS

    captures, replays = [], []
    capture_begin, replay = torch.cuda.CUDAGraph.capture_begin, torch.cuda.CUDAGraph.replay
    monkeypatch.setattr(torch.cuda.CUDAGraph, "capture_begin",
                        lambda self, *args, **kwargs: captures.append(1) or capture_begin(self, *args, **kwargs))
    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", lambda self: replays.append(1) or replay(self))
    counters.clear()
    compiled = CompiledGraphsAfterStep()
    add_callback(monkeypatch, compiled)
    run = RunDir(tmp_path / "graphed")
    run.path.mkdir()
    cfg = compose_config(*GPU_RUN, f"data.root={gpu_cifar_root}", *speed, "name=graphed")
    summary = lifecycle.train(cfg, run)
    assert summary["status"] == "completed", summary.get("error")
    # bounded apart: a cold Inductor compile (in the warm-up) may take minutes; the capture never should
    assert 0 < summary["warmup_s"] <= 300 and 0 < summary["capture_s"] <= 10, (summary["warmup_s"], summary["capture_s"])
    assert len(captures) == 2, len(captures)
    partial_batches = STEPS // 10  # 1250 images in batches of 128: every 10th batch is the epoch's last 98
    assert len(replays) >= STEPS - WARMUP_STEPS - partial_batches, (len(replays), STEPS)
    assert set(compiled.after.values()) == {compiled.after["step 1"]}, compiled.after


@pytest.mark.skipif(ON_CPU, reason="measures CUDA memory")
def test_a_local_sweep_does_not_accumulate_gpu_memory(tmp_path, gpu_cifar_root):
    """Runs of a launcher=local sweep share one process: each must give its GPU memory back."""
    allocated = []
    for index, speed in enumerate(["speed=default", "speed=fast", "speed=default", "speed=fast"]):
        run = RunDir(tmp_path / f"run{index}")
        run.path.mkdir()
        cfg = compose_config(*GPU_RUN, f"data.root={gpu_cifar_root}", speed, f"name=memory{index}")
        assert lifecycle.train(cfg, run)["status"] == "completed"
        allocated.append(torch.cuda.memory_allocated())
    slack = 4 * 2**20  # cuBLAS/cuDNN workspaces allocated once per process
    assert allocated[2] <= allocated[0] + slack and allocated[3] <= allocated[1] + slack, allocated


class RecordDevices(pl.Callback):
    """Where the weights and the optimizer's momentum live at the first step after a resume."""

    def __init__(self):
        self.devices = None

    def on_train_batch_start(self, trainer, pl_module, *args) -> None:
        if self.devices is None:
            state = [value for per_param in trainer.optimizers[0].state.values() for value in per_param.values()
                     if isinstance(value, torch.Tensor) and value.dim() > 0]
            self.devices = {tensor.device.type for tensor in [*pl_module.parameters(), *state]}


def test_a_resumed_run_loads_its_checkpoint_onto_the_gpu(tmp_path, gpu_cifar_root, monkeypatch):
    cfg = compose_config(*GPU_RUN, f"data.root={gpu_cifar_root}")
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    add_callback(monkeypatch, CrashAt(KILL_AT))
    with pytest.raises(RuntimeError, match="simulated crash"):
        lifecycle.train(cfg, run)
    monkeypatch.undo()
    recorder = RecordDevices()
    add_callback(monkeypatch, recorder)
    summary = lifecycle.train(cfg, run)
    assert summary["status"] == "completed" and summary["resumed"] and summary["steps"] == STEPS
    assert recorder.devices == {"cpu" if ON_CPU else "cuda"}
    assert json.loads(run.path.joinpath("responses.json").read_text())["step"] == STEPS
