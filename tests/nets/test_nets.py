import pytest
import torch
import torch.nn.functional as F
from torch import nn

from degradation.nets.cifar import BasicBlock, CifarNet, InvalidDepthError, count_parameters
from degradation.nets.parts import BlockOptions, ZeroPadShortcut
from degradation.nets.registry import build_net

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
    residual = zero_second_conv(BasicBlock(16, 16, 1, BlockOptions(residual=True, shortcut="A")))
    plain = zero_second_conv(BasicBlock(16, 16, 1, BlockOptions(residual=False, shortcut="A")))
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


# --- the ImageNet-style ResNets adapted to CIFAR ------------------------------------------------

IMAGENET_STYLE_PARAMS = {18: 11_173_962, 34: 21_282_122, 50: 23_520_842}


@pytest.mark.parametrize("depth", sorted(IMAGENET_STYLE_PARAMS))
def test_imagenet_style_resnets_have_the_published_parameter_counts_and_their_plain_twins_lack_the_projections(depth):
    residual = build_net(family="imagenet", depth=depth, residual=True)
    plain = build_net(family="imagenet", depth=depth, residual=False)
    assert count_parameters(residual) == IMAGENET_STYLE_PARAMS[depth]
    projections = [
        m
        for m in residual.modules()
        if isinstance(m, nn.Sequential) and len(m) == 2 and isinstance(m[0], nn.Conv2d) and m[0].kernel_size == (1, 1)
    ]
    assert projections and count_parameters(plain) == IMAGENET_STYLE_PARAMS[depth] - sum(
        map(count_parameters, projections)
    )
    # Same layers, shortcuts removed: the plain twin's parameters are the residual net's minus the shortcuts'.
    plain_names = [(name, p.shape) for name, p in plain.named_parameters()]
    assert plain_names == [(name, p.shape) for name, p in residual.named_parameters() if ".shortcut." not in name]


@pytest.mark.parametrize("depth", sorted(IMAGENET_STYLE_PARAMS))
def test_imagenet_style_resnets_map_cifar_images_to_logits_through_a_3x3_stem_without_max_pool(depth):
    net = build_net(family="imagenet", depth=depth, residual=True)
    assert net.conv.kernel_size == (3, 3) and net.conv.stride == (1, 1) and net.conv.out_channels == 64
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert net.fc.in_features == (2048 if depth == 50 else 512)


def test_stride_in_puts_a_bottlenecks_stride_on_its_3x3_conv_or_its_first_1x1_conv():
    v15 = build_net(family="imagenet", depth=50, residual=True, stride_in="3x3").blocks[3]  # first block of stage 2
    original = build_net(family="imagenet", depth=50, residual=True, stride_in="1x1").blocks[3]
    assert (v15.conv1.stride, v15.conv2.stride) == ((1, 1), (2, 2))
    assert (original.conv1.stride, original.conv2.stride) == ((2, 2), (1, 1))
    assert v15.shortcut[0].stride == original.shortcut[0].stride == (2, 2)
    x = torch.randn(1, 256, 32, 32)
    assert v15(x).shape == original(x).shape == (1, 512, 16, 16)


def branch_of(block, x):
    """F(x): the block's layers up to the addition, written out."""
    out = torch.relu(block.bn1(block.conv1(x)))
    if hasattr(block, "conv3"):  # bottleneck
        return block.bn3(block.conv3(torch.relu(block.bn2(block.conv2(out)))))
    return block.bn2(block.conv2(out))


@pytest.mark.parametrize("family, depth", [("cifar", 14), ("imagenet", 18), ("imagenet", 50)])
def test_residual_scale_multiplies_the_branch_before_the_addition(family, depth):
    block = build_net(family=family, depth=depth, residual=True, residual_scale=0.25).blocks[1].eval()
    plain = build_net(family=family, depth=depth, residual=False, residual_scale=0.25).blocks[1].eval()
    plain.load_state_dict(block.state_dict())
    x = torch.randn(2, block.conv1.in_channels, 8, 8)
    with torch.no_grad():
        branch = branch_of(block, x)
        assert torch.allclose(block(x), torch.relu(x + 0.25 * branch), atol=1e-6)  # identity shortcut here
        assert torch.allclose(plain(x), torch.relu(0.25 * branch), atol=1e-6)  # the twin: no shortcut
        assert not torch.allclose(block(x), torch.relu(x + branch), atol=1e-3)


# Ops whose CUDA kernels are not deterministic and that raise under torch.use_deterministic_algorithms
# (trainer.deterministic=true); from the torch.use_deterministic_algorithms documentation.
NO_DETERMINISTIC_CUDA_KERNEL = {
    "_adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d_backward",
    "avg_pool3d_backward",
    "max_pool3d_with_indices_backward",
    "fractional_max_pool2d_backward",
    "reflection_pad2d_backward",
    "replication_pad2d_backward",
    "upsample_bilinear2d_backward",
    "nll_loss2d_forward",
    "index_add",
}


@pytest.mark.parametrize("family, depth", [("cifar", 20), ("imagenet", 18), ("imagenet", 50)])
def test_a_training_step_uses_only_ops_with_deterministic_cuda_kernels(family, depth):
    """Checked on the CPU by recording the ops of a forward and backward pass: on a GPU, one such op makes
    every trainer.deterministic=true run crash at its first backward."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class RecordOps(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.add(func.__name__.split(".")[0])
            return func(*args, **(kwargs or {}))

    net = build_net(family=family, depth=depth, residual=True, shortcut="B" if family == "imagenet" else "A")
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([1, 2])
    with RecordOps() as recorded:
        F.cross_entropy(net(images), labels).backward()
    assert "convolution_backward" in recorded.names  # the recorder saw the backward pass
    assert not recorded.names & NO_DETERMINISTIC_CUDA_KERNEL
