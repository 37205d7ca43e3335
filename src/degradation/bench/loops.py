"""The two loops the benchmark sets the harness against, timed over steps after a warm-up.

reference: what common CIFAR reproductions do — torchvision's CIFAR10 dataset with PIL transforms
    (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize), a DataLoader with workers
    and pinned memory, SGD, and the loss read to the host (`.item()`) after every step.
bare: the harness's own training step as one captured CUDA graph (whole_step.WholeStep; off CUDA the
    same static-buffer step without a graph) on batches already on the device, with the same precision,
    layout and compilation and no framework at all: the floor of framework, launch and data overhead.
Both use the config's optimizer values.
"""

import os
import statistics
import time
from functools import partial

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import CIFAR10, VisionDataset

from degradation.data.cifar10 import Split
from degradation.nets.registry import build_net
from degradation.training.speed import Speed, autocast
from degradation.training.step import Tally
from degradation.training.whole_step import WholeStep

# The channel statistics common reproductions normalise with.
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
OPTIMIZER_KEYS = ("lr", "momentum", "weight_decay", "nesterov")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepTimer:
    """Time per step over `steps` steps that follow `warmup` (>= 1) untimed ones; call tick() after each step.

    On a GPU: the mean over the timed window, synchronised only at its ends (a sync per step would
    change what is measured). On a CPU every step is synchronous anyway: the median step, so that a
    hiccup of a shared machine does not count.
    """

    def __init__(self, warmup: int, steps: int, device: torch.device):
        self.warmup, self.steps, self.device = warmup, steps, device
        self.done, self.started, self.ended = 0, None, None
        self.ticks: list[float] = []
        self.graphed = False  # set by whoever ran the steps: whether they replayed a captured CUDA graph

    def tick(self) -> bool:
        """Counts a finished step; True once the timed steps are done."""
        self.done += 1
        if self.warmup <= self.done <= self.warmup + self.steps:
            if self.done in (self.warmup, self.warmup + self.steps):
                synchronize(self.device)
            self.ticks.append(time.perf_counter())  # perf_counter is system-wide on Linux: comparable across processes
            self.started, self.ended = self.ticks[0], (self.ticks[-1] if self.done > self.warmup else None)
        return self.finished

    @property
    def finished(self) -> bool:
        return self.ended is not None and len(self.ticks) == self.steps + 1

    @property
    def step_s(self) -> float:
        if self.device.type == "cuda":
            return (self.ended - self.started) / self.steps
        return statistics.median(later - earlier for earlier, later in zip(self.ticks, self.ticks[1:]))


class SyntheticCIFAR10(CIFAR10):
    """torchvision's CIFAR10 — its own __getitem__ (numpy HWC -> PIL -> transforms) — over given images."""

    def __init__(self, split: Split, transform):
        VisionDataset.__init__(self, root="", transform=transform)  # no files to find or checksum
        self.train = True
        self.data = split.images.permute(0, 2, 3, 1).contiguous().numpy()  # HWC uint8, as CIFAR10 stores it
        self.targets = split.labels.tolist()


def reference_loader(split: Split, batch_size: int, device: torch.device, workers: int | None = None) -> DataLoader:
    augment = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(CIFAR_MEAN, CIFAR_STD),
        ]
    )
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    return DataLoader(
        SyntheticCIFAR10(split, augment),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=workers > 0,
    )


def endless(loader):
    while True:
        yield from loader


def optimizer_values(optim: dict) -> dict:
    return {key: optim[key] for key in OPTIMIZER_KEYS}


def reference_timer(
    net_args: dict, optim: dict, split: Split, batch_size: int, device, warmup: int, steps: int
) -> StepTimer:
    net = build_net(**net_args).to(device)
    optimizer = Speed().optimizer(net.parameters(), **optimizer_values(optim))
    timer, running_loss = StepTimer(warmup, steps, device), 0.0
    for images, labels in endless(reference_loader(split, batch_size, device)):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()  # the per-step host sync of loops that print or average the loss
        if timer.tick():
            return timer


def bare_timer(
    net_args: dict, optim: dict, speed: Speed, precision: str, batch_size: int, device, warmup: int, steps: int
) -> StepTimer:
    """No data pipeline, no framework, no launches: the harness's step as one graph, on ready-made device batches.

    Mixed precision is autocast only (16-mixed without a gradient scaler): a lower bound, as a floor should be.
    """
    net = build_net(**net_args).to(device)
    speed.apply_to_net(net)
    speed.apply_to_process()
    optimizer = speed.optimizer(net.parameters(), **optimizer_values(optim))
    step = WholeStep(
        net, optimizer, speed, Tally(), batch_size, autocast=partial(autocast, device, precision, cache_enabled=False)
    )
    batches = [
        (torch.randn(batch_size, 3, 32, 32, device=device), torch.randint(0, 10, (batch_size,), device=device))
        for _ in range(4)
    ]
    timer = StepTimer(warmup, steps, device)
    while True:
        images, labels = batches[timer.done % len(batches)]
        step(images, labels, lr=optim["lr"])
        if timer.tick():
            timer.graphed = step.replays_a_graph
            return timer


def reference_loader_images_per_s(split: Split, batch_size: int, device, warmup: int = 2, batches: int = 20) -> float:
    """The reference DataLoader alone, delivering batches to the device."""
    timer = StepTimer(warmup, batches, device)
    for images, _labels in endless(reference_loader(split, batch_size, device)):
        images.to(device, non_blocking=True)
        if timer.tick():
            return batch_size / timer.step_s
