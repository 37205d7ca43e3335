"""Signal propagation at init (analysis/signal.py): its known answers, on tiny nets."""

import pytest
import torch
from torch import nn

from degradation.analysis.lesion import without_blocks
from degradation.analysis.signal import block_statistics, fix_batch_statistics, jacobian_singular_values
from degradation.nets.cifar import Network
from degradation.nets.registry import build_net


def orthogonal_linear_net() -> nn.Module:
    """Three 1x1 convs with orthogonal 3x3 weights (an orthogonal map of the 3072 pixels' values), then a linear
    map 3072 -> 10 with orthonormal rows: a linear net whose Jacobian has orthonormal rows."""
    torch.manual_seed(0)
    convs = [nn.Conv2d(3, 3, 1, bias=False) for _ in range(3)]
    head = nn.Linear(3 * 32 * 32, 10, bias=False)
    for layer in [*convs, head]:
        nn.init.orthogonal_(layer.weight)
    return nn.Sequential(*convs, nn.Flatten(), head)


def test_a_linear_net_of_orthogonal_maps_has_ten_equal_singular_values_and_one_of_scaled_rows_has_their_scales():
    images = torch.randn(4, 3, 32, 32)
    values = jacobian_singular_values(orthogonal_linear_net(), images)
    assert values.shape == (4, 10)
    assert torch.allclose(values, torch.ones_like(values), atol=1e-5)
    uneven = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10, bias=False))
    nn.init.orthogonal_(uneven[1].weight)
    with torch.no_grad():
        uneven[1].weight.mul_(torch.arange(1.0, 11.0)[:, None])  # orthonormal rows scaled 1 ... 10
    spread = jacobian_singular_values(uneven, images)
    assert torch.allclose(spread, torch.arange(10.0, 0.0, -1).double().expand(4, 10), rtol=1e-4)


def test_a_net_whose_blocks_equal_their_lesioned_form_has_the_jacobian_of_its_shallow_net():
    """ReZero at init: every gate is 0, so the net is its stem, its shortcuts and its head; the Jacobian's
    singular values are those of that net with every block deleted."""
    torch.manual_seed(0)
    net = build_net(family="cifar", depth=14, residual=True, branch_init="rezero")
    images = torch.randn(8, 3, 32, 32)
    shallow = without_blocks(net, set(range(len(net.blocks))))
    fix_batch_statistics(net, images)
    fix_batch_statistics(shallow, images)
    deep, expected = jacobian_singular_values(net, images), jacobian_singular_values(shallow, images)
    assert torch.allclose(deep, expected, rtol=1e-5, atol=1e-7) and (deep > 0).all()


class BNBlock(nn.Module):
    """A conv and a BN: a plain block whose output is a BN's (for the known answer below)."""

    residual, changes_shape = False, False

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)

    def forward(self, x):
        return self.bn(self.conv(x))


class BNNet(Network):
    def __init__(self, blocks: int):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.blocks = nn.Sequential(*(BNBlock() for _ in range(blocks)))
        self.fc = nn.Linear(16, 10)


def test_after_each_bn_in_train_mode_a_blocks_output_has_channel_means_0_and_variances_1():
    torch.manual_seed(0)
    statistics = block_statistics(BNNet(6), 3 * torch.randn(32, 3, 32, 32) + 1)
    assert len(statistics["variance"]) == 6 and statistics["branch_variance"] == [None] * 6
    assert statistics["squared_mean"] == pytest.approx([0.0] * 6, abs=1e-12)
    assert statistics["variance"] == pytest.approx([1.0] * 6, abs=1e-3)  # var / (var + eps)


def test_a_bn_resnets_branch_variance_is_that_of_the_bn_that_ends_its_branch():
    """A BN ResNet's branches end in BN: variance 1 (minus eps), where the block outputs' variance grows along a
    stage (each block adds a branch of variance 1 to its input)."""
    torch.manual_seed(0)
    statistics = block_statistics(build_net(family="cifar", depth=20, residual=True), torch.randn(32, 3, 32, 32))
    assert statistics["branch_variance"] == pytest.approx([1.0] * 9, abs=1e-3)
    assert statistics["variance"][2] > statistics["variance"][0]


def test_with_bn_fixed_at_the_batchs_statistics_eval_mode_gives_train_modes_logits():
    """What makes each image's Jacobian its own and still the net's: BN becomes the map train mode applied."""
    torch.manual_seed(0)
    net, images = build_net(family="cifar", depth=8, residual=False), torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        train_logits = net.train()(images)
        fix_batch_statistics(net, images)
        assert not net.training
        assert torch.allclose(net(images), train_logits, atol=1e-4)
        assert torch.allclose(net(images[:3]), train_logits[:3], atol=1e-4)  # no image depends on the others


def test_stochastic_depth_is_its_expectation_in_both_passes_so_fixed_bn_still_gives_the_same_logits():
    """A drop-path net: the statistics pass and the Jacobian's pass both scale each branch by its survival
    probability (no random draw), so the statistics repeat and BN fixed on the first pass fits the second."""
    torch.manual_seed(0)
    net, images = build_net(family="cifar", depth=14, residual=True, drop_path=0.5), torch.randn(16, 3, 32, 32)
    first, second = block_statistics(net, images), block_statistics(net, images)
    assert first == second
    seen = []
    net.blocks[-1].register_forward_hook(lambda m, i, out: seen.append(out))
    fix_batch_statistics(net, images)
    with torch.no_grad():
        net(images)
    assert torch.allclose(seen[1], seen[0], atol=1e-5)  # the fixed pass equals the statistics pass


def test_the_signal_figures_draw_nets_of_several_kinds_side_by_side_each_labelled_by_its_kind():
    """The interventions study draws its variants together: no refusal, a line per net and kind, and where the
    Jacobian is 0 (Fixup's zero logits) the legend says so instead of a ratio."""
    from degradation.analysis.registry import ANALYSES
    from degradation.report.analysis_figures import Drawing, entries_of_nets
    from degradation.report.signal_figures import signal_figures

    blocks = {"squared_mean": [0.1, 0.1], "variance": [0.5, 0.5], "branch_variance": [None, None]}
    values = [[3.0, 1.0] + [0.5] * 8] * 2
    record = {
        "settings": {"seed": 0, "batch": 128},
        "nets": {
            "plain-8": {"blocks": blocks, "jacobian_singular_values": values},
            "plain-8-dirac": {"blocks": blocks, "jacobian_singular_values": values},
            "resnet-8-norm-none-fixup": {"blocks": blocks, "jacobian_singular_values": [[0.0] * 10] * 2},
        },
    }
    drawing = Drawing(entries_of_nets(record, ANALYSES["signal"].kinds_apart))
    figures = drawing.say_kind(signal_figures(drawing))
    legend = [text.get_text() for text in figures["signal_jacobian_at_init"].axes[0].get_legend().get_texts()]
    assert legend == [
        "plain-8 (largest / smallest 6)",
        "plain-8 dirac (largest / smallest 6)",
        "ResNet-8 norm-none-fixup (Jacobian 0: the logits are 0 at init)",
    ]
    assert not any("nets" == text.get_text().split()[-1] for f in figures.values() for text in f.texts)  # no corner
