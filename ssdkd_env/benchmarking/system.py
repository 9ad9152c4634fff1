"""What the benchmark reads from the machine: its name, memory use and achievable peak FLOP/s."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, matched in order against
# the CUDA device name (the first match wins, so the more specific names come first).
CUDA_BF16_PEAKS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("A100", 312e12),
)
CPU_MATMUL_SIZE = 2048
CUDA_MATMUL_SIZE = 8192
MATMUL_REPEATS = 2  # timed products, after one untimed


@dataclass(frozen=True)
class Peak:
    """An achievable peak and where it comes from."""

    flops_per_s: float
    source: str


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name (from /proc/cpuinfo on Linux)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "cpu"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def host_memory_mb() -> dict[str, float | None]:
    """Peak resident set size of this process and, on Linux, its current one (MiB)."""
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak_kb / 1024**2 if sys.platform == "darwin" else peak_kb / 1024  # bytes on macOS, KiB elsewhere
    current = None
    statm = Path("/proc/self/statm")
    if statm.is_file():
        current = int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**2
    return {"peak_rss_mb": round(peak, 1), "current_rss_mb": None if current is None else round(current, 1)}


def cuda_memory_mb(device: torch.device) -> float | None:
    """The most memory the CUDA caching allocator has handed out in this process (MiB)."""
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 1024**2, 1)


def matmul_flops_per_s(device: torch.device, size: int, dtype: torch.dtype) -> float:
    """The best of a few timed ``size``-square matrix products (2 size^3 FLOPs each)."""
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    torch.mm(a, b)  # warm-up: kernel selection, allocation
    best = float("inf")
    for _ in range(MATMUL_REPEATS):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def device_peak(device: torch.device) -> Peak:
    """The device's peak: the data-sheet bf16 dense peak of a known GPU, else a measured matmul peak
    (fp32 on the CPU with the current thread count, bf16 on an unknown GPU)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for pattern, flops in CUDA_BF16_PEAKS:
            if pattern in name:
                return Peak(flops, f"data-sheet bf16 dense peak of {pattern}")
        n = CUDA_MATMUL_SIZE
        return Peak(matmul_flops_per_s(device, n, torch.bfloat16), f"measured bf16 matmul peak ({n}x{n} @ {n}x{n})")
    n = CPU_MATMUL_SIZE
    threads = torch.get_num_threads()
    return Peak(
        matmul_flops_per_s(device, n, torch.float32),
        f"measured fp32 matmul peak ({n}x{n} @ {n}x{n}, {threads} thread{'s' if threads > 1 else ''})",
    )
