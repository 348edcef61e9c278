"""Process-wide settings of the machine a run is on (the allocator), apart from bench.py
so that evaluation can use them without importing the benchmark and the CLI."""
from __future__ import annotations

import os


def tune_malloc() -> bool:
    """Keep freed memory in glibc's heap rather than handing big blocks back to the OS.

    By default glibc serves every allocation above 32 MiB with its own mmap and unmaps it
    on free, so each ViT MLP activation at batch 4 (4096 x 3072 floats, 48 MiB) and each
    GELU output is fresh memory whose ~12,000 pages all fault on first touch: a visible
    share of a CPU forward. With mmap off and trimming at 1 GiB, the heap settles at the
    working set and is reused (RSS stays flat at that level; benchmarks/memory_flat.py).
    Returns whether it took effect (False off glibc, or with NANOVLM_LITE_MALLOC_TUNING=0,
    for A/B measurements). Process-wide; call it once, early."""
    if os.environ.get("NANOVLM_LITE_MALLOC_TUNING") == "0":
        return False
    import ctypes
    import ctypes.util
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))
