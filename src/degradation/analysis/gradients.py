"""Gradient health (the paper's section 4.1: with BN, "the backward propagated signals exhibit healthy norms").

For every conv and linear layer, input to output: the norm of the loss's gradient with respect to its weights,
‖∂L/∂W‖, and the norm of the weights, ‖W‖ (their ratio is the relative size of an SGD step before the learning
rate). Training records them every `trainer.log_every` iterations into gradients.csv, from the gradients of
the step just taken (the minibatch's mean loss, weight decay not included); `at_init` measures them for a
freshly built net on one batch, in train mode as the first step of training sees it.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from degradation.analysis.job import Job
from degradation.analysis.subjects import Subject, cifar_images, init_net, low_memory_forward

DEFINITION = (
    "per conv/linear layer, input to output: L2 norm of d(mean minibatch cross-entropy)/dW "
    "(weight decay not included) and of W"
)
BATCH = 128  # the first training images (unaugmented): the batch whose loss gives the step-0 gradients


def weight_layers(net: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, weight) of every conv and linear layer in the order the network builds them: input to output."""
    return [(name, module.weight) for name, module in net.named_modules() if isinstance(module, (nn.Conv2d, nn.Linear))]


def scaled_norm(tensor: torch.Tensor) -> torch.Tensor:
    """[largest |entry|, L2 norm of tensor / that]: both finite in float32 while every entry is, where the plain sum
    of squares overflows once the norm passes ~1.8e19; their product, taken on the host in float64, is the norm."""
    tensor = tensor.detach().float()
    largest = torch.linalg.vector_norm(tensor, ord=float("inf"))
    divisor = torch.where(largest > 0, largest, torch.ones_like(largest))  # an all-zero tensor: norm 0, not 0/0
    return torch.stack([largest, torch.linalg.vector_norm(tensor / divisor)])


def from_scaled(largest: float, ratio: float) -> float:
    return math.inf if math.isinf(largest) else largest * ratio  # an infinite entry: inf, not inf * nan


@torch.no_grad()
def norms_on_device(weights: list[nn.Parameter]) -> torch.Tensor:
    """[2, layers, 2] on the weights' device: the gradients' and the weights' scaled norms (no host read)."""
    grads = torch.stack([scaled_norm(w.grad) for w in weights])
    return torch.stack([grads, torch.stack([scaled_norm(w) for w in weights])])


def rows(step: int, names: list[str], norms: torch.Tensor) -> list[dict]:
    """gradients.csv rows for one step: one host read of all the norms."""
    grad_norms, weight_norms = ([from_scaled(*pair) for pair in kind] for kind in norms.tolist())
    return [
        {"step": step, "layer": name, "grad_norm": g, "weight_norm": w}
        for name, g, w in zip(names, grad_norms, weight_norms)
    ]


class GradientRecorder:
    """The norms of a network's current gradients, as rows; the network may be compiled (names stay the same)."""

    def __init__(self, net: nn.Module):
        layers = weight_layers(net)
        self.names = [name.removeprefix("_orig_mod.") for name, _ in layers]
        self.weights = [weight for _, weight in layers]

    def read(self, step: int) -> list[dict]:
        if any(w.grad is None for w in self.weights):
            return []  # no step taken yet
        return rows(step, self.names, norms_on_device(self.weights))


def at_init(net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    """Step-0 rows: the gradients of one batch's mean loss for this net as built, in train mode."""
    net.train()
    net.zero_grad(set_to_none=True)
    F.cross_entropy(low_memory_forward(net, images), labels).backward()
    return GradientRecorder(net).read(0)


def measure(subject: Subject, job: Job) -> dict:
    """The norms at init (step 0) of the subject's net as built, on the first BATCH training images."""
    batch = cifar_images(subject, job.options.data_root, "train", BATCH, job.device)
    return {"init": at_init(init_net(subject).to(job.device), batch.images, batch.labels)}
