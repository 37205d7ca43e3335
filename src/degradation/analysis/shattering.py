"""Shattered gradients (Balduzzi et al. 2017): how alike the input gradients of nearby inputs are.

For a pair of images a, b: POINTS inputs on the line a + t(b - a), t in [0, 1]; the gradient g_i of the
logit of a's class with respect to each input. With G the [points, pixels] matrix of gradients and C = G
minus its mean, the autocorrelation at lag k is

    r(k) = mean_i <C_i, C_i+k>  /  mean_i <C_i, C_i>

1 for gradients that do not change along the line (a linear network), about 0 beyond lag 0 for white noise;
r(1) is the correlation of neighbouring gradients. For a 1-D input (the toy) this is the usual sample
autocorrelation of the gradient as a function of the input.

The lag is counted in points, so r(k) depends on how many the line has: lag k is k/(POINTS - 1) of the line.
POINTS is fixed (256, Balduzzi et al.'s) and recorded with every result; measured at another number of points,
compare r at the same fraction of the line (where, for brown noise, the number of points does not matter).

BatchNorm: in "train" mode (the default) the line's points are one batch and BN normalises with that batch's
statistics, as the first step of training would; g_i is then the gradient of the sum of the logits over the
batch with respect to input i. In "eval" mode BN uses its running statistics and each g_i is the point's own
gradient (at init the running statistics are 0 and 1: BN is then the identity, and a plain net's activations
are not normalised at all). The answer depends on it; both are recorded under their mode.
"""

import copy

import torch
from torch import nn

from degradation.analysis.job import Job
from degradation.analysis.subjects import Subject, cifar_images, init_net, low_memory_forward, trained_net

POINTS = 256
MAX_LAG = 64
BN_MODES = ("train", "eval")
DEFINITION = (
    "r(k) = mean_i <C_i, C_i+k> / mean_i <C_i, C_i>, C = input gradients of the first image's class "
    f"logit at {POINTS} points on the line between two test images, minus their mean"
)


def line_between(a: torch.Tensor, b: torch.Tensor, points: int = POINTS) -> torch.Tensor:
    t = torch.linspace(0, 1, points, device=a.device).view(-1, *[1] * a.dim())
    return a + t * (b - a)


def input_gradients(net: nn.Module, inputs: torch.Tensor, output: int, bn_mode: str) -> torch.Tensor:
    """[points, pixels] in float64 on the CPU (MPS has no float64): the gradient of output `output` at each input
    (on a copy: the net and its BN statistics are left as they were)."""
    net = copy.deepcopy(net).train(bn_mode == "train")
    inputs = inputs.detach().clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(low_memory_forward(net, inputs)[:, output].sum(), inputs)
    return gradient.flatten(1).cpu().double()


def autocorrelation(gradients: torch.Tensor, max_lag: int = MAX_LAG) -> list[float]:
    """r(0..max_lag) of a [points, features] sequence of gradients (r(0) = 1)."""
    centred = gradients - gradients.mean()
    energy = centred.square().sum(1).mean()
    if energy == 0:
        return [float("nan")] * (max_lag + 1)
    return [((centred[: len(centred) - k] * centred[k:]).sum(1).mean() / energy).item() for k in range(max_lag + 1)]


def image_pairs(images: torch.Tensor, labels: torch.Tensor, pairs: int) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """(a, b, a's class) for the test images 0-1, 2-3, ...: fixed, the same for every net."""
    return [(images[2 * i], images[2 * i + 1], int(labels[2 * i])) for i in range(pairs)]


def shattering(net: nn.Module, pairs: list, bn_mode: str = "train", max_lag: int = MAX_LAG) -> dict:
    """Mean r(k) over the pairs and each pair's r(1)."""
    curves = [
        autocorrelation(input_gradients(net, line_between(a, b), label, bn_mode), max_lag) for a, b, label in pairs
    ]
    mean = torch.tensor(curves).mean(0).tolist()
    return {
        "autocorrelation": mean,
        "neighbour_correlation": mean[1],
        "neighbour_correlation_per_pair": [curve[1] for curve in curves],
    }


def both_bn_modes(net: nn.Module, pairs: list, max_lag: int = MAX_LAG) -> dict:
    return {mode: shattering(net, pairs, mode, max_lag) for mode in BN_MODES}


