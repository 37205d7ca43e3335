"""Standard deviations of layer responses (the paper's Figure 7).

The response of a 3x3 layer is its output after BN and before the ReLU or the addition; its std is
taken over every value (images x channels x positions) of the whole test set, with the net in eval
mode. Runs compute this at the end of training (responses.json); for older runs:

    python -m degradation.responses runs/cifar/plain-56/seed=0/checkpoints/last.ckpt
"""

import math
from pathlib import Path

import torch
from torch import nn

from degradation.data.cifar10 import CifarDataModule
from degradation.errors import OneLineParser, UserError, exit_with
from degradation.nets.registry import build_net
from degradation.runs.checkpoints import saved_network
from degradation.runs.provenance import pick_device
from degradation.runs.rundir import RunDir

DEFINITION = "std over the test set of each 3x3 conv's output after BN, before ReLU/addition (eval mode)"


def response_layers(net: nn.Module) -> list[nn.BatchNorm2d]:
    """The BN after every 3x3 conv, in the network's order (projection shortcuts' BNs excluded)."""
    return net.response_layers()


def eager_net(net_args: dict, weights: dict) -> nn.Module:
    """A fresh fp32 network with these weights: never compiled, never graphed, NCHW.

    The network trained may be compiled (forward hooks must never be traced into its graphs), hold
    channels_last weights or run under autocast; the responses are measured the same way for all.
    """
    net = build_net(**net_args)
    net.load_state_dict(weights)  # nn.Module.compile keeps the parameter names
    return net


def eager_copy(module) -> nn.Module:
    """An eager copy of a training module's network (`hparams.net`, `net`)."""
    return eager_net(module.hparams.net, module.net.state_dict())


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


def from_checkpoint(checkpoint: Path, data_root: str | None = None, batch_size: int = 1000) -> Path:
    """Computes responses.json for the run that owns checkpoint (…/<run>/checkpoints/last.ckpt)."""
    if not checkpoint.is_file():
        raise UserError(f"no checkpoint at {checkpoint}")
    run_dir = RunDir.of_checkpoint(checkpoint)
    data = ((run_dir.read_summary() or {}).get("config") or {}).get("data", {})
    saved = saved_network(checkpoint)
    net = eager_net(saved.net_args, saved.weights)
    datamodule = CifarDataModule(
        root=data_root or data.get("root", "data"),
        download=False,
        eval_batch_size=batch_size,
        val_size=data.get("val_size", 0),
        split_seed=data.get("split_seed", 0),
    )
    datamodule.setup()  # the same training mean image as the run used
    stds = response_stds(net.to(pick_device()), datamodule.test_loader())
    run_dir.write_responses(DEFINITION, stds, saved.step)
    return run_dir.responses_path


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m degradation.responses", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a run's checkpoints/last.ckpt")
    parser.add_argument("--data-root", help="CIFAR-10 root (default: the run's data.root)")
    args = parser.parse_args(argv)
    try:
        print(from_checkpoint(args.checkpoint, args.data_root))
    except UserError as error:
        exit_with(error)


if __name__ == "__main__":
    main()
