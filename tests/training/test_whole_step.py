"""The whole step's CUDA path on a CPU, with torch.cuda's streams and graphs faked (tests/fake_cuda.py): which
streams its warm-ups and captures use, and what its timings measure. tests/gpu runs the real thing."""

import time

import pytest
import torch

from degradation.nets.registry import build_net
from degradation.training import whole_step
from degradation.training.speed import Speed
from degradation.training.step import Tally
from degradation.training.whole_step import WARMUP_STEPS, EvalForward, WholeStep
from fake_cuda import FakeCuda

BATCH = 4


@pytest.fixture
def fake_cuda(monkeypatch) -> FakeCuda:
    return FakeCuda(monkeypatch)


def graphed_step() -> WholeStep:
    """A WholeStep of a tiny net that takes its CUDA path (its network lives on the CPU here)."""
    net = build_net(depth=8, residual=True)
    step = WholeStep(
        net,
        Speed().optimizer(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=False),
        Speed(),
        Tally(),
        batch_size=BATCH,
    )
    step.use_graph = True
    return step


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(BATCH, 3, 32, 32), torch.randint(0, 10, (BATCH,))


def test_every_warm_up_and_capture_of_a_process_runs_on_one_side_stream_per_device(fake_cuda):
    """cuBLAS keeps a workspace per (handle, stream) for the life of the process: a new stream per warm-up, or
    a capture on another stream (its workspace then comes from the graph's private pool), grows the GPU memory
    of a local sweep run after run. Two runs' steps and an evaluation: one stream, made once."""
    for _ in range(2):  # two runs of a launcher=local sweep, one process
        step = graphed_step()
        for _ in range(WARMUP_STEPS + 2):
            step(*batch(), lr=0.1)
        assert step.graph is not None
    evaluate = EvalForward(step.net, Speed().layout, batch_size=BATCH, graph=True)
    evaluate.use_graph = True
    evaluate(batch()[0])
    assert len(fake_cuda.made) == 1, f"{len(fake_cuda.made)} streams made"
    side = fake_cuda.made[0]
    assert fake_cuda.warm_ups == [side] * (2 * WARMUP_STEPS + 1) and fake_cuda.captures == [side] * 3


def test_the_warm_up_and_the_capture_are_timed_apart(fake_cuda, monkeypatch):
    """summary.json's warmup_s holds the eager steps before the capture (torch.compile's cold compile lands in the
    first one and may take tens of seconds), capture_s the capture alone: each can be bounded on its own."""
    step = graphed_step()
    compute = step.compute
    calls = []

    def first_call_compiles(*args):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(1.0)  # what a cold compile adds to the first step
        return compute(*args)

    monkeypatch.setattr(step, "compute", first_call_compiles)
    for _ in range(WARMUP_STEPS + 2):
        step(*batch(), lr=0.1)
    assert step.warmup_s >= 1.0 and 0 < step.capture_s < 1.0, (step.warmup_s, step.capture_s)


def test_off_cuda_the_whole_step_says_once_that_it_runs_without_a_graph(caplog):
    """Decided where the step is built, when training starts and the network is on its device: Lightning calls
    configure_model before it moves the module, so a check there saw 'cpu' on every GPU run."""
    with caplog.at_level("WARNING", logger=whole_step.__name__):
        graphed_step()
    assert caplog.text.count("speed.cuda_graphs needs a CUDA device; on cpu") == 1


def test_the_warning_comes_after_lightning_has_moved_the_module_to_its_device(
    tmp_path, fake_cifar_root, monkeypatch, caplog
):
    """Lightning's configure_model runs before the module reaches its device; on_fit_start runs after."""
    import pytorch_lightning as pl

    from conftest import TINY_RUN, add_callback, compose_config
    from degradation.runs.rundir import RunDir
    from degradation.training import lifecycle

    class WarningsBeforeTheMove(pl.Callback):
        def on_fit_start(self, trainer, pl_module) -> None:
            self.count = caplog.text.count("needs a CUDA device")

    before = WarningsBeforeTheMove()
    add_callback(monkeypatch, before)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    with caplog.at_level("WARNING"):
        lifecycle.train(
            compose_config(
                *TINY_RUN, f"data.root={fake_cifar_root}", "speed.cuda_graphs=true", "trainer.accelerator=cpu"
            ),
            run,
        )  # on the CPU also where a GPU is visible
    assert before.count == 0 and caplog.text.count("needs a CUDA device") == 1


def test_a_run_that_releases_the_gpu_lets_go_of_the_cublas_workspaces(monkeypatch):
    from degradation.training import lifecycle

    released = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: released.append("cache"))
    monkeypatch.setattr(torch._C, "_cuda_clearCublasWorkspaces", lambda: released.append("cublas"))
    lifecycle.release_device_memory()
    assert released == ["cublas", "cache"]  # the workspaces go back to the cache, then the cache to the GPU
