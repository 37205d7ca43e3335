"""What arithmetic a run uses: the precision it runs in, and what "fp32" means (IEEE, or TF32 on a GPU).

trainer.precision=auto (what speed=fast sets) is bf16-mixed where the device has bf16 units — a GPU
with bf16 tensor cores, a CPU with AMX or AVX-512 BF16 — and 32-true elsewhere, where bf16 would be
emulated and slower than fp32.

On Ampere and Hopper GPUs PyTorch lets cuDNN run fp32 convolutions as TF32 (10-bit mantissa
products) unless told otherwise; the paper's GPUs had no TF32. `speed.tf32=false` (the default)
asks for IEEE fp32 in convolutions and matmuls, `true` allows TF32 in both. The flags in force are
recorded in summary.json (`math`). Set through the legacy flags that Lightning itself reads: mixing
them with torch's newer `fp32_precision` API makes reading either raise.
"""

import functools
import logging

import torch

log = logging.getLogger(__name__)


def use_tf32(enabled: bool) -> None:
    """Process-wide, as torch's flags are; set at the start of every run, so runs of a sweep never inherit it."""
    torch.backends.cudnn.allow_tf32 = enabled
    torch.set_float32_matmul_precision("high" if enabled else "highest")


def math_in_force(precision: str, asked: str) -> dict:
    """The arithmetic a run uses, read back from torch: what summary.json records as `math`."""
    return {
        "precision": precision,
        "precision_asked": asked,
        "cpu_bf16_units": cpu_bf16_units(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "tf32_conv": torch.backends.cudnn.allow_tf32,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }


AUTO = "auto"  # trainer.precision=auto (speed=fast's): bf16-mixed where the device has bf16 units, else 32-true
CPU_BF16_FLAGS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"))  # /proc/cpuinfo flag -> what we call it


@functools.cache  # the CPU does not change while a process runs; the bench asks once per measurement
def cpu_bf16_units() -> str:
    """The CPU's bf16 matrix units, best first: 'AMX', 'AVX-512 BF16' or 'none' (bf16 is then emulated in fp32
    arithmetic: measured 12x slower than fp32 on a 2-core AVX2 EPYC). Linux reads the CPU's flags; elsewhere
    oneDNN says whether it has a bf16 path."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "oneDNN bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "none"
    return bf16_units_in(flags)


def bf16_units_in(cpu_flags) -> str:
    return next((name for flag, name in CPU_BF16_FLAGS if flag in set(cpu_flags)), "none")


def has_fast_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and cpu_bf16_units() != "none"


def run_precision(asked: str, device: torch.device) -> str:
    """The precision a run uses: `auto` resolved for this device, any other value as asked. Warns once per run
    where the choice is slow: auto staying fp32, or bf16 asked for on a CPU that can only emulate it."""
    if asked == AUTO:
        chosen = "bf16-mixed" if has_fast_bf16(device) else "32-true"
        if chosen == "32-true":
            log.warning(
                "trainer.precision=auto: %s has no bf16 units (%s), so this run stays fp32 (32-true)",
                device.type,
                "AMX or AVX-512 BF16" if device.type == "cpu" else "bf16 tensor cores",
            )
        return chosen
    if asked.startswith("bf16") and device.type == "cpu" and cpu_bf16_units() == "none":
        log.warning(
            "trainer.precision=%s: this CPU has no bf16 units (AMX or AVX-512 BF16) and emulates bf16, "
            "much slower than fp32; trainer.precision=auto picks bf16 only where it is fast",
            asked,
        )
    return asked
