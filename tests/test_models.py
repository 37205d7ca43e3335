import pytest
import torch
from torch import nn

from degradation.models import BasicBlock, CifarNet, InvalidDepthError, ZeroPadShortcut, count_parameters

PAPER_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962, 1202: 19_421_274}
OPTION_B_EXTRA = 2_752


@pytest.mark.parametrize("depth", sorted(PAPER_PARAMS))
def test_parameter_counts_match_the_paper_for_both_shortcut_options(depth):
    for residual in (False, True):
        assert count_parameters(CifarNet(depth, residual, shortcut="A")) == PAPER_PARAMS[depth]
    assert count_parameters(CifarNet(depth, True, shortcut="B")) == PAPER_PARAMS[depth] + OPTION_B_EXTRA
    # the plain twin has no shortcuts, so option B adds nothing to it
    assert count_parameters(CifarNet(depth, False, shortcut="B")) == PAPER_PARAMS[depth]


def test_option_a_subsamples_and_pads_zero_channels_without_parameters():
    shortcut = ZeroPadShortcut(stride=2, extra_channels=16)
    x = torch.randn(2, 16, 32, 32)
    out = shortcut(x)
    assert out.shape == (2, 32, 16, 16)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 16:]) == 0
    assert count_parameters(shortcut) == 0


@pytest.mark.parametrize("depth", [7, 21, 0, -4, 2])
def test_invalid_depth_is_refused_with_the_valid_depths_listed(depth):
    with pytest.raises(InvalidDepthError, match=r"6n\+2.*20, 32, 44, 56, 110"):
        CifarNet(depth, residual=True)


def test_forward_gives_logits_for_each_image():
    net = CifarNet(8, residual=True, num_classes=10)
    assert net(torch.randn(3, 3, 32, 32)).shape == (3, 10)


def zero_second_conv(block: BasicBlock) -> BasicBlock:
    block.eval()
    nn.init.zeros_(block.conv2.weight)
    return block


def test_residual_block_adds_identity_before_its_last_relu_and_plain_block_does_not():
    x = torch.randn(2, 16, 8, 8)
    residual = zero_second_conv(BasicBlock(16, 16, 1, residual=True, shortcut="A"))
    plain = zero_second_conv(BasicBlock(16, 16, 1, residual=False, shortcut="A"))
    with torch.no_grad():
        assert torch.allclose(residual(x), torch.relu(x))  # relu(0 + x): the ReLU comes after the addition
        assert torch.count_nonzero(plain(x)) == 0  # relu(bn(0)) with no shortcut


def test_plain_and_residual_nets_have_the_same_layers():
    plain, residual = CifarNet(20, residual=False), CifarNet(20, residual=True)
    shapes = lambda net: [(name, p.shape) for name, p in net.named_parameters()]  # noqa: E731
    assert shapes(plain) == shapes(residual)


def test_convs_have_no_bias_and_he_normal_weights():
    net = CifarNet(20, residual=True, init_mode="fan_in")
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(conv.bias is None for conv in convs)
    widest = convs[-1].weight  # 64 x 64 x 3 x 3: fan_in = 576
    assert widest.std().item() == pytest.approx((2 / 576) ** 0.5, rel=0.05)
