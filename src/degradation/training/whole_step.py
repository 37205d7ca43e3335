"""The whole training step as one CUDA graph (`speed.cuda_graphs`): captured once, replayed every step.

Forward, loss, backward, the SGD update with momentum and weight decay, and the error tally are one
graph: one launch per step instead of hundreds. What changes between steps lives in memory the
graph reads: each batch is copied into the same input tensors, and the learning rate is a device
tensor that the fused SGD kernel reads, so a milestone changes a value and never the graph.

Static shapes, so nothing is compiled or captured twice:
- training: the first WARMUP_STEPS full batches run eagerly on a side stream (cuDNN picks its kernels,
  torch.compile compiles, SGD makes its momentum buffers), then the step is captured. A batch of
  another size (the epoch's last: 50,000 = 390 x 128 + 80, kept so every epoch sees every image)
  runs the same arithmetic eagerly and uncompiled;
- evaluation (`EvalForward`): the network's forward in eval mode, never compiled (no recompilation
  for eval mode nor for the eval batch), captured once for batches of the evaluation size.
Off CUDA the same step runs on the same buffers without a graph (and the bench's CPU rows say so).
"""

import logging
import time
from contextlib import nullcontext

import torch
from torch import nn

from degradation.training.step import TrainStep

WARMUP_STEPS = 3  # eager steps before the capture; they train like any other step
log = logging.getLogger(__name__)


def uncompiled():
    """Compiled networks run eagerly inside: for shapes and modes met too rarely to compile for."""
    return torch.compiler.set_stance("force_eager")


SIDE_STREAMS: dict[torch.device, "torch.cuda.Stream"] = {}


def side_stream(device: torch.device) -> "torch.cuda.Stream":
    """The one side stream per device that every warm-up and capture of this process runs on. cuBLAS keeps a
    workspace per (handle, stream) for the life of the process: a fresh stream per warm-up (and a capture on
    yet another one, whose workspace would come from the graph's private pool) grew the memory of a local
    sweep run after run. On one stream the workspace is made once, outside any capture."""
    if device not in SIDE_STREAMS:
        SIDE_STREAMS[device] = torch.cuda.Stream(device)
    return SIDE_STREAMS[device]


def side_stream_warm_up(work, device: torch.device):
    """Runs `work` on the side stream, as a capture must be preceded by (cuDNN and cuBLAS set up there)."""
    side = side_stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        result = work()
    torch.cuda.current_stream(device).wait_stream(side)
    return result


def capturing(graph: "torch.cuda.CUDAGraph", device: torch.device):
    """Records into `graph` on the side stream its warm-up ran on."""
    return torch.cuda.graph(graph, stream=side_stream(device), capture_error_mode="thread_local")


class WholeStep(TrainStep):
    """A TrainStep whose full batches run as one captured graph on CUDA.

    The optimizer must be torch's SGD: its fused kernel is the one that reads a tensor learning rate
    without a host sync. `autocast` must not cache casts (a graph would keep stale weight copies).
    """

    def __init__(self, net: nn.Module, optimizer: torch.optim.SGD, speed, tally, batch_size: int, autocast=nullcontext):
        super().__init__(net, optimizer, speed, tally, autocast=autocast)
        self.batch_size = batch_size
        self.device = next(net.parameters()).device  # built when training starts: the network is on its device
        self.use_graph = self.device.type == "cuda"
        if not self.use_graph:
            log.warning(
                "speed.cuda_graphs needs a CUDA device; on %s the whole step runs on its static "
                "buffers without a graph",
                self.device.type,
            )
        for group in optimizer.param_groups:  # however the optimizer was made (the bench's bare loop: unfused)
            group.update(lr=torch.zeros((), device=self.device), fused=True, foreach=False)
        self.images = self.labels = self.loss = None  # the graph's input and output tensors
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warm_up_steps = 0
        self.started: float | None = None
        self.warmup_s: float | None = None  # the eager steps before the capture: compilation, cuDNN's choices
        self.capture_s: float | None = None  # recording the graph (and its first replay)

    @property
    def replays_a_graph(self) -> bool:
        return self.graph is not None

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:  # in place: the captured graph reads these tensors
            group["lr"].fill_(lr * group.get("lr_factor", 1.0))

    def run(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if images.shape[0] != self.batch_size:
            with uncompiled():
                return self.compute(images, labels)
        if self.images is None:
            self.images, self.labels = torch.empty_like(images), torch.empty_like(labels)
            self.started = time.perf_counter()
        self.images.copy_(images)
        self.labels.copy_(labels)
        if self.graph is not None:
            self.graph.replay()
            return self.loss
        if not self.use_graph:
            return self.compute(self.images, self.labels)
        if self.warm_up_steps < WARMUP_STEPS:
            self.warm_up_steps += 1
            return side_stream_warm_up(lambda: self.compute(self.images, self.labels), self.device)
        return self.capture()

    def capture(self) -> torch.Tensor:
        """Records this step's work as the graph, then replays it: the recording itself computes nothing."""
        torch.cuda.synchronize(self.device)  # the warm-up's queued work belongs to warmup_s (once per run)
        capture_started = time.perf_counter()
        self.warmup_s = capture_started - self.started
        self.optimizer.zero_grad(set_to_none=True)  # the gradients become the graph's own memory
        self.graph = torch.cuda.CUDAGraph()
        with capturing(self.graph, self.device):
            self.loss = self.compute(self.images, self.labels)
        self.graph.replay()
        torch.cuda.synchronize(self.device)
        self.capture_s = time.perf_counter() - capture_started
        log.info(
            "whole step captured as one CUDA graph: %d eager warm-up steps %.1f s (compilation included), "
            "capture %.1f s",
            self.warm_up_steps,
            self.warmup_s,
            self.capture_s,
        )
        return self.loss


class EvalForward:
    """The network's forward for evaluation: never compiled; on CUDA with `graph`, one captured graph
    for batches of `batch_size` (other sizes run eagerly). Returns logits the caller owns."""

    def __init__(self, net: nn.Module, layout, batch_size: int, graph: bool, autocast=nullcontext):
        self.net, self.layout, self.batch_size, self.autocast = net, layout, batch_size, autocast
        self.use_graph = graph and next(net.parameters()).device.type == "cuda"
        self.images = self.logits = None
        self.graph: torch.cuda.CUDAGraph | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with uncompiled(), self.autocast():
            return self.net(self.layout(images))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if not self.use_graph or images.shape[0] != self.batch_size:
            return self.forward(images)
        if self.graph is None:
            self.images = images.clone()
            side_stream_warm_up(lambda: self.forward(self.images), images.device)
            self.graph = torch.cuda.CUDAGraph()
            with capturing(self.graph, images.device):
                self.logits = self.forward(self.images)
        self.images.copy_(images)
        self.graph.replay()
        return self.logits.clone()
