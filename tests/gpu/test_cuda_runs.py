"""Every training path completes on a GPU, with Figure 7's data, on the right device, without leaking memory."""

import json

import pytest
import pytorch_lightning as pl
import torch
from gpu_runs import EVAL_EVERY, GPU_RUN, KILL_AT, ON_CPU, STEPS, assert_completed_on_the_gpu, run_dir, train_ok

from conftest import CompiledGraphsAfterStep, CrashAt, add_callback, compose_config
from degradation.runs.rundir import RunDir
from degradation.training import lifecycle

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

    from degradation.training.whole_step import WARMUP_STEPS

    captures, replays = [], []
    capture_begin, replay = torch.cuda.CUDAGraph.capture_begin, torch.cuda.CUDAGraph.replay
    monkeypatch.setattr(
        torch.cuda.CUDAGraph,
        "capture_begin",
        lambda self, *args, **kwargs: captures.append(1) or capture_begin(self, *args, **kwargs),
    )
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
    assert 0 < summary["warmup_s"] <= 300 and 0 < summary["capture_s"] <= 10, (
        summary["warmup_s"],
        summary["capture_s"],
    )
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
            state = [
                value
                for per_param in trainer.optimizers[0].state.values()
                for value in per_param.values()
                if isinstance(value, torch.Tensor) and value.dim() > 0
            ]
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


def test_the_same_seed_gives_the_same_batches_on_the_gpu_as_on_the_cpu():
    """Each epoch's order, crops and flips are drawn on the CPU and moved: CUDA's generator would draw others.
    Pixel values agree to float32 rounding (CUDA divides by a number as a product with its reciprocal)."""
    from degradation.data.cifar10 import CifarLoader, Split, mean_image

    split = Split(torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8), torch.arange(300) % 10)
    device = torch.device("cpu" if ON_CPU else "cuda")
    on_cpu = CifarLoader(split, mean_image(split), 128, train=True, seed=4)
    on_device = CifarLoader(split.to(device), mean_image(split), 128, train=True, seed=4)
    for _ in range(2):  # two epochs
        for (cpu_images, cpu_labels), (images, labels) in zip(on_cpu, on_device, strict=True):
            assert images.device.type == device.type
            assert torch.equal(labels.cpu(), cpu_labels)
            torch.testing.assert_close(images.cpu(), cpu_images, rtol=0, atol=1e-6)


class RecordLabels(pl.Callback):
    """The labels of the batch each training step takes (1-based, as global_step counts steps)."""

    def __init__(self):
        self.labels = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.labels[trainer.global_step + 1] = batch[1].cpu()


def test_a_gpu_run_resumes_on_the_cpu_and_continues_its_data_stream(tmp_path, gpu_cifar_root, monkeypatch):
    """trainer.accelerator may differ on resume: the checkpoint loads onto the CPU and every step, on either
    device, takes the batch an uninterrupted run takes; the rows up to the checkpoint stay as the GPU wrote them."""
    from degradation.data.cifar10 import CifarLoader
    from degradation.training.build import build_datamodule

    cfg = compose_config(*GPU_RUN, f"data.root={gpu_cifar_root}")
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    on_gpu, on_cpu = RecordLabels(), RecordLabels()
    add_callback(monkeypatch, CrashAt(KILL_AT))
    add_callback(monkeypatch, on_gpu)
    with pytest.raises(RuntimeError, match="simulated crash"):
        lifecycle.train(cfg, run)
    monkeypatch.undo()
    checkpoint = EVAL_EVERY * (KILL_AT // EVAL_EVERY)
    kept = [row for row in run.read_metrics() if row["step"] <= checkpoint]
    add_callback(monkeypatch, on_cpu)
    summary = lifecycle.train(compose_config(*GPU_RUN, f"data.root={gpu_cifar_root}", "trainer.accelerator=cpu"), run)
    assert summary["status"] == "completed" and summary["resumed"] and summary["device"].startswith("cpu")
    assert [row for row in run.read_metrics() if row["step"] <= checkpoint] == kept

    datamodule = build_datamodule(cfg)
    datamodule.setup()
    loader = CifarLoader(datamodule.train_split, datamodule.mean, datamodule.batch_size, train=True, seed=cfg.seed)
    epochs = (labels for _ in range(STEPS) for _, labels in loader)
    uninterrupted = dict(zip(range(1, STEPS + 1), epochs))
    assert sorted(on_cpu.labels) == list(range(checkpoint + 1, STEPS + 1))
    for step, labels in [*on_gpu.labels.items(), *on_cpu.labels.items()]:
        assert torch.equal(labels, uninterrupted[step]), step
