import pytest
import torch
from torch import nn

from degradation.analysis.lesion import deletable, lesion_study, without_blocks
from degradation.analysis.subjects import Images, error_and_loss
from degradation.nets.cifar import CifarNet


def trained_like(net: nn.Module) -> nn.Module:
    """BN with random affine parameters and running statistics measured on random images, as a trained net has
    (a fresh one's BN is the identity, and arbitrary statistics would leave every ReLU off)."""
    generator = torch.Generator().manual_seed(0)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.copy_(1 + 0.3 * torch.randn(module.weight.shape, generator=generator))
            module.bias.data.copy_(0.2 * torch.randn(module.bias.shape, generator=generator))
            module.momentum = None  # running statistics = the average over the batches below
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(32, 3, 32, 32, generator=generator))
    return net.eval()


def images(count: int = 64) -> Images:
    torch.manual_seed(1)
    return Images(torch.randn(count, 3, 32, 32), torch.randint(0, 10, (count,)))


def test_deleting_a_block_whose_residual_branch_is_zero_changes_nothing():
    torch.manual_seed(0)
    net = trained_like(CifarNet(14, residual=True))
    for index in (1, 2):  # an ordinary block and a downsampling one (its shortcut subsamples and pads)
        nn.init.zeros_(net.blocks[index].bn2.weight)
        nn.init.zeros_(net.blocks[index].bn2.bias)
    x = images().images
    with torch.no_grad():
        assert torch.allclose(without_blocks(net, {1, 2})(x), net(x), atol=1e-6)
    result = lesion_study(net, images(), ks=[], draws=1)
    assert result["single"][1] == result["single"][2] == result["intact"]


def test_deleting_a_plain_block_that_is_not_the_identity_changes_the_output():
    torch.manual_seed(0)
    net = trained_like(CifarNet(14, residual=False))
    x = images().images
    with torch.no_grad():
        assert not torch.allclose(without_blocks(net, {1})(x), net(x), atol=1e-3)
    assert error_and_loss(without_blocks(net, {1}), images())[1] != pytest.approx(error_and_loss(net, images())[1])


def test_plain_downsampling_blocks_cannot_be_deleted_and_are_marked():
    torch.manual_seed(0)
    plain, resnet = CifarNet(14, residual=False), CifarNet(14, residual=True)  # blocks: 2 per stage
    assert [deletable(block) for block in plain.blocks] == [True, True, False, True, False, True]
    assert all(deletable(block) for block in resnet.blocks)
    result = lesion_study(trained_like(plain), images(), ks=[1, 2, 5], draws=3, seed=0)
    assert [e is None for e in result["single"]] == [False, False, True, False, True, False]
    assert result["downsampling"] == [False, False, True, False, True, False]
    assert set(result["random"]) == {"1", "2"} and all(len(errors) == 3 for errors in result["random"].values())


def test_random_deletions_are_the_same_for_a_seed():
    net = trained_like(CifarNet(14, residual=True))
    first, again = (lesion_study(net, images(), ks=[2, 3], draws=2, seed=5)["random"] for _ in range(2))
    assert first == again


def test_a_resnet_with_every_block_deleted_is_its_stem_the_shortcuts_and_its_head():
    """Known answer: nothing of any residual branch is left; the stem's output (after a ReLU, so the deleted blocks'
    ReLUs change nothing) goes through the option-A shortcuts (subsample, zero-pad) to the head."""
    net = trained_like(CifarNet(14, residual=True))
    x = images().images
    with torch.no_grad():
        features = net.stem(x)
        for block in net.blocks:
            features = block.shortcut(features)
        assert torch.allclose(without_blocks(net, set(range(len(net.blocks))))(x), net.head(features), atol=1e-6)


def test_the_lesion_study_leaves_the_networks_weights_and_bn_statistics_as_they_were():
    net = trained_like(CifarNet(14, residual=True))
    before = {name: tensor.clone() for name, tensor in net.state_dict().items()}
    lesion_study(net.train(), images(), ks=[1, 2], draws=2)  # even handed a net in train mode
    after = net.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before), "the lesion study changed the network"
