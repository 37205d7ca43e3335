"""One training step of the paper's protocol in plain torch: forward, loss, backward, SGD update, tally.

The Lightning module calls it (manual optimization) and the bench's bare loop calls it too, so both
time and train the same code; whole_step.WholeStep captures its device work (`compute`) as one CUDA
graph. Loss and errors are summed on the device (`Tally`) and read back only when a row of metrics is
written.
"""

from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from degradation.training.speed import Speed


class Tally:
    """Running sums of loss and mistakes on the device; `read()` is the only host sync.

    The sums are one tensor updated in place, so a captured CUDA graph that adds to them stays valid;
    the sample count is kept on the host by whoever runs the step.
    """

    def __init__(self):
        self.sums: torch.Tensor | None = None  # [loss summed over samples, wrong predictions]
        self.count = 0

    def add(self, mean_loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.add_sums(mean_loss, logits, labels)
        self.count += labels.shape[0]

    def add_sums(self, mean_loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """The device half of `add`: no host work that a graph replay would skip."""
        wrong = (logits.argmax(1) != labels).sum()
        update = torch.stack([mean_loss.detach().float() * labels.shape[0], wrong.float()])
        if self.sums is None or self.sums.device != update.device:  # first use, or sums loaded from a checkpoint
            self.sums = torch.zeros_like(update) if self.sums is None else self.sums.to(update.device)
        self.sums.add_(update)

    def read(self) -> tuple[float, float]:
        """(mean loss, error in percent) since the last read; resets the sums."""
        loss_sum, wrong = self.sums.tolist()
        loss, error = loss_sum / self.count, 100.0 * wrong / self.count
        self.sums.zero_()
        self.count = 0
        return loss, error

    def peek_loss(self) -> float | None:
        """Mean loss since the last read, without resetting (one host sync); None if empty."""
        return None if self.count == 0 else self.sums[0].item() / self.count

    def state_dict(self) -> dict:
        return {"sums": None if self.sums is None else self.sums.to("cpu", copy=True), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.sums, self.count = state["sums"], state["count"]


class TrainStep:
    """net and optimizer as built from the config; `backward` and `autocast` are where a framework
    adds its own (Lightning: manual_backward and its precision plugin's autocast)."""

    def __init__(
        self, net: nn.Module, optimizer, speed: Speed, tally: Tally | None = None, backward=None, autocast=nullcontext
    ):
        self.net, self.optimizer, self.speed = net, optimizer, speed
        self.tally = tally if tally is not None else Tally()
        self.backward = backward or (lambda loss: loss.backward())
        self.autocast = autocast

    replays_a_graph = False  # whole_step.WholeStep's, once it has captured one

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, lr: float) -> torch.Tensor:
        self.set_lr(lr)
        loss = self.run(images, labels)
        self.tally.count += labels.shape[0]
        if self.speed.sync_every_step:
            loss.item()  # what loops that print the loss every step pay for
        return loss

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_factor", 1.0)

    def run(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Where a subclass chooses how the step's device work runs (whole_step: as a replayed graph)."""
        return self.compute(images, labels)

    def compute(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Forward, loss, backward, update, tally: device work only, so that it can be captured as a graph."""
        with self.autocast():
            logits = self.net(self.speed.layout(images))
            loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.backward(loss)
        self.optimizer.step()
        self.tally.add_sums(loss, logits, labels)
        return loss
