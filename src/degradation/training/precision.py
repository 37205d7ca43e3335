"""What "fp32" means for a run: full IEEE fp32, or TensorFloat-32 on a GPU's tensor cores.

On Ampere and Hopper GPUs PyTorch lets cuDNN run fp32 convolutions as TF32 (10-bit mantissa
products) unless told otherwise; the paper's GPUs had no TF32. `speed.tf32=false` (the default)
asks for IEEE fp32 in convolutions and matmuls, `true` allows TF32 in both. The flags in force are
recorded in summary.json (`math`). Set through the legacy flags that Lightning itself reads: mixing
them with torch's newer `fp32_precision` API makes reading either raise.
"""

import torch


def use_tf32(enabled: bool) -> None:
    """Process-wide, as torch's flags are; set at the start of every run, so runs of a sweep never inherit it."""
    torch.backends.cudnn.allow_tf32 = enabled
    torch.set_float32_matmul_precision("high" if enabled else "highest")


def math_in_force(precision: str) -> dict:
    """The arithmetic a run uses, read back from torch: what summary.json records as `math`."""
    return {
        "precision": precision,
        "tf32_conv": torch.backends.cudnn.allow_tf32,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }
