"""The network contract (nets/contract.py), checked for every registered family and switch: what training, Figure 7
and the analyses rely on, on tiny nets."""

import pytest
import torch
from torch import nn

from degradation.analysis.lesion import without_blocks
from degradation.nets.cifar import count_parameters
from degradation.nets.contract import missing, zero_branch
from degradation.nets.parts import dropped_path
from degradation.nets.registry import FAMILIES, build_net, net_args

CASES = {
    **{
        f"cifar-{'resnet' if residual else 'plain'}-8-{shortcut}": dict(
            family="cifar", depth=8, residual=residual, shortcut=shortcut
        )
        for residual in (True, False)
        for shortcut in ("A", "B")
    },
    **{
        f"cifar-{'resnet' if residual else 'plain'}-8-preact-{shortcut}": dict(
            family="cifar", depth=8, residual=residual, shortcut=shortcut, block="preact"
        )
        for residual in (True, False)
        for shortcut in ("A", "B")
    },
    "cifar-resnet-8-rezero-A": dict(family="cifar", depth=8, residual=True, branch_init="rezero"),
    "cifar-resnet-8-preact-rezero-B": dict(
        family="cifar", depth=8, residual=True, block="preact", shortcut="B", branch_init="rezero"
    ),
    "cifar-resnet-8-norm-none-skipinit-B": dict(
        family="cifar", depth=8, residual=True, shortcut="B", norm="none", branch_init="skipinit"
    ),
    "cifar-plain-8-norm-none-A": dict(family="cifar", depth=8, residual=False, norm="none"),
    "cifar-resnet-8-norm-none-fixup-A": dict(family="cifar", depth=8, residual=True, norm="none", branch_init="fixup"),
    "cifar-resnet-8-droppath-A": dict(family="cifar", depth=8, residual=True, drop_path=0.5),
    "cifar-plain-8-norm-none-crelu": dict(family="cifar", depth=8, residual=False, norm="none", activation="crelu"),
    "cifar-plain-8-preact-crelu": dict(family="cifar", depth=8, residual=False, block="preact", activation="crelu"),
    "cifar-resnet-8-dirac-A": dict(family="cifar", depth=8, residual=True, conv="dirac"),
    "cifar-plain-8-preact-dirac": dict(family="cifar", depth=8, residual=False, block="preact", conv="dirac"),
    **{
        f"cifar-{'resnet' if residual else 'plain'}-11-preact_bottleneck-{shortcut}": dict(
            family="cifar", depth=11, residual=residual, shortcut=shortcut, block="preact_bottleneck"
        )
        for residual, shortcut in ((True, "A"), (True, "B"), (False, "B"))
    },
    **{
        f"imagenet-{'resnet' if residual else 'plain'}-{depth}": dict(family="imagenet", depth=depth, residual=residual)
        for residual in (True, False)
        for depth in (18, 50)
    },
}
# Published counts of the same nets: He et al. 2015's CIFAR ResNets with option A (as akamaster/pytorch_resnet_cifar10
# counts them) and ResNet-18/34/50 for CIFAR (kuangliu/pytorch-cifar).
PUBLISHED_PARAMETERS = {
    ("cifar", 20): 269_722,
    ("cifar", 56): 853_018,
    ("cifar", 110): 1_727_962,
    ("cifar", 1202): 19_421_274,
    ("imagenet", 18): 11_173_962,
    ("imagenet", 34): 21_282_122,
    ("imagenet", 50): 23_520_842,
}


def built(case: str) -> nn.Module:
    torch.manual_seed(0)
    net = build_net(**CASES[case])
    generator = torch.Generator().manual_seed(1)
    for module in net.modules():  # BN as training leaves it: not the identity
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.uniform_(-0.3, 0.3, generator=generator)
            module.running_mean.uniform_(-0.2, 0.2, generator=generator)
            module.running_var.uniform_(0.5, 2.0, generator=generator)
    return net.eval()


