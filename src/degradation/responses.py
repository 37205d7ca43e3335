"""Standard deviations of layer responses (the paper's Figure 7).

The response of a 3x3 layer is its output after BN and before the ReLU or the addition; its std is
taken over every value (images x channels x positions) of the whole test set, with the net in eval
mode. Runs compute this at the end of training (responses.json); for older runs:

    python -m degradation.responses runs/cifar/plain-56/seed=0/checkpoints/last.ckpt
"""

import math
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

from degradation.data.cifar10 import CifarDataModule
from degradation.errors import OneLineParser, UserError
from degradation.runs.checkpoints import checkpoint_step
from degradation.nets.registry import build_net
from degradation.runs.rundir import RunDir

DEFINITION = "std over the test set of each 3x3 conv's output after BN, before ReLU/addition (eval mode)"


def response_layers(net: nn.Module) -> list[nn.BatchNorm2d]:
    """The BN after every 3x3 conv, in the network's order (projection shortcuts' BNs excluded)."""
    return net.response_layers()


def eager_copy(module) -> nn.Module:
    """A fresh fp32 copy of a ClassifierModule's trained network: never compiled, never graphed, NCHW.

    The network trained may be compiled (forward hooks must never be traced into its graphs), hold
    channels_last weights or run under autocast; the responses are measured the same way for all.
    """
    net = build_net(**module.hparams.net)
    net.load_state_dict(module.net.state_dict())  # nn.Module.compile keeps the parameter names
    return net


@torch.no_grad()
def response_stds(net: nn.Module, batches) -> list[float]:
    """One std per 3x3 layer over all batches, each batch moved to the network's device.

    Each batch's mean and centred sum of squares are taken there in float32, then combined on the host
    in double precision (the pairwise update of Chan et al.): no float64 tensor on the device, which
    Apple's MPS does not have.
    """
    device = next(net.parameters()).device
    layers = response_layers(net)
    counts: list[list[int]] = [[] for _ in layers]
    moments: list[list[torch.Tensor]] = [[] for _ in layers]  # [mean, centred sum of squares] of each batch

    def hook(index):
        def record(module, inputs, output):
            values = output.detach().float()
            mean = values.mean()
            counts[index].append(values.numel())
            moments[index].append(torch.stack([mean, (values - mean).square().sum()]))
        return record

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    was_training = net.training
    net.eval()
    try:
        with torch.autocast(device.type, enabled=False):  # fp32 responses, also inside a mixed-precision run
            for images, _ in batches:
                net(images.to(device))
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    return [math.sqrt(pooled_variance(n, torch.stack(m).tolist())) if m else math.nan for n, m in zip(counts, moments)]


def pooled_variance(counts: list[int], moments: list[list[float]]) -> float:
    """The sample variance of all values, from each batch's count and [mean, centred sum of squares]."""
    count, mean, squares = 0, 0.0, 0.0
    for batch_count, (batch_mean, batch_squares) in zip(counts, moments):
        total = count + batch_count
        delta = batch_mean - mean
        mean += delta * batch_count / total
        squares += batch_squares + delta * delta * count * batch_count / total
        count = total
    return squares / (count - 1) if count > 1 else math.nan


class RecordResponses(pl.Callback):
    """Writes responses.json when training ends, while the Trainer still holds the run's device.

    Why a callback and not code after fit(): Lightning's teardown moves the module back to the CPU
    when fit() returns, while the test batches live on the run's device (the crash of every GPU run).
    Measured on an eager copy of the trained network placed on the run's device.
    """

    def __init__(self, run_dir: RunDir):
        self.run_dir = run_dir

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        net = eager_copy(pl_module).to(trainer.strategy.root_device)
        stds = response_stds(net, trainer.datamodule.test_loader())
        self.run_dir.write_responses(DEFINITION, stds, trainer.global_step)


def from_checkpoint(checkpoint: Path, data_root: str | None = None, batch_size: int = 1000) -> Path:
    """Computes responses.json for the run that owns checkpoint (…/<run>/checkpoints/last.ckpt)."""
    from degradation.runs.provenance import pick_device
    from degradation.training.module import ClassifierModule

    if not checkpoint.is_file():
        raise UserError(f"no checkpoint at {checkpoint}")
    run_dir = RunDir.of_checkpoint(checkpoint)
    data = ((run_dir.read_summary() or {}).get("config") or {}).get("data", {})
    module = ClassifierModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    datamodule = CifarDataModule(
        root=data_root or data.get("root", "data"),
        download=False,
        eval_batch_size=batch_size,
        val_size=data.get("val_size", 0),
        split_seed=data.get("split_seed", 0),
    )
    datamodule.setup()  # the same training mean image as the run used
    stds = response_stds(eager_copy(module).to(pick_device()), datamodule.test_loader())
    run_dir.write_responses(DEFINITION, stds, checkpoint_step(checkpoint))
    return run_dir.responses_path


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m degradation.responses", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a run's checkpoints/last.ckpt")
    parser.add_argument("--data-root", help="CIFAR-10 root (default: the run's data.root)")
    args = parser.parse_args(argv)
    try:
        print(from_checkpoint(args.checkpoint, args.data_root))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
