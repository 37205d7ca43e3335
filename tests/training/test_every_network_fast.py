"""Every speed path works on every network (issue 37, part 4): with speed=fast (compiled network, the static
whole step, channels_last, fused SGD, bf16 where the CPU has bf16 units) each intervention trains and matches the
eager fp32 path in its first steps, and its compiled step has no graph break: nothing reads a tensor on the host
(an .item(), a branch on a tensor's value), which would also break the step's capture as one CUDA graph on a GPU.

About 15 s per network on 2 cores (the compilation): marked slow, run by CI as a step of its own
(.ci/run: `make test-slow PYTEST_ARGS=...`)."""

import pytest
import torch
from torch._dynamo.utils import counters

from conftest import TINY_RUN, compose_config
from degradation.runs.rundir import RunDir
from degradation.training import lifecycle
from degradation.training.precision import cpu_bf16_units

INTERVENTIONS = {
    "preact": ["model.block=preact"],
    "preact_bottleneck": ["model.block=preact_bottleneck", "model.depth=11", "model.shortcut=B"],
    "rezero": ["model.branch_init=rezero"],
    "skipinit": ["model.norm=none", "model.branch_init=skipinit"],
    "fixup": ["model.norm=none", "model.branch_init=fixup"],
    "delta_orthogonal": ["model=plain", "model.init_mode=delta_orthogonal"],
    "stochastic_depth": ["model.drop_path=0.5"],
    "looks_linear": ["model=plain", "model.norm=none", "model.activation=crelu"],
    "dirac": ["model=plain", "model.conv=dirac"],
}
FIRST_STEPS = 3
STEP_BY_STEP = ["trainer.log_every=1", "trainer.max_steps=4", "trainer.eval_every=4", "trainer.accelerator=cpu"]


def train_losses(tmp_path, fake_cifar_root, name: str, *overrides: str) -> list[float]:
    run = RunDir(tmp_path / name)
    run.path.mkdir()
    cfg = compose_config(*TINY_RUN, *STEP_BY_STEP, f"data.root={fake_cifar_root}", *overrides)
    assert lifecycle.train(cfg, run)["status"] == "completed"
    return [row["train_loss"] for row in run.read_metrics()]


@pytest.mark.slow
@pytest.mark.parametrize("intervention", INTERVENTIONS)
def test_the_fast_path_trains_every_intervention_as_the_eager_path_does_without_a_graph_break(
    intervention, tmp_path, fake_cifar_root
):
    eager = train_losses(tmp_path, fake_cifar_root, "eager", *INTERVENTIONS[intervention])
    counters.clear()
    # Compiled code draws its own random numbers by default; stochastic depth's masks must be eager's to compare.
    with torch._inductor.config.patch(fallback_random=True):
        fast = train_losses(tmp_path, fake_cifar_root, "fast", *INTERVENTIONS[intervention], "speed=fast")
    assert counters["stats"]["unique_graphs"] > 0, "nothing was compiled"
    assert dict(counters["graph_break"]) == {}, f"the compiled step breaks: {dict(counters['graph_break'])}"
    rel = 2e-2 if cpu_bf16_units() != "none" else 1e-4  # bf16 keeps 8 bits of mantissa
    assert len(fast) == len(eager) == 4
    assert fast[:FIRST_STEPS] == pytest.approx(eager[:FIRST_STEPS], rel=rel, abs=0)
