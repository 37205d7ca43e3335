"""The speed switches: how a run computes, never what. All off is the paper-faithful fp32 path.

One home for each switch: its name and default (the `Speed` fields, which are also the schema of
conf/speed/), what it does to the network, the batches and the process, and which ones need CUDA.
The Lightning module, the bench's loops and the bench's switch table all read them from here.
"""

from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from degradation.training.precision import use_tf32

AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}  # Lightning's mixed precisions


@dataclass
class Speed:
    channels_last: bool = False  # NHWC memory layout for images and conv weights (tensor-core friendly on GPUs)
    compile: bool = False  # torch.compile the network (forward and backward; the optimizer step stays eager)
    # the whole step (forward, backward, SGD) and the eval forward as CUDA graphs, captured once (whole_step.py);
    # off CUDA the same static-shape step runs without graphs, with a warning
    cuda_graphs: bool = False
    fused_sgd: bool = (
        False  # one fused kernel for the SGD update of all parameters (cuda_graphs' whole step always uses it)
    )
    cudnn_benchmark: bool = False  # let cuDNN time its conv algorithms on the first batches (no effect on CPU)
    tf32: bool = (
        False  # false: IEEE fp32 convolutions and matmuls, as in the paper; true: TensorFloat-32 on Ampere/Hopper GPUs
    )
    sync_every_step: bool = (
        False  # true: read the loss to the host after every step, as common loops do (slower; kept to measure it)
    )

    @classmethod
    def of(cls, switches: dict | None) -> "Speed":
        """From a config's (or an older checkpoint's) switches; a switch it lacks is off."""
        return cls(**(switches or {}))

    def as_dict(self) -> dict:
        return asdict(self)

    def layout(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def apply_to_net(self, net: nn.Module) -> None:
        """Layout and compilation; nn.Module.compile keeps the parameter names of the network.
        With cuda_graphs the compiled kernels are captured inside the whole step's graph."""
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        if self.compile:
            net.compile()

    def apply_to_process(self) -> None:
        """Process-wide flags, set at the start of every run so that runs of a sweep never inherit them."""
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        use_tf32(self.tf32)

    def optimizer(self, parameters, lr: float, momentum: float, weight_decay: float, nesterov: bool) -> torch.optim.SGD:
        """The paper's SGD; the one place an optimizer is made (training, the bench's loops)."""
        return torch.optim.SGD(
            parameters,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            nesterov=nesterov,
            fused=self.fused_sgd or None,
        )


SWITCHES = tuple(spec.name for spec in fields(Speed))
CUDA_ONLY = {
    "cuda_graphs": "CUDA graphs need a CUDA device",
    "cudnn_benchmark": "cuDNN is CUDA only",
    "tf32": "TF32 runs on CUDA tensor cores only",
}


def autocast(device: torch.device, precision: str, cache_enabled: bool = True):
    """What Lightning's mixed precision does around the forward pass, for loops without Lightning.
    A CUDA graph needs cache_enabled=False: a cached cast would be a stale copy of the weights."""
    dtype = AUTOCAST_DTYPES.get(precision)
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache_enabled) if dtype else nullcontext()
