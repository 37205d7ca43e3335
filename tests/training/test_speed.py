"""Each speed switch trains a few steps, leaves evidence in the run that it was applied, and agrees with the
paper's fp32 path in the first steps."""

import pytest
import torch

from conftest import TINY_RUN, CompiledGraphsAfterStep, add_callback, compose_config, run_train
from degradation.runs.checkpoints import load
from degradation.runs.rundir import RunDir
from degradation.training.precision import cpu_bf16_units

FIRST_STEPS = 3
# deterministic=false: cudnn_benchmark is refused with it, and the reference must run as the switches do.
STEP_BY_STEP = ["trainer.log_every=1", "trainer.max_steps=6", "trainer.eval_every=6", "trainer.deterministic=false"]


def tiny_run(cwd, fake_cifar_root, name, *overrides, **env) -> tuple[RunDir, str]:
    """A completed tiny run with a row every step, and what it logged."""
    result = run_train(
        *TINY_RUN, *STEP_BY_STEP, f"data.root={fake_cifar_root}", f"name={name}", *overrides, cwd=cwd, **env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = RunDir(cwd / f"runs/{name}/resnet-8/seed=0")
    assert run.read_summary()["status"] == "completed"
    return run, result.stdout + result.stderr


def losses(run: RunDir) -> list[float]:
    return [row["train_loss"] for row in run.read_metrics()]


def conv_weights_are_channels_last(run: RunDir) -> bool:
    """The checkpoint keeps each tensor's strides: NHWC weights are saved as NHWC."""
    weight = load(run.last_checkpoint)["state_dict"]["net.conv.weight"]
    return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def optimizer_is_fused(run: RunDir) -> bool:
    return load(run.last_checkpoint)["optimizer_states"][0]["param_groups"][0].get("fused") is True


@pytest.fixture(scope="module")
def reference(tmp_path_factory, fake_cifar_root) -> RunDir:
    return tiny_run(tmp_path_factory.mktemp("fp32"), fake_cifar_root, "fp32")[0]


# What each switch must leave in the run, read back from what the run wrote (not from its config).
APPLIED = {
    "channels_last": conv_weights_are_channels_last,
    "fused_sgd": optimizer_is_fused,
    "cudnn_benchmark": lambda run: run.read_summary()["math"]["cudnn_benchmark"] is True,
    "tf32": lambda run: run.read_summary()["math"]["tf32_conv"] is run.read_summary()["math"]["tf32_matmul"] is True,
    "bf16-mixed": lambda run: run.read_summary()["math"]["precision"] == "bf16-mixed",
}


SWITCH_CASES = [
    ("channels_last", ["speed.channels_last=true"], 1e-4),
    ("fused_sgd", ["speed.fused_sgd=true"], 1e-4),
    ("cudnn_benchmark", ["speed.cudnn_benchmark=true"], 1e-4),
    ("tf32", ["speed.tf32=true"], 2e-3),  # a no-op on a CPU; on a GPU, TF32 products keep 10 bits of mantissa
    ("sync_every_step", ["speed.sync_every_step=true"], 0),  # reads the loss every step; computes exactly the same
    ("bf16-mixed", ["trainer.precision=bf16-mixed"], 2e-2),  # bf16 keeps 8 bits of mantissa
]


@pytest.mark.parametrize("switch, overrides, rel", SWITCH_CASES, ids=[case[0] for case in SWITCH_CASES])
def test_a_speed_switch_is_applied_and_agrees_with_the_fp32_path(
    tmp_path, fake_cifar_root, reference, switch, overrides, rel
):
    run, _ = tiny_run(tmp_path, fake_cifar_root, "switch", *overrides)
    assert len(losses(run)) == len(losses(reference)) == 6
    assert losses(run)[:FIRST_STEPS] == pytest.approx(losses(reference)[:FIRST_STEPS], rel=rel, abs=0)
    if switch in APPLIED:
        assert APPLIED[switch](run), f"{switch} was not applied"
        assert not APPLIED[switch](reference)
    if switch == "bf16-mixed":
        assert losses(run) != losses(reference)  # bf16 arithmetic really ran


@pytest.mark.slow  # ~35 s of compilation on 2 cores: CI runs it after `make test` (.ci/run)
def test_the_fast_preset_on_a_cpu_compiles_uses_bf16_only_with_bf16_units_and_agrees_with_the_default_path(
    tmp_path, fake_cifar_root, reference
):
    """speed=fast compiles the network, asks for CUDA graphs (which a CPU lacks) and for trainer.precision=auto:
    bf16 where the CPU has AMX or AVX-512 BF16, fp32 with one warning elsewhere (training/precision.py).
    On the CPU explicitly: tests/gpu/ covers the preset on CUDA. Inductor writes the code it generates into
    its cache folder, a fresh one here: an empty folder means nothing was compiled."""
    on_cpu = ["trainer.accelerator=cpu"]
    (tmp_path / "fast").mkdir()
    plain_run = reference  # without a GPU, the module's fp32 reference is this CPU run already
    if torch.cuda.is_available():
        (tmp_path / "fp32").mkdir()
        plain_run, _ = tiny_run(tmp_path / "fp32", fake_cifar_root, "fp32", *on_cpu)
    inductor_cache = tmp_path / "inductor"
    fast_run, log = tiny_run(
        tmp_path / "fast", fake_cifar_root, "fast", "speed=fast", *on_cpu, TORCHINDUCTOR_CACHE_DIR=str(inductor_cache)
    )
    bf16_units = cpu_bf16_units() != "none"
    math = fast_run.read_summary()["math"]
    assert (math["precision_asked"], math["precision"]) == ("auto", "bf16-mixed" if bf16_units else "32-true")
    assert log.count("has no bf16 units") == (0 if bf16_units else 1)
    assert losses(fast_run)[:FIRST_STEPS] == pytest.approx(
        losses(plain_run)[:FIRST_STEPS], rel=2e-2 if bf16_units else 1e-4, abs=0
    )
    assert "speed.cuda_graphs needs a CUDA device" in log
    assert inductor_cache.is_dir() and any(path.is_file() for path in inductor_cache.rglob("*")), "nothing was compiled"
    assert conv_weights_are_channels_last(fast_run) and optimizer_is_fused(fast_run)


def test_the_whole_step_path_computes_what_the_eager_fused_sgd_path_computes(tmp_path, fake_cifar_root):
    """speed.cuda_graphs: off CUDA the same static-buffer step runs without a graph, so every number must
    equal the eager path with the same (fused) SGD kernel: across a milestone (the rate is a device
    tensor filled in place), the epochs' partial last batches (160 = 6 x 24 + 16: run eagerly) and
    partial evaluation batches (40 = 30 + 10)."""
    shapes = [
        "data.batch_size=24",
        "data.eval_batch_size=30",
        "trainer.max_steps=16",
        "trainer.eval_every=8",
        "optim.milestones=[5,11]",
    ]
    (tmp_path / "eager").mkdir(), (tmp_path / "whole").mkdir()
    eager, _ = tiny_run(tmp_path / "eager", fake_cifar_root, "eager", *shapes, "speed.fused_sgd=true")
    whole, log = tiny_run(tmp_path / "whole", fake_cifar_root, "whole", *shapes, "speed.cuda_graphs=true")
    assert "speed.cuda_graphs needs a CUDA device" in log  # on a CPU: the path, not the graph
    assert len(whole.read_metrics()) == 16 and whole.read_metrics() == eager.read_metrics()
    assert [row["lr"] for row in whole.read_metrics()][4:6] == [0.1, pytest.approx(0.01)]


def test_a_compiled_whole_step_compiles_once_for_partial_batches_and_evaluations(
    tmp_path, fake_cifar_root, monkeypatch
):
    """No stalls: the first step compiles the network; the epoch's partial last batch (160 = 6 x 24 + 16),
    eval mode and the evaluation batches (40 = 30 + 10) run it uncompiled, so nothing compiles again."""
    from torch._dynamo.utils import counters

    from degradation.training import lifecycle

    counters.clear()
    counter = CompiledGraphsAfterStep()
    add_callback(monkeypatch, counter)
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    cfg = compose_config(
        *TINY_RUN,
        f"data.root={fake_cifar_root}",
        "data.batch_size=24",
        "data.eval_batch_size=30",
        "trainer.max_steps=9",
        "trainer.eval_every=4",
        "speed.compile=true",
        "speed.cuda_graphs=true",
    )
    assert lifecycle.train(cfg, run)["status"] == "completed"
    first = counter.after["step 1"]
    assert first > 0, "the network was not compiled"
    assert set(counter.after.values()) == {first}, counter.after
