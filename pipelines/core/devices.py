"""Where work runs: the GPU when torch (or implicit) sees one, the CPU cores this process may
use. Decided here, once, for embedding, scoring and training; nothing here imports more than
the standard library until asked."""

from __future__ import annotations

import os


def pick_device(requested: str) -> str:
    """``auto`` takes CUDA when torch sees a GPU; ``cuda`` without one is an error."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was requested but torch sees no CUDA device")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def pick_precision(requested: str, device: str) -> str:
    """fp32 on CPU by default (CPU half precision is slower and less exact); on CUDA bf16 where
    the GPU has it, else fp16."""
    import torch

    if requested == "auto":
        if device != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if requested == "fp16" and device != "cuda":
        raise RuntimeError("embed.precision=fp16 needs a CUDA device; use fp32 or bf16 on CPU")
    return requested


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