def measure(subject: Subject, job: Job) -> dict:
    """r(k) in both BN modes at init and, for a run, of its trained weights, over the first test images' pairs."""
    count = job.settings["pairs"]
    test = cifar_images(subject, job.options.data_root, "test", 2 * count, job.device)
    pairs = image_pairs(test.images, test.labels, count)
    result = {"init": both_bn_modes(init_net(subject).to(job.device), pairs, job.settings["max_lag"])}
    if subject.run_dir is not None:
        net, step = trained_net(subject)
        result.update(trained=both_bn_modes(net.to(job.device), pairs, job.settings["max_lag"]), step=step)
    return result


# --- the 1-D toy of Balduzzi et al. (their Figure 1) and the noises it is compared with ----------------


class ToyNet(nn.Module):
    """1 input, `width` ReLUs per layer, BN before each ReLU, He init; `blocks` residual blocks
    x + Linear(ReLU(BN(x))) or `layers` plain layers ReLU(BN(Linear(x))); a linear read-out to 1 output.

    Biases keep nn.Linear's draw (uniform in +-1/sqrt(fan in)): the first layer's kinks, at x = -bias/weight, are
    spread over the line. With zero biases every kink of a 1-layer net sits at x = 0 and its gradient is a
    single step, whose autocorrelation is that of no noise at all."""

    def __init__(self, layers: int = 0, blocks: int = 0, width: int = 200):
        super().__init__()
        self.residual = blocks > 0
        self.stem = nn.Linear(1, width)
        self.body = nn.ModuleList(
            nn.Sequential(nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width))
            if self.residual
            else nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU())
            for _ in range(blocks or layers)
        )
        self.head = nn.Linear(width, 1)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if not self.residual:
            x = torch.relu(x)
        for layer in self.body:
            x = x + layer(x) if self.residual else layer(x)
        return self.head(x)


TOY_NETS = {"feedforward-1": dict(layers=0), "feedforward-24": dict(layers=23), "resnet-50": dict(blocks=50)}
TOY_LINE = (-2.0, 2.0)
NOISE_DRAWS = 1000
TOY_DEFINITION = (
    f"Balduzzi et al.'s 1-D toy at init: 1 input, 200 ReLUs per layer with BN (train mode over the {POINTS} "
    f"points in [{TOY_LINE[0]:g}, {TOY_LINE[1]:g}]), He init, nn.Linear's biases; d(output)/d(input) at each point "
    f"and its autocorrelation r(k), lag k in steps of 1/{POINTS - 1} of the line; beside it the mean r(k) of "
    f"{NOISE_DRAWS} draws of brown and of white noise at the same points"
)


def toy_gradient(name: str, seed: int, points: int = POINTS) -> torch.Tensor:
    """[points, 1]: the gradient of the toy net `name` (seeded with `seed`) along TOY_LINE, BN in train mode."""
    torch.manual_seed(seed)
    inputs = torch.linspace(*TOY_LINE, points).view(-1, 1)
    return input_gradients(ToyNet(**TOY_NETS[name]), inputs, 0, "train")


def noise_autocorrelation(kind: str, points: int = POINTS, max_lag: int = MAX_LAG, draws: int = NOISE_DRAWS):
    """Mean r(k) of `draws` sequences of white noise (independent gradients) or brown noise (their running sum, a
    random walk): Balduzzi et al.'s known answers for a deep plain net's gradient and a 1-layer net's."""
    generator = torch.Generator().manual_seed(0)
    noises = torch.randn(draws, points, 1, generator=generator, dtype=torch.float64)
    if kind == "brown":
        noises = noises.cumsum(1)
    return torch.tensor([autocorrelation(noise, max_lag) for noise in noises]).mean(0).tolist()


def toy(seed: int = 0, max_lag: int = MAX_LAG) -> dict:
    """r(k) and the gradient of each toy net at init, and the noises' r(k), at POINTS points."""
    nets = {}
    for name in TOY_NETS:
        gradient = toy_gradient(name, seed)
        nets[name] = {"autocorrelation": autocorrelation(gradient, max_lag), "gradient": gradient[:, 0].tolist()}
    noises = {kind: noise_autocorrelation(kind, POINTS, max_lag) for kind in ("brown", "white")}
    return {"definition": TOY_DEFINITION, "points": POINTS, "line": list(TOY_LINE), "nets": nets, "noises": noises}
