"""Loss landscape (Li et al. 2018): the loss on a plane through the trained weights θ, L(θ + αδ + βη).

δ and η are Gaussian directions, each filter-normalized as in the authors' net_plotter.py: every filter (the
slice of a conv or linear weight along its first dimension) is rescaled to the norm of the same filter of θ;
the directions of biases and BN parameters are zero; BN's running statistics are those of θ (eval mode). The
loss is the mean cross-entropy over fixed training images without augmentation.

Written here rather than taken from a library: `loss-landscapes` does not zero the bias and BN directions as
Li et al. do, and the whole method is the few lines below.
"""

import torch
import torch.nn.functional as F
from torch import nn

from degradation.analysis.job import Job
from degradation.analysis.subjects import Images, Subject, cifar_images, trained_net

DEFINITION = (
    "mean cross-entropy on fixed training images (no augmentation, BN eval) at theta + alpha*delta + "
    "beta*eta; delta, eta Gaussian, filter-normalized, zero for biases and BN parameters"
)
IMAGES = 2000  # laptop-sized defaults (Li et al.: 51 x 51 points on all 50,000 training images)
POINTS = 21


def filter_normalized(weights: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """A random direction with θ's shapes: Gaussian filters scaled to θ's filter norms; 0 for 1-D parameters."""
    direction = []
    for weight in weights:
        if weight.dim() <= 1:
            direction.append(torch.zeros_like(weight))
            continue
        d = torch.randn(weight.shape, generator=generator, dtype=weight.dtype).to(weight.device)
        scale = weight.flatten(1).norm(dim=1) / (d.flatten(1).norm(dim=1) + 1e-10)
        direction.append(d * scale.view(-1, *[1] * (weight.dim() - 1)))
    return direction


def directions(net: nn.Module, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """δ, η: drawn from a generator seeded with `seed`, so every net and rerun gets the same draws for its shapes."""
    generator = torch.Generator().manual_seed(seed)
    weights = [p.detach() for p in net.parameters()]
    return filter_normalized(weights, generator), filter_normalized(weights, generator)


@torch.no_grad()
def loss_at(
    net: nn.Module,
    origin: list[torch.Tensor],
    delta,
    eta,
    alpha: float,
    beta: float,
    images: Images,
    batch_size: int = 500,
) -> float:
    """Mean cross-entropy of the net with weights origin + alpha*delta + beta*eta, in eval mode."""
    for p, o, d, e in zip(net.parameters(), origin, delta, eta):
        p.copy_(o + alpha * d + beta * e)
    net.eval()
    total = sum(F.cross_entropy(net(x).float(), y, reduction="sum").item() for x, y in images.batches(batch_size))
    return total / len(images)


def axis(points: int, span: float = 1.0) -> list[float]:
    return torch.linspace(-span, span, points).tolist()


def surface(
    net: nn.Module,
    images: Images,
    points: int,
    seed: int = 0,
    done: dict | None = None,
    save=lambda record: None,
    progress=lambda row, rows: None,
) -> dict:
    """The loss on a points x points grid over [-1, 1]^2 and a 1-D slice along δ (2 * points - 1 values).

    `done` (a record written by an earlier, interrupted call with the same settings) is continued: rows already
    computed are kept; `save` is called after every row, so an interruption loses at most one row. The record
    says "complete": true once every value is in."""
    origin = [p.detach().clone() for p in net.parameters()]
    delta, eta = directions(net, seed)
    grid_axis, slice_axis = axis(points), axis(2 * points - 1)
    record = done or {"axis": grid_axis, "loss": [None] * points, "slice_axis": slice_axis, "slice": None}
    record["complete"] = False
    try:
        for row, beta in enumerate(grid_axis):
            if record["loss"][row] is None:
                record["loss"][row] = [loss_at(net, origin, delta, eta, a, beta, images) for a in grid_axis]
                save(record)
            progress(row + 1, points + 1)
        if record["slice"] is None:
            record["slice"] = [loss_at(net, origin, delta, eta, a, 0.0, images) for a in slice_axis]
        record["complete"] = True
        save(record)
        progress(points + 1, points + 1)
    finally:
        with torch.no_grad():
            for p, o in zip(net.parameters(), origin):
                p.copy_(o)
    return record


def measure(subject: Subject, job: Job) -> dict:
    """The surface of the run's trained weights; a grid an earlier call left unfinished with the same settings and
    checkpoint is continued, and the record is saved after every grid row."""
    net, step = trained_net(subject)
    settings = job.settings
    images = cifar_images(subject, job.options.data_root, "train", settings["images"], job.device)
    earlier = job.earlier or {}
    same = earlier.get("settings") == settings and earlier.get("step") == step
    done = {key: earlier[key] for key in ("axis", "loss", "slice_axis", "slice")} if same else None

    def save(record: dict) -> None:
        job.save({"step": step, **record})

    record = surface(net.to(job.device), images, settings["points"], settings["seed"], done, save, job.progress.within)
    return {"step": step, **record}
