import pytest
import torch
from torch import nn

from degradation.analysis.shattering import (
    BN_MODES,
    autocorrelation,
    both_bn_modes,
    image_pairs,
    input_gradients,
    line_between,
    toy,
)
from degradation.analysis.subjects import low_memory_forward
from degradation.nets.cifar import CifarNet


def test_a_linear_networks_input_gradients_are_perfectly_correlated():
    """The gradient of a linear map is the same at every input: r(k) = 1 at every lag, in both BN modes."""
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


def test_the_1d_toy_shatters_with_depth_and_the_resnet_keeps_its_gradients_correlated():
    """The method's check on Balduzzi et al.'s toy: a 24-layer feedforward net's gradient decorrelates far more
    than a 1-layer one's or a 50-block ResNet's (their Figure 1)."""
    nets = toy(seed=0, max_lag=4)
    r1 = {name: result["autocorrelation"][1] for name, result in nets.items()}
    assert r1["feedforward-24"] < r1["resnet-50"] and r1["feedforward-24"] < r1["feedforward-1"]
    assert all(len(result["gradient"]) == 256 for result in nets.values())