def block_inputs(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    inputs, features = [], net.stem(x)
    for block in net.blocks:
        inputs.append(features)
        features = block(features)
    return inputs


def test_every_family_has_a_case_here():
    assert {case["family"] for case in CASES.values()} == set(FAMILIES)


@pytest.mark.parametrize("case", CASES)
def test_a_network_is_its_stem_blocks_and_head(case):
    net, x = built(case), torch.randn(2, 3, 32, 32)
    assert missing(net) == []
    with torch.no_grad():
        assert torch.allclose(net(x), net.head(net.blocks(net.stem(x))), atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_a_residual_block_whose_branch_is_zeroed_equals_its_lesioned_form(case):
    net = built(case)
    with torch.no_grad():
        inputs = block_inputs(net, torch.randn(2, 3, 32, 32))
        for block, x in zip(net.blocks, inputs):
            lesioned = block.lesioned()
            if not block.residual:
                assert (lesioned is None) == block.changes_shape
                if lesioned is not None:
                    assert torch.equal(lesioned(x), x)  # a plain block deleted passes its input on
                continue
            zero_branch(block)
            assert torch.allclose(block(x), lesioned(x), atol=1e-6), case


@pytest.mark.parametrize("case", CASES)
def test_response_layers_come_in_the_order_the_input_meets_them(case):
    net, met = built(case), []
    layers = net.response_layers()
    for index, layer in enumerate(layers):
        layer.register_forward_hook(lambda module, inputs, output, index=index: met.append(index))
    with torch.no_grad():
        net(torch.randn(2, 3, 32, 32))
    assert met == list(range(len(layers))) and len(set(map(id, layers))) == len(layers)


@pytest.mark.parametrize("family, depth", PUBLISHED_PARAMETERS)
def test_the_parameter_count_is_the_published_one(family, depth):
    assert count_parameters(build_net(family=family, depth=depth, residual=True)) == PUBLISHED_PARAMETERS[family, depth]


@pytest.mark.parametrize("depth, paper", [(164, 1.7e6), (1001, 10.2e6)])
def test_the_pre_activation_bottleneck_nets_have_the_papers_parameter_counts(depth, paper):
    """He et al. 2016's Table 4: ResNet-164 1.7M, ResNet-1001 10.2M, with projection shortcuts as their code. Their
    counts are those of the conv and classifier weights (10,178,490 for ResNet-1001; with BN's scales and shifts
    10,327,706, which would round to 10.3M)."""
    net = build_net(family="cifar", depth=depth, residual=True, shortcut="B", block="preact_bottleneck")
    weights = sum(p.numel() for m in net.modules() if not isinstance(m, nn.BatchNorm2d) for p in m.parameters(False))
    assert round(weights, -5) == paper
    assert len(net.blocks) == 3 * (depth - 2) // 9 and net.fc.in_features == 256
    assert count_parameters(net) - weights == sum(2 * m.num_features for m in net.modules() if is_bn(m))


def is_bn(module: nn.Module) -> bool:
    return isinstance(module, nn.BatchNorm2d)


def test_a_pre_activation_bottleneck_shares_its_activation_where_the_channels_grow_and_else_returns_its_input():
    """Their code: each stage's first unit (16 -> 64, 64 -> 128, 128 -> 256 channels) applies its BN and ReLU before
    the split and projects the shortcut with a 1x1 conv (no BN); every other unit returns its input exactly when its
    branch is zero, negative values included."""
    net = build_net(family="cifar", depth=20, residual=True, shortcut="B", block="preact_bottleneck").eval()
    firsts = [block.activate_both for block in net.blocks]
    assert firsts == [True, False] * 3 and all(block.changes_shape == block.activate_both for block in net.blocks)
    assert all(
        isinstance(net.blocks[i].shortcut[0], nn.Conv2d) and not is_bn(net.blocks[i].shortcut[1]) for i in (0, 2)
    )
    block, x = net.blocks[3], torch.randn(2, 128, 16, 16)
    zero_branch(block)
    with torch.no_grad():
        assert (x < 0).any() and torch.equal(block(x), x)


def test_looks_linear_makes_a_plain_net_without_bn_linear_at_init():
    """Balduzzi et al. 2017: CReLU with mirrored weights [W, -W] gives W·relu(x) - W·relu(-x) = W·x, so the net is
    affine at init: f(t·x + (1-t)·y) = t·f(x) + (1-t)·f(y). The same net with ReLU is far from it."""
    for block in ("original", "preact"):
        torch.manual_seed(0)
        net = build_net(family="cifar", depth=8, residual=False, norm="none", activation="crelu", block=block)
        relu = build_net(family="cifar", depth=8, residual=False, norm="none", block=block)
        x, y, t = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32), 0.3
        with torch.no_grad():
            scale = net(x).abs().max()
            assert (net(t * x + (1 - t) * y) - (t * net(x) + (1 - t) * net(y))).abs().max() < 1e-5 * scale
            assert (net(x) - net(y)).abs().max() > 0.1 * scale  # linear, not constant
            assert (relu(t * x + (1 - t) * y) - (t * relu(x) + (1 - t) * relu(y))).abs().max() > 0.05 * scale
        assert net.blocks[0].conv1.in_channels == 2 * 16 and net.fc.in_features == 2 * 64


def test_a_dirac_conv_with_b_zero_passes_each_channel_on_scaled_by_a():
    """DiracNets: W = diag(a)·δ + diag(b)·Ŵ. With b = 0 every conv is the identity on its channels (times a): a
    stride-2 conv passes the subsampled map on, a conv to twice the channels copies each input channel twice."""
    net = build_net(family="cifar", depth=8, residual=False, conv="dirac")
    convs = [m for m in net.blocks.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6 and all(type(conv).__name__ == "DiracConv2d" for conv in convs)
    for conv in convs:
        assert torch.equal(conv.dirac_scale, torch.full_like(conv.dirac_scale, 5.0))
        with torch.no_grad():
            conv.weight_scale.zero_()
            conv.dirac_scale.uniform_(0.5, 2.0)
            x = torch.randn(2, conv.in_channels, 8, 8)
            passed = x[:, :, :: conv.stride[0], :: conv.stride[1]].repeat(
                1, conv.out_channels // conv.in_channels, 1, 1
            )
            assert torch.allclose(conv(x), conv.dirac_scale.view(1, -1, 1, 1) * passed, atol=1e-6)
            conv.dirac_scale.zero_()
            conv.weight_scale.fill_(1.0)  # a = 0, b = 1: the kernel is the weight, each output filter of norm 1
            assert torch.allclose(conv.kernel().flatten(1).norm(dim=1), torch.ones(conv.out_channels), atol=1e-5)


def test_a_pre_activation_block_with_a_zeroed_branch_returns_its_input_exactly_negative_values_included():
    """He et al. 2016's identity mapping: nothing after the addition. The post-activation block would give relu(x)."""
    net = build_net(family="cifar", depth=14, residual=True, block="preact").eval()
    block = net.blocks[1]  # the first block activates both paths; blocks[2] is the second stage's first
    assert not block.changes_shape and not block.activate_both
    zero_branch(block)
    x = torch.randn(2, 16, 32, 32)
    with torch.no_grad():
        assert (x < 0).any() and torch.equal(block(x), x)
        first = net.blocks[0]  # after the stem conv: the input is activated before the split (their appendix)
        zero_branch(first)
        assert first.activate_both and torch.equal(first(x), torch.relu(first.bn1(x)))


def test_pre_activation_moves_the_stems_bn_after_the_last_block():
    """Their CIFAR nets: the stem is a conv alone (a 16-channel BN less), the two downsampling blocks' first BN sees
    their 16 and 32 input channels instead of 32 and 64 (48 channels less), a 64-channel BN follows the last block:
    the BNs move, and a pre-activation ResNet-110 has the post-activation one's 1,727,962 parameters (their 1.7M)."""
    original, preact = (
        count_parameters(build_net(family="cifar", depth=110, residual=True, block=block))
        for block in ("original", "preact")
    )
    assert preact == original - 2 * 16 - 2 * (16 + 32) + 2 * 64 == 1_727_962
    net = build_net(family="cifar", depth=110, residual=True, block="preact").eval()
    assert not hasattr(net, "bn") and net.final_bn.num_features == 64
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = net.blocks(net.conv(x))  # the stem is the conv alone
        expected = net.fc(torch.relu(net.final_bn(features)).mean((2, 3)))
        assert torch.allclose(net(x), expected, atol=1e-5)


@pytest.mark.parametrize(
    "case", ["cifar-resnet-8-rezero-A", "cifar-resnet-8-preact-rezero-B", "cifar-resnet-8-norm-none-skipinit-B"]
)
def test_a_gated_net_at_init_is_its_net_with_every_block_deleted(case):
    """ReZero / SkipInit: a = 0 on every branch, so at init each block equals its lesioned form and the whole net
    equals its stem -> shortcuts -> head, nothing zeroed by hand."""
    net, x = built(case), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for block, block_input in zip(net.blocks, block_inputs(net, x)):
            assert block.gate.item() == 0 and torch.equal(block(block_input), block.lesioned()(block_input))
        assert torch.allclose(net(x), without_blocks(net, set(range(len(net.blocks))))(x), atol=1e-6)


def test_without_normalisation_no_bn_is_left_anywhere():
    net = build_net(family="cifar", depth=8, residual=True, shortcut="B", norm="none", branch_init="skipinit")
    assert not any(isinstance(module, nn.BatchNorm2d) for module in net.modules())
    assert (
        sum(
            isinstance(module, nn.BatchNorm2d) for module in build_net(family="cifar", depth=8, residual=True).modules()
        )
        == 7
    )


def test_fixup_at_init_gives_zero_logits_and_zero_branches_exactly():
    """Zhang et al.'s known answer: each branch's last conv and the classifier start at zero, so every branch
    outputs exactly 0 and so do the logits, whatever the input; the first convs are He init scaled by L^(-1/2)."""
    torch.manual_seed(0)
    net = build_net(family="cifar", depth=20, residual=True, norm="none", branch_init="fixup").eval()
    he = build_net(family="cifar", depth=20, residual=True, norm="none")
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), torch.zeros(4, 10))
        for block, block_input in zip(net.blocks, block_inputs(net, x)):
            assert torch.equal(block.fixup_branch(block_input), torch.zeros_like(block.fixup_branch(block_input)))
    ratio = net.blocks[4].conv1.weight.std() / he.blocks[4].conv1.weight.std()
    assert ratio.item() == pytest.approx(9**-0.5, rel=0.05)  # 9 blocks in a 20-layer net


