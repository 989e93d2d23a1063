"""Where and with how many threads the network runs: device resolution, the CPU's bf16 support,
and thread counts scoped to a block instead of set for the whole process.

torch's intra-op thread count and OpenCV's thread count are process-wide settings. A library call
that needs other values sets them for its own duration (`torch_threads`, `cv2_threads`) and puts
the caller's values back afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from pathlib import Path
from typing import Iterator

import torch

_THREADS_LOCK = threading.RLock()


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` picks CUDA when available; ``"cuda"``/``"cuda:N"`` must exist."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string like 'cpu', 'cuda', 'cuda:1' or 'auto', got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA devices exist")
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'")
    return dev


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """True when the CPU has AVX-512 BF16 or AMX-BF16, where bf16 matmuls beat fp32 (the one bf16
    check of training and inference; read once per process).

    On Linux the kernel's CPU flags decide (``avx512_bf16``, ``amx_bf16`` in /proc/cpuinfo).
    Elsewhere torch's own checks do: a CPU whose ATen dispatch level is below AVX-512
    (`torch.backends.cpu.get_cpu_capability`) has neither, and on AVX-512 CPUs oneDNN's bf16 check
    answers."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = None
    if flags is not None:
        return bool({"avx512_bf16", "amx_bf16"} & flags)
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        capability = None
    if capability is not None and not capability.upper().startswith("AVX512"):
        return False
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


@functools.lru_cache(maxsize=None)
def cpu_int8_saturates() -> bool:
    """True on x86 CPUs without VNNI (most AVX2 laptops and many cloud CPUs): their uint8 x int8
    dot product (VPMADDUBSW) adds pairs of products into int16 and saturates with full-range int8
    weights, so int8 graphs should use 7-bit weights there (onnxruntime's ``reduce_range``). VNNI
    (``avx512_vnni``, ``avx_vnni``, AMX) accumulates in int32, and ARM's dot products don't have the
    problem. Unknown x86 flags count as saturating: 7-bit weights are safe everywhere."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return True
    return not ({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count is ``threads`` inside the block and the caller's again after
    it (``None``: unchanged). Nested and concurrent blocks are serialised by a lock, so the count
    a block sets is the one its work sees."""
    if not threads:
        yield
        return
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        if before != int(threads):
            torch.set_num_threads(int(threads))
        try:
            yield
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)


@contextlib.contextmanager
def cv2_threads(threads: int | None) -> Iterator[None]:
    """OpenCV's thread count is ``threads`` inside the block and the caller's again after it
    (``None``: unchanged); set only when it differs."""
    if threads is None:
        yield
        return
    import cv2

    before = cv2.getNumThreads()
    changed = before != int(threads)
    if changed:
        cv2.setNumThreads(int(threads))
    try:
        yield
    finally:
        if changed:
            cv2.setNumThreads(before)
