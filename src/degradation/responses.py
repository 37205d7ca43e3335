"""Standard deviations of layer responses (the paper's Figure 7).

The response of a 3x3 layer is its output after BN and before the ReLU or the addition; its std is
taken over every value (images x channels x positions) of the whole test set, with the net in eval
mode. Runs compute this at the end of training (responses.json); for older runs:

    python -m degradation.responses runs/cifar/plain-56/seed=0/checkpoints/last.ckpt
"""

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml
from torch import nn

from degradation.data import CifarDataModule
from degradation.errors import UserError
from degradation.checkpoints import checkpoint_step

RESPONSES_FILE = "responses.json"
DEFINITION = "std over the test set of each 3x3 conv's output after BN, before ReLU/addition (eval mode)"


def response_layers(net: nn.Module) -> list[nn.BatchNorm2d]:
    """The BN after every 3x3 conv, in the network's order (projection shortcuts' BNs excluded)."""
    return net.response_layers()


@torch.no_grad()
def response_stds(net: nn.Module, batches) -> list[float]:
    """One std per 3x3 layer, accumulated in float64 over all batches."""
    layers = response_layers(net)
    sums = torch.zeros(len(layers), 3, dtype=torch.float64)  # count, sum, sum of squares

    def hook(index):
        def record(module, inputs, output):
            values = output.detach().double()
            sums[index] += torch.stack([torch.tensor(values.numel(), dtype=torch.float64), values.sum().cpu(),
                                        values.square().sum().cpu()])
        return record

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    was_training = net.training
    net.eval()
    try:
        for images, _ in batches:
            net(images)
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    count, total, squares = sums.unbind(1)
    variance = (squares - total**2 / count) / (count - 1)
    return variance.clamp_min(0).sqrt().tolist()


def write_responses(run_dir: Path, stds: list[float], step: int) -> None:
    record = {"definition": DEFINITION, "step": step, "layers": len(stds), "std": stds}
    (Path(run_dir) / RESPONSES_FILE).write_text(json.dumps(record, indent=1) + "\n")


def read_responses(run_dir: Path) -> list[float] | None:
    path = Path(run_dir) / RESPONSES_FILE
    return json.loads(path.read_text())["std"] if path.is_file() else None


def from_checkpoint(checkpoint: Path, data_root: str | None = None, batch_size: int = 1000) -> Path:
    """Computes responses.json for the run that owns checkpoint (…/<run>/checkpoints/last.ckpt)."""
    from degradation.module import ClassifierModule

    if not checkpoint.is_file():
        raise UserError(f"no checkpoint at {checkpoint}")
    run_dir = checkpoint.parent.parent
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    data = config.get("data", {})
    module = ClassifierModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    datamodule = CifarDataModule(
        root=data_root or data.get("root", "data"),
        download=False,
        eval_batch_size=batch_size,
        val_size=data.get("val_size", 0),
        split_seed=data.get("split_seed", 0),
    )
    datamodule.setup()  # the same training mean image as the run used
    stds = response_stds(module.net, datamodule.test_loader())
    write_responses(run_dir, stds, checkpoint_step(checkpoint))
    return run_dir / RESPONSES_FILE


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m degradation.responses", description=__doc__.splitlines()[0])
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
