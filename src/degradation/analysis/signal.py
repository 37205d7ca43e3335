"""Signal propagation at init: how a batch's signal changes from block to block, and how the logits answer each
direction of the input.

- Per block (Brock, De & Smith 2021, "Characterizing signal propagation to close the performance gap in
  unnormalized ResNets": their signal propagation plots): of the block's output, the average over channels of
  each channel's squared mean and of each channel's variance; of a residual block, the variance of its branch
  (the output of its last layer, `block.branch_end`, before any scale, gate or drop). Train-mode BN, one batch:
  as the first training step sees the net, except that stochastic depth is its expectation (each branch scaled by
  its survival probability), not one random draw.
- The singular values of each image's input-output Jacobian, ∂logits/∂image (10 × 3072), all ten, exactly
  (ten backward passes, then an SVD in float64). All equal is a net that passes every direction of its input on
  alike (dynamical isometry, Pennington et al. 2017); a wide spread is one that does not. An image's Jacobian is
  its own only where BN is a fixed map: every BN keeps the statistics of the batch (its mean and biased variance,
  as train mode normalises with) and runs in eval mode, so the logits are those of train mode and each image's
  Jacobian does not involve the others.
"""

import torch
from torch import nn

from degradation.analysis.job import Job
from degradation.analysis.subjects import Subject, cifar_images, init_net, low_memory_forward

DEFINITION = (
    "at init, one batch, train-mode BN: per block output the channel-averaged squared channel mean and channel "
    "variance, per residual branch (its last layer's output) the channel-averaged variance; per image the singular "
    "values of d logits / d image with BN fixed at the batch's statistics"
)
BATCH = 128  # the first training images, unaugmented: the batch of the statistics and of BN's fixed statistics
JACOBIAN_IMAGES = 16  # the first images of that batch whose Jacobians are decomposed


def channel_statistics(x: torch.Tensor) -> tuple[float, float]:
    """(mean over channels of the squared channel mean, mean over channels of the channel variance) of [N, C, H, W]."""
    x = x.detach().double().transpose(0, 1).flatten(1)  # [C, N*H*W]
    return x.mean(1).square().mean().item(), x.var(1, unbiased=False).mean().item()


@torch.no_grad()
def block_statistics(net: nn.Module, images: torch.Tensor) -> dict:
    """Per block, input to output: squared mean and variance of its output, its branch's variance (None for a plain
    block), with BN in train mode."""
    outputs, branches = [], {}
    record = lambda module, inputs, out: outputs.append(channel_statistics(out))  # noqa: E731
    hooks = [block.register_forward_hook(record) for block in net.blocks]
    for index, block in enumerate(net.blocks):
        if block.residual:
            save = lambda m, i, out, index=index: branches.__setitem__(index, channel_statistics(out)[1])  # noqa: E731
            hooks.append(block.branch_end.register_forward_hook(save))
    train_mode_pass(net, images, hooks)
    return {
        "squared_mean": [squared for squared, _ in outputs],
        "variance": [variance for _, variance in outputs],
        "branch_variance": [branches.get(index) for index in range(len(net.blocks))],
    }


@torch.no_grad()
def fix_batch_statistics(net: nn.Module, images: torch.Tensor) -> None:
    """Every BN keeps this batch's mean and biased variance as its running statistics, and the net goes to eval
    mode: BN is then the map train mode applied to this batch, and images no longer affect each other."""
    seen = {}
    remember = lambda module, inputs, out: seen.__setitem__(module, inputs[0])  # noqa: E731
    norms = [module for module in net.modules() if isinstance(module, nn.BatchNorm2d)]
    train_mode_pass(net, images, [norm.register_forward_hook(remember) for norm in norms])
    for norm, inputs in seen.items():
        norm.running_mean.copy_(inputs.mean((0, 2, 3)))
        norm.running_var.copy_(inputs.var((0, 2, 3), unbiased=False))
    net.eval()


def train_mode_pass(net: nn.Module, images: torch.Tensor, hooks: list) -> None:
    """One forward pass with BN in train mode for what the hooks record; the hooks are removed after it. Everything
    else runs as in evaluation: stochastic depth scales each branch by its survival probability instead of dropping
    branches at random, so the statistics are the expected net's and the fixed BN then fits the Jacobian's pass."""
    net.eval()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.train()
    try:
        net(images)
    finally:
        for hook in hooks:
            hook.remove()


def jacobian_singular_values(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """[images, classes]: the singular values of each image's d logits / d image, largest first. The net must treat
    images independently (eval mode): row k of every image's Jacobian is then the gradient of the batch's summed
    logit k."""
    inputs = images.detach().clone().requires_grad_(True)
    logits = low_memory_forward(net, inputs)  # a 1202-layer net keeps about sqrt(blocks) blocks' activations
    classes = logits.shape[1]
    rows = [
        torch.autograd.grad(logits[:, k].sum(), inputs, retain_graph=k < classes - 1)[0].flatten(1)
        for k in range(classes)
    ]
    return torch.linalg.svdvals(torch.stack(rows, dim=1).double())


def measure(subject: Subject, job: Job) -> dict:
    """The subject's net as built (the run's own initial weights where it has a run), on the first BATCH training
    images."""
    batch = cifar_images(subject, job.options.data_root, "train", BATCH, job.device).images
    net = init_net(subject).to(job.device)
    statistics = block_statistics(net, batch)
    fix_batch_statistics(net, batch)
    values = jacobian_singular_values(net, batch[:JACOBIAN_IMAGES])
    return {"blocks": statistics, "jacobian_singular_values": values.tolist()}
