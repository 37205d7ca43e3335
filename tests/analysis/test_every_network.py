"""Every analysis on every kind of network (issue 37): the lesion study, shattering, the landscape, the gradient norms
and Figure 7's responses, on tiny nets of each intervention; each gives finite numbers of the expected shape."""

import math
import re

import pytest
import torch

from degradation.analysis import gradients, landscape, lesion, shattering
from degradation.analysis.responses import response_stds
from degradation.analysis.subjects import Images, of_name
from degradation.errors import UserError
from degradation.nets.registry import build_net
from degradation.runs.rundir import run_name, variant

NETWORKS = {
    "preact": dict(block="preact"),
    "fixup": dict(norm="none", branch_init="fixup"),
    "rezero": dict(branch_init="rezero"),
    "stochastic-depth": dict(drop_path=0.5),
}


def tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_net(family="cifar", depth=8, residual=True, **NETWORKS[name])


def images(count: int = 16) -> Images:
    generator = torch.Generator().manual_seed(1)
    return Images(
        torch.randn(count, 3, 32, 32, generator=generator), torch.randint(0, 10, (count,), generator=generator)
    )


def finite(values) -> bool:
    return all(math.isfinite(value) for value in values)


@pytest.mark.parametrize("name", NETWORKS)
def test_every_analysis_runs_on_the_network(name):
    net, data = tiny(name), images()

    study = lesion.lesion_study(net, data, ks=[1, 2], draws=2)
    assert len(study["single"]) == len(net.blocks) == 3 and finite(study["single"])  # every residual block deletable

    pairs = shattering.image_pairs(data.images, data.labels, 1)
    shattered = shattering.both_bn_modes(net, pairs, max_lag=4)
    assert all(len(shattered[mode]["autocorrelation"]) == 5 for mode in shattering.BN_MODES)

    surface = landscape.surface(net, data, points=3)
    assert surface["complete"] and finite(value for row in surface["loss"] for value in row)

    rows = gradients.at_init(tiny(name), data.images, data.labels)
    assert len(rows) == len(gradients.weight_layers(net)) and finite(row["grad_norm"] for row in rows)

    stds = response_stds(net.eval(), [(data.images, data.labels)])
    assert len(stds) == len(net.response_layers()) == 7 and finite(stds)


@pytest.mark.parametrize(
    "name, keys",
    [
        ("resnet-110-preact", {"block": "preact"}),
        ("resnet-56-norm-none-fixup", {"norm": "none", "branch_init": "fixup"}),
        ("resnet-20-preact-rezero", {"block": "preact", "branch_init": "rezero"}),
        ("resnet-110-droppath0.5", {"drop_path": 0.5}),
        ("plain-56-delta_orthogonal", {"init_mode": "delta_orthogonal"}),
        ("resnet-164-preact_bottleneck", {"block": "preact_bottleneck"}),
        ("plain-20-norm-none-crelu", {"norm": "none", "activation": "crelu"}),
        ("imagenet-resnet-50", {"family": "imagenet", "stride_in": "3x3"}),
        (
            "imagenet-plain-18-delta_orthogonal",
            {"family": "imagenet", "residual": False, "init_mode": "delta_orthogonal"},
        ),
    ],
)
def test_analyses_at_init_name_a_variant_as_its_run_directory_does(name, keys):
    """--nets resnet-110-preact: the name a run directory gives the net builds that net."""
    subject = of_name(name)
    assert keys.items() <= subject.model.items()
    assert run_name(subject.model["family"], subject.arch, subject.depth, variant(subject.model)) == name


@pytest.mark.parametrize(
    "name, says",
    [
        ("resnet-20-bogus", "'bogus' in 'bogus' names no intervention"),
        ("resnet-20-rezero-preact", "not a variant as run directories name them"),
        ("plain-20-rezero", "model.branch_init=rezero needs model.residual=true"),
        ("imagenet-resnet-21", "imagenet-plain or imagenet-resnet, then a depth one of 18, 34, 50, 101, 152"),
        ("imagenet-resnet-18-preact", "'preact' in 'preact' names no intervention"),
        ("resnet-32-preact_bottleneck", "model.depth must be 9n+2"),
    ],
)
def test_a_name_that_is_no_network_is_one_error(name, says):
    with pytest.raises(UserError, match=re.escape(says)):
        of_name(name)
