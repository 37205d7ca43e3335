import math

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_RUN, run_train
from degradation.analysis.gradients import GradientRecorder, at_init, norms_on_device, rows, weight_layers
from degradation.analysis.subjects import init_net, of_run
from degradation.data.cifar10 import CifarDataModule
from degradation.nets.cifar import CifarNet
from degradation.runs.rundir import GRADIENT_COLUMNS, RunDir


def autograd_norms(net, images, labels) -> list[float]:
    weights = [weight for _, weight in weight_layers(net)]
    grads = torch.autograd.grad(F.cross_entropy(net(images), labels), weights)
    return [g.norm().item() for g in grads]


def test_every_conv_and_linear_layer_is_measured_from_input_to_output():
    names = [name for name, _ in weight_layers(CifarNet(8, residual=False))]
    assert names == ["conv", *[f"blocks.{b}.conv{i}" for b in range(3) for i in (1, 2)], "fc"]


def test_the_norms_at_init_are_autograds_for_the_same_batch():
    torch.manual_seed(0)
    net = CifarNet(14, residual=True)
    images, labels = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    expected = autograd_norms(net, images, labels)
    rows = at_init(net, images, labels)
    assert [row["grad_norm"] for row in rows] == pytest.approx(expected, rel=1e-5)
    assert [row["weight_norm"] for row in rows] == pytest.approx([w.norm().item() for _, w in weight_layers(net)])
    assert len(set(expected)) == len(expected)  # every layer its own number: a row per layer, not one value


def test_a_run_records_the_gradient_norms_of_the_step_just_taken(tmp_path, fake_cifar_root):
    """gradients.csv at step 1 holds the norms autograd gives for the run's first batch at the run's initial
    weights (rebuilt by the analyses from the run's config and seed): the recorder reads the right gradients."""
    result = run_train(
        *TINY_RUN,
        f"data.root={fake_cifar_root}",
        "trainer.log_every=1",
        "trainer.max_steps=2",
        "trainer.eval_every=2",
        "name=grads",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run = RunDir(tmp_path / "runs/grads/resnet-8/seed=0")
    rows = run.read_gradients()
    assert run.gradients_path.read_text().splitlines()[0] == ",".join(GRADIENT_COLUMNS)
    assert [row["step"] for row in rows] == [1] * 8 + [2] * 8
    data = CifarDataModule(root=str(fake_cifar_root), download=False, batch_size=16, seed=0)
    data.setup()
    images, labels = next(iter(data.train_dataloader()))
    net = init_net(of_run(run))
    expected = autograd_norms(net, images, labels)
    assert [row["grad_norm"] for row in rows[:8]] == pytest.approx(expected, rel=1e-4)
    assert [row["layer"] for row in rows[:8]] == [name for name, _ in weight_layers(net)]


def test_gradients_are_recorded_at_the_steps_of_the_metrics_rows(straight_run):
    """Every log_every iterations and at the last (TINY_RUN: 4, 8, 12): the same rule as metrics.csv's rows."""
    row_steps = [row["step"] for row in straight_run.read_metrics() if row["train_loss"] is not None]
    assert row_steps == [4, 8, 12]
    assert sorted({row["step"] for row in straight_run.read_gradients()}) == row_steps


def test_no_rows_before_a_step_and_none_when_recording_is_off(tmp_path, fake_cifar_root):
    assert GradientRecorder(CifarNet(8, residual=True)).read(0) == []
    result = run_train(
        *TINY_RUN, f"data.root={fake_cifar_root}", "trainer.record_gradients=false", "name=off", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert not RunDir(tmp_path / "runs/off/resnet-8/seed=0").gradients_path.exists()


@pytest.mark.parametrize(
    "entry, length, norm",
    [
        (1e18, 1000, 3.1622776601683794e19),  # float32's sum of squares is inf from ~1.8e19 on
        (1e38, 1000, 3.1622776601683794e39),  # past float32's largest number: the row is a float64
        (0.0, 10, 0.0),
        (math.inf, 10, math.inf),
    ],
    ids=["1e18-x1000", "1e38-x1000", "zeros", "an-infinite-entry"],
)
def test_a_recorded_norm_is_exact_while_every_entry_is_finite(entry, length, norm):
    weight = torch.nn.Parameter(torch.full((length,), 2.0))
    weight.grad = torch.full((length,), entry)
    [row] = rows(0, ["w"], norms_on_device([weight]))
    assert row["grad_norm"] == pytest.approx(norm, rel=1e-6)
    assert row["weight_norm"] == pytest.approx(2.0 * math.sqrt(length), rel=1e-6)
