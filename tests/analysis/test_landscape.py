import pytest
import torch
import torch.nn.functional as F
from test_lesion import trained_like

from degradation.analysis import landscape
from degradation.analysis.landscape import directions, filter_normalized, loss_at, surface
from degradation.analysis.subjects import Images, error_and_loss
from degradation.nets.cifar import CifarNet


def data() -> Images:
    torch.manual_seed(2)
    return Images(torch.randn(48, 3, 32, 32), torch.randint(0, 10, (48,)))


def test_filter_normalized_directions_have_the_filters_norms_and_no_bias_or_bn_part():
    torch.manual_seed(0)
    net = trained_like(CifarNet(8, residual=True))
    weights = [p.detach() for p in net.parameters()]
    direction = filter_normalized(weights, torch.Generator().manual_seed(0))
    for weight, d in zip(weights, direction):
        assert d.shape == weight.shape
        if weight.dim() <= 1:  # BN weights and biases, the classifier's bias
            assert torch.count_nonzero(d) == 0
        else:  # every filter (conv output channel, classifier row) has the norm of the weights' filter
            assert torch.allclose(d.flatten(1).norm(dim=1), weight.flatten(1).norm(dim=1), rtol=1e-5)
            assert not torch.allclose(d, weight)


def test_the_landscape_at_the_origin_is_the_checkpoints_loss_and_the_weights_are_restored():
    torch.manual_seed(0)
    net = trained_like(CifarNet(8, residual=False))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    record = surface(net, data(), points=3, seed=0)
    assert record["axis"] == [-1.0, 0.0, 1.0] and record["complete"]
    loss = error_and_loss(net, data())[1]
    assert record["loss"][1][1] == pytest.approx(loss, rel=1e-5)  # (alpha, beta) = (0, 0): the middle
    assert record["slice"][2] == pytest.approx(loss, rel=1e-5)  # the 1-D slice's middle
    assert record["loss"][0][0] != pytest.approx(loss, rel=1e-3)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_the_1d_slice_is_the_grids_beta_0_row_at_every_grid_point():
    """Known answer: both are L(θ + αδ) along the same δ; the slice only has points between the grid's."""
    torch.manual_seed(0)
    net = trained_like(CifarNet(8, residual=False))
    record = surface(net, data(), points=5, seed=0)
    assert record["slice_axis"][::2] == pytest.approx(record["axis"], abs=1e-6)
    assert record["slice"][::2] == pytest.approx(record["loss"][2], rel=1e-4)  # row 2: β = 0
    assert record["loss"][2] != pytest.approx([row[2] for row in record["loss"]], rel=1e-3)  # not the α = 0 column


def test_the_loss_is_taken_in_eval_mode_along_the_seeded_directions():
    torch.manual_seed(0)
    net = trained_like(CifarNet(8, residual=True))
    origin = [p.detach().clone() for p in net.parameters()]
    delta, eta = directions(net, seed=3)
    again, _ = directions(net, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(delta, again))
    got = loss_at(net, origin, delta, eta, 0.5, -0.25, data())
    with torch.no_grad():
        for p, o, d, e in zip(net.parameters(), origin, delta, eta):
            p.copy_(o + 0.5 * d - 0.25 * e)
        expected = F.cross_entropy(net.eval()(data().images), data().labels).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_an_interrupted_landscape_continues_where_it_stopped(monkeypatch):
    torch.manual_seed(0)
    net = trained_like(CifarNet(8, residual=True))
    straight = surface(net, data(), points=4, seed=1)
    saved = []

    def save_then_die(record):
        saved.append({key: (list(value) if isinstance(value, list) else value) for key, value in record.items()})
        if len(saved) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        surface(net, data(), points=4, seed=1, save=save_then_die)
    partial = saved[-1]
    assert partial["complete"] is False and partial["loss"][1] is not None and partial["loss"][2] is None
    evaluated = []
    monkeypatch.setattr(landscape, "loss_at", lambda *args: evaluated.append(args[4:6]) or loss_at(*args))
    resumed = surface(net, data(), points=4, seed=1, done=partial)
    assert resumed["loss"] == straight["loss"] and resumed["slice"] == straight["slice"] and resumed["complete"]
    assert len(evaluated) == 2 * 4 + 7  # the two rows left and the 1-D slice: nothing done before is redone
