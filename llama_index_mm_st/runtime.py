"""Device and precision choice, shared by the embedding and the reranker.

``precision="auto"`` is speed by default: bf16 where the hardware runs it natively (CUDA GPUs with
bf16; CPUs with AVX512-BF16 or AMX), fp16 on other CUDA GPUs, fp32 otherwise. On the 2-core
AVX512-BF16 dev machines a ViT-B/32 forward runs about 4x faster in bf16 with embedding cosine
0.9999 to fp32. ``"fp32"`` is exactness on request.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from .types import Precision

PRECISIONS: tuple[Precision, ...] = ("auto", "fp32", "bf16", "fp16", "int8")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | None) -> str:
    """``None`` or ``"auto"`` picks cuda, then mps, then cpu. An explicit device is passed through."""
    if device not in (None, "auto"):
        return str(device)
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


@functools.lru_cache(maxsize=1)
def cpu_has_vnni() -> bool:
    """True when the CPU has int8 dot-product instructions (AVX512-VNNI or AVX-VNNI)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_vnni" in flags or " avx_vnni" in flags


def resolve_precision(precision: str, device: str) -> Precision:
    """Turn ``"auto"`` into a concrete precision for ``device``; reject unknown names."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision  # type: ignore[return-value]  (int8 stays int8: only ONNX Runtime runs it)
    kind = torch.device(device).type
    if kind == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if kind == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


def torch_dtype(precision: Precision) -> torch.dtype:
    """The torch dtype of a concrete precision."""
    if precision == "auto":
        raise ValueError("resolve 'auto' with resolve_precision() first")
    if precision == "int8":
        raise ValueError("precision 'int8' is ONNX Runtime's dynamic quantization, not a torch dtype: "
                         "it needs backend='onnx' or 'auto'")
    return _DTYPES[precision]


TORCHVISION_MINOR_OFFSET = 15
"""torch 2.M.P is built with torchvision 0.(M+15).P (2.5.1 and 0.20.1, 2.14.1 and 0.29.1)."""
TORCH_INDEX = "https://download.pytorch.org/whl"


def torchvision_install_line(torch_version: str | None = None) -> str:
    """The pip line that installs the torchvision built for this torch (the same version pairing and the same
    package index, read from its local label: ``2.14.1+cpu`` -> ``torchvision==0.29.1`` from the CPU index),
    so installing it never replaces torch with another build."""
    version = torch_version or torch.__version__
    base, _, local = version.partition("+")
    parts = base.split(".")
    try:
        pinned = f"==0.{int(parts[1]) + TORCHVISION_MINOR_OFFSET}.{parts[2]}"
    except (IndexError, ValueError):
        pinned = ""
    index = f" --index-url {TORCH_INDEX}/{local}" if local else ""
    return f"pip install torchvision{pinned}{index}"

