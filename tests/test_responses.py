import pytest
import torch
from torch import nn

from degradation.data import CifarLoader, Split
from degradation.models import CifarNet
from degradation.responses import response_layers, response_stds


def test_one_response_per_3x3_layer_in_network_order():
    net = CifarNet(20, residual=True, shortcut="B")  # projection BNs are not 3x3 layers
    layers = response_layers(net)
    assert len(layers) == 19 and layers[0] is net.bn and layers[-1] is net.blocks[-1].bn2


def test_response_std_is_the_std_of_the_bn_output_over_the_whole_set_in_eval_mode():
    torch.manual_seed(0)
    net = CifarNet(8, residual=False)
    nn.init.normal_(net.blocks[0].bn2.weight, 2.0, 0.1)
    images = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8)
    loader = CifarLoader(Split(images, torch.zeros(50, dtype=torch.long)), torch.zeros(3, 32, 32), 16, train=False)
    outputs = []
    handle = net.blocks[0].bn2.register_forward_hook(lambda module, inputs, output: outputs.append(output))
    net.eval()
    with torch.no_grad():
        for batch, _ in loader:
            net(batch)
    handle.remove()
    net.train()
    stds = response_stds(net, loader)
    assert len(stds) == 7 and net.training  # mode restored
    assert stds[2] == pytest.approx(torch.cat(outputs).double().std().item(), rel=1e-9)
