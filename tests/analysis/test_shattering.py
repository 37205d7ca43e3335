import pytest
import torch
from torch import nn

from degradation.analysis.shattering import (
    BN_MODES,
    TOY_DEFINITION,
    autocorrelation,
    both_bn_modes,
    image_pairs,
    input_gradients,
    line_between,
    noise_autocorrelation,
    toy,
    toy_gradient,
)
from degradation.analysis.subjects import low_memory_forward
from degradation.nets.cifar import CifarNet


def test_a_linear_networks_input_gradients_are_perfectly_correlated():
    """The gradient of a linear map is the same at every input: r(k) = 1 at every lag (this net has no BN, so the
    two modes agree; what they do to BN is the next tests' known answer)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([3, 1, 4, 1])
    result = both_bn_modes(net, image_pairs(images, labels, 2), max_lag=10)
    for mode in BN_MODES:
        assert result[mode]["autocorrelation"] == pytest.approx([1.0] * 11)
        assert result[mode]["neighbour_correlation_per_pair"] == pytest.approx([1.0, 1.0])


def test_white_noise_gradients_are_uncorrelated_and_a_smooth_signal_is_not():
    torch.manual_seed(0)
    noise = autocorrelation(torch.randn(256, 500), max_lag=5)
    assert noise[0] == pytest.approx(1.0) and max(abs(r) for r in noise[1:]) < 0.02
    t = torch.linspace(0, 1, 256).view(-1, 1)
    smooth = autocorrelation(torch.cat([torch.sin(3 * t), torch.cos(2 * t)], 1), max_lag=5)
    assert smooth[1] > 0.99


def test_the_line_runs_from_the_first_image_to_the_second():
    a, b = torch.zeros(3, 4, 4), torch.ones(3, 4, 4)
    line = line_between(a, b, 5)
    assert torch.equal(line[0], a) and torch.equal(line[-1], b) and line[2].mean().item() == pytest.approx(0.5)


def test_train_mode_bn_leaves_the_network_and_its_statistics_as_they_were():
    net = CifarNet(8, residual=True).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    input_gradients(net, torch.randn(8, 3, 32, 32), 0, "train")
    assert not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_the_low_memory_forward_gives_the_gradients_of_the_plain_forward():
    """Deep nets go through block checkpoints (a 1202-layer net would not fit otherwise); BN in train mode
    recomputes with the same batch, so the gradients are those of the ordinary forward."""
    torch.manual_seed(0)
    net = CifarNet(104, residual=False).train()  # 51 blocks: checkpointed
    inputs = torch.randn(6, 3, 32, 32, requires_grad=True)
    (expected,) = torch.autograd.grad(net(inputs)[:, 2].sum(), inputs)
    (got,) = torch.autograd.grad(low_memory_forward(net, inputs)[:, 2].sum(), inputs)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-7)


def mean_toy_autocorrelation(name: str, seeds: int, max_lag: int = 8) -> torch.Tensor:
    return torch.tensor([autocorrelation(toy_gradient(name, seed), max_lag) for seed in range(seeds)]).mean(0)


def test_a_1_layer_toy_nets_gradient_has_the_autocorrelation_of_brown_noise():
    """Balduzzi et al.'s known answer, as numbers: a 1-layer net's gradient is a sum of steps at its kinks, a random
    walk along the line; over 200 seeds its r(1..8) is brown noise's (0.975, 0.951, 0.903, 0.813 at lags 1, 2, 4, 8)
    within 0.04 (3 standard errors at lag 8). A single step (every kink at x = 0) is 0.935 at lag 8."""
    brown = torch.tensor(noise_autocorrelation("brown", max_lag=8))
    assert brown[[1, 8]].tolist() == pytest.approx([0.975, 0.815], abs=0.01)
    toy_r = mean_toy_autocorrelation("feedforward-1", seeds=200)
    assert (toy_r[1:] - brown[1:]).abs().max() < 0.04, (toy_r.tolist(), brown.tolist())


def test_a_deep_plain_toy_nets_gradient_has_the_autocorrelation_of_white_noise():
    """The other end: 24 plain layers shatter the gradient; over 16 seeds r(1..8) is within 0.06 of white noise's
    (0: neighbouring gradients are unrelated; 3.5 standard errors), while the 50-block ResNet's r(1) stays above
    0.4 (Balduzzi et al.'s Figure 1)."""
    white = torch.tensor(noise_autocorrelation("white", max_lag=8))
    assert white[1:].abs().max() < 0.01
    deep = mean_toy_autocorrelation("feedforward-24", seeds=16)
    assert (deep[1:] - white[1:]).abs().max() < 0.06, deep.tolist()
    assert autocorrelation(toy_gradient("resnet-50", seed=0), 1)[1] > 0.4


def test_r_at_the_same_fraction_of_the_line_does_not_depend_on_the_number_of_points():
    """Why records say their points: lag k is k/(points - 1) of the line. Brown noise's r at 2/255, 4/255 and 8/255
    of the line is the same at 256, 128 and 64 points (within 0.003), while r(1) drops from 0.975 to 0.905."""
    by_points = {points: noise_autocorrelation("brown", points, max_lag=8) for points in (256, 128, 64)}
    assert by_points[256][2] == pytest.approx(by_points[128][1], abs=0.003)
    assert (
        by_points[256][8] == pytest.approx(by_points[128][4], abs=0.003) == pytest.approx(by_points[64][2], abs=0.003)
    )
    assert by_points[256][1] - by_points[64][1] > 0.06


def test_the_toy_record_holds_each_nets_gradient_and_the_noises_at_its_points():
    record = toy(seed=0, max_lag=4)
    assert record["definition"] == TOY_DEFINITION and record["points"] == 256 and record["line"] == [-2.0, 2.0]
    assert set(record["noises"]) == {"brown", "white"} and all(len(r) == 5 for r in record["noises"].values())
    assert all(len(result["gradient"]) == 256 for result in record["nets"].values())


class OneHiddenLayer(nn.Module):
    """1 input -> Linear(6) -> BN -> ReLU -> Linear(2), with BN parameters and running statistics far from 0 and 1."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.Sequential(nn.Linear(1, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
        bn = self.layers[1]
        with torch.no_grad():
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-1.0, 1.0)
            bn.running_var.uniform_(0.2, 3.0)

    def forward(self, x):
        return self.layers(x)

    def by_hand(self, x: torch.Tensor, statistics: str) -> torch.Tensor:
        """The same net written out: BN with the batch's mean and (biased) variance, or with the running ones."""
        first, bn, _, last = self.layers
        h = first(x)
        if statistics == "batch":
            mean, var = h.mean(0), h.var(0, unbiased=False)
        else:
            mean, var = bn.running_mean, bn.running_var
        return last(torch.relu(bn.weight * (h - mean) / torch.sqrt(var + bn.eps) + bn.bias))


@pytest.mark.parametrize("bn_mode, statistics", [("train", "batch"), ("eval", "running")])
def test_bn_normalises_the_line_with_the_batchs_statistics_in_train_mode_and_the_running_ones_in_eval(
    bn_mode, statistics
):
    """Train mode: the line's points are one batch, g_i is the gradient of the batch's summed output at input i
    (through the batch mean and variance); eval mode: each point's own gradient with the running statistics."""
    net = OneHiddenLayer()
    inputs = torch.linspace(-2, 2, 32).view(-1, 1)
    x = inputs.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(net.by_hand(x, statistics)[:, 1].sum(), x)
    got = input_gradients(net, inputs, 1, bn_mode)
    assert torch.allclose(got, expected.double(), rtol=1e-5, atol=1e-7)
    other = "running" if statistics == "batch" else "batch"
    (not_expected,) = torch.autograd.grad(net.by_hand(x, other)[:, 1].sum(), x)
    assert not torch.allclose(got, not_expected.double(), rtol=1e-2)  # the two modes differ on this net
