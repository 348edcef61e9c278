"""The machine a run is on: the allocator's settings, its matmul ceiling, memory and how
busy the other cores are. Apart from bench.py so that evaluation and the benchmark
scripts use them without importing the benchmark and the CLI."""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch


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


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device="cpu", dtype=torch.float32, n: int = 2048, repeats: int = 5,
                  warmup: int = 2) -> float:
    """Best-of-`repeats` TFLOP/s of one square n x n @ n x n matmul (2 n^3 FLOPs)."""
    device = torch.device(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, dtype)
    b = torch.randn(n, n, generator=gen).to(device, dtype)
    inner = 1 if device.type == "cpu" else 20
    for _ in range(warmup):
        a @ b
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t0) / inner)
    return 2 * n ** 3 / best / 1e12


def peak_rss_mib() -> float | None:
    """Peak resident set size of this process (VmHWM), MiB; None where /proc is missing."""
    return _proc_status_kib("VmHWM")


def rss_mib() -> float | None:
    return _proc_status_kib("VmRSS")


def _proc_status_kib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class CpuMeter:
    """How busy the rest of the machine was while we ran: (all CPUs' busy time - this
    process's CPU time) / wall time, in cores, from /proc (None elsewhere). A number well
    above 0 means other work shared the cores and the timings are pessimistic."""

    def __init__(self):
        self.start = self._read()

    @staticmethod
    def _read():
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # - idle, iowait
            own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
            return busy, int(own[11]) + int(own[12]), time.perf_counter()
        except (OSError, ValueError, IndexError):
            return None

    def background_cores(self) -> float | None:
        end = self._read()
        if self.start is None or end is None or end[2] <= self.start[2]:
            return None
        hz = os.sysconf("SC_CLK_TCK")
        other = (end[0] - self.start[0]) - (end[1] - self.start[1])
        return max(0.0, other / hz / (end[2] - self.start[2]))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} logical CPUs)"
    except OSError:
        pass
    return f"cpu ({os.cpu_count()} logical CPUs)"
