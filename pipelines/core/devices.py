"""Where work runs: the GPU when torch (or implicit) sees one, the CPU cores this process may
use. Decided here, once, for embedding, scoring and training; nothing here imports more than
the standard library until asked."""

from __future__ import annotations

import logging
import os

log = logging.getLogger("recs.devices")


def pick_device(requested: str) -> str:
    """``auto`` takes CUDA when torch sees a GPU; ``cuda`` without one is an error."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was requested but torch sees no CUDA device")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def pick_precision(requested: str, device: str) -> str:
    """``auto``: bf16 on CUDA where the GPU has it, else fp16; fp32 on the CPU. bf16 on a CPU
    with bf16 instructions (AVX512-BF16, AMX) is about twice as fast at a cosine of 0.9999 to
    fp32's vectors, but it moves the models' features by as much, and the gate's exploration
    rule can flip on that (README, Embeddings): it is chosen, not the default. Elsewhere CPU
    bf16 is emulated and slower than fp32, which is logged."""
    import torch

    if requested == "auto":
        if device != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if requested == "fp16" and device != "cuda":
        raise RuntimeError("embed.precision=fp16 needs a CUDA device; use fp32 or bf16 on CPU")
    if requested == "bf16" and device == "cpu" and not cpu_has_bf16():
        log.warning("embed.precision=bf16 on a CPU without bf16 instructions: emulated, "
                    "slower than fp32")
    return requested


def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bf16 natively (Linux's flags; elsewhere: no)."""
    try:
        with open(cpuinfo) as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_threads() -> int:
    """The cores this process may run on (a container's or taskset's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def implicit_has_cuda() -> bool:
    """Whether this build of implicit has its CUDA extension and sees a GPU."""
    try:
        import implicit.gpu
    except ImportError:
        return False
    return bool(implicit.gpu.HAS_CUDA)