def test_stochastic_depth_drops_blocks_linearly_in_depth_as_often_as_said_and_evaluates_the_expectation():
    """Huang et al.: block l of L is dropped with probability l/L * 0.5. Over 10,000 draws a block's empirical drop
    rate is within 3 standard errors of its probability; evaluation scales the branch by its survival probability,
    which is the mean of the training outputs (within 3 standard errors too)."""
    net = build_net(family="cifar", depth=20, residual=True, drop_path=0.5)
    assert [block.drop for block in net.blocks] == pytest.approx([0.5 * (i + 1) / 9 for i in range(9)])
    torch.manual_seed(0)
    draws, drop = 10_000, net.blocks[4].drop
    branch = torch.ones(3)
    kept = torch.stack([dropped_path(branch, drop, training=True) for _ in range(draws)])
    rate, error = (kept[:, 0] == 0).double().mean().item(), 3 * (drop * (1 - drop) / draws) ** 0.5
    assert abs(rate - drop) < error and set(kept.unique().tolist()) == {0.0, 1.0}
    expectation = dropped_path(branch, drop, training=False)
    assert torch.equal(expectation, branch * (1 - drop))
    assert abs(kept[:, 0].double().mean().item() - expectation[0].item()) < error


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_a_delta_orthogonal_conv_is_an_orthogonal_centre_tap_and_zeros_elsewhere(shortcut):
    """Xiao et al. 2018's known answer, for every conv (3x3 and the 1x1 projections): W^T W = sigma_w^2 I at the
    centre tap (sigma_w^2 = 2 for ReLU), every other tap exactly 0."""
    torch.manual_seed(0)
    net = build_net(family="cifar", depth=14, residual=False, shortcut=shortcut, init_mode="delta_orthogonal")
    convs = [module for module in net.modules() if isinstance(module, nn.Conv2d)]
    assert len(convs) == 13
    for conv in convs:
        weight = conv.weight.detach()
        height, width = weight.shape[2:]
        centre = weight[:, :, height // 2, width // 2]
        eye = torch.eye(weight.shape[1])
        assert torch.allclose(centre.T @ centre, 2.0 * eye, atol=1e-5)
        others = weight.clone()
        others[:, :, height // 2, width // 2] = 0
        assert torch.count_nonzero(others) == 0


def test_a_run_trained_before_the_interventions_existed_rebuilds_the_papers_net():
    """An older summary.json's model config lacks block, norm, activation, conv ...: its net at init (the analyses
    rebuild it with the run's seed) is the paper's, weight for weight, not a KeyError."""
    older = {"family": "cifar", "arch": "resnet", "residual": True, "depth": 8, "shortcut": "A", "init_mode": "fan_in"}
    torch.manual_seed(0)
    rebuilt = build_net(**net_args(older, 10)).state_dict()
    torch.manual_seed(0)
    paper = build_net(family="cifar", depth=8, residual=True).state_dict()
    assert rebuilt.keys() == paper.keys() and all(torch.equal(rebuilt[key], paper[key]) for key in paper)
