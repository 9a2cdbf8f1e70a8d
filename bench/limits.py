"""The machine's limits, measured: the read bandwidth of the host's DRAM and the peak matmul rate
in each dtype an engine computes in. The bench rung's probe tests call these (each cell's own
reading, kept in its record), and a run calls them before its first bench rung and after its
last (compat/limits_probe.py): one limit per run, which every MBU and prefill fraction down a
column divides by.

    python -m bench.limits [--readings 5] [--dtypes float32,bfloat16,int8]

prints one JSON object: {"memory_bandwidth_gb_s": [...], "compute_tflops": {dtype: [...]},
"params": {...}}, a reading per entry. A dtype this Python cannot multiply in (no torch) is
left out and named in "missing".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

READ_MIB = 256
"""The read probe's smallest array: far beyond any CPU cache (it grows to 8× the last-level)."""
MATMUL_N = 2048
"""The CPU peak's square matmul: 17 GFLOP, about 40 ms at float32 on this 2-core machine."""
PEAK_TRIES = 3
"""Calls of each library a reading takes the best of: on a shared VM a neighbour slows a
40 ms matmul often, and a best of single calls fell short of what a lucky engine sample then
reached (a CTranslate2 prefill sample 4% past it, 2026-12-07)."""


def read_array() -> tuple[np.ndarray, int]:
    """The array a read sums, at least READ_MIB and 8 × the last-level cache, and its MiB."""
    from bench.roofline import last_level_cache_bytes

    mib = max(READ_MIB, 8 * (last_level_cache_bytes() or 0) // 2**20)
    return np.ones(mib * 2**20 // 4, dtype=np.float32), mib


class HostRead:
    """One read of `src` with one thread per core, each its own slice (numpy releases the GIL
    while it sums), timed: a call returns its seconds. A read, because a decode step reads its
    weights: a copy also reads every line it writes. Use it in a `with` block (its thread pool
    closes at the end)."""

    def __init__(self, src: np.ndarray) -> None:
        self.src = src
        self.threads = os.cpu_count() or 1
        n = len(src)
        self.slices = [slice(i * n // self.threads, (i + 1) * n // self.threads)
                       for i in range(self.threads)]
        self.pool = ThreadPoolExecutor(self.threads)

    def __call__(self) -> float:
        t0 = time.perf_counter()
        list(self.pool.map(lambda part: np.add.reduce(self.src[part]), self.slices))
        return time.perf_counter() - t0

    def __enter__(self) -> HostRead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown()


def matmul(library: str, dtype: str, n: int, device: str = "cpu"):
    """One n×n matmul in `dtype` through `library` — numpy's BLAS (float32), or torch (oneDNN /
    MKL on the CPU; int8 × int8 → int32 through torch._int_mm, VNNI where the CPU has it) —
    ready to time; None where this Python has no such library."""
    if library == "numpy":
        if dtype != "float32":
            return None
        a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        b = a.T.copy()
        return lambda: a @ b
    try:
        import torch
    except ImportError:
        return None
    if dtype == "int8":
        a, b = (torch.randint(-128, 128, (n, n), dtype=torch.int8, device=device) for _ in "ab")
        return lambda: torch._int_mm(a, b)
    a = torch.randn(n, n, device=device, dtype=getattr(torch, dtype))
    b = torch.randn_like(a)
    return lambda: a @ b


def cpu_peak_call(dtype: str, n: int = MATMUL_N) -> tuple[Callable[[], float] | None, str]:
    """A call that returns the best seconds of PEAK_TRIES matmuls of each library that computes
    in `dtype` on the CPU (float32: numpy's BLAS and torch, the faster wins), and the libraries'
    names; (None, "") where none does."""
    libraries = ("numpy", "torch") if dtype == "float32" else ("torch",)
    calls = {name: call for name in libraries if (call := matmul(name, dtype, n))}
    if not calls:
        return None, ""

    def best() -> float:
        seconds = []
        for call in calls.values():
            for _ in range(PEAK_TRIES):
                t0 = time.perf_counter()
                call()
                seconds.append(time.perf_counter() - t0)
        return min(seconds)

    return best, "+".join(calls)


def measure(readings: int, dtypes: tuple[str, ...]) -> dict:
    """`readings` of the read bandwidth and of each dtype's peak (one warm-up call each first)."""
    src, mib = read_array()
    with HostRead(src) as read:
        read()
        bandwidth = [src.nbytes / read() / 1e9 for _ in range(readings)]
    peaks, libraries, missing = {}, {}, []
    for dtype in dtypes:
        call, names = cpu_peak_call(dtype)
        if call is None:
            missing.append(dtype)
            continue
        call()
        peaks[dtype] = [2 * MATMUL_N**3 / call() / 1e12 for _ in range(readings)]
        libraries[dtype] = names
    return {"memory_bandwidth_gb_s": bandwidth, "compute_tflops": peaks, "missing": missing,
            "params": {"mib": mib, "threads": read.threads, "access": "read", "n": MATMUL_N,
                       "tries": PEAK_TRIES, "libraries": libraries, "python": sys.executable}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.limits", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=5, help="readings of each limit (5)")
    parser.add_argument("--dtypes", default="float32,bfloat16,int8",
                        help="the dtypes whose matmul peak to read (float32,bfloat16,int8)")
    args = parser.parse_args(argv)
    if args.readings < 1:
        parser.error(f"--readings {args.readings}: give 1 or more")
    dtypes = tuple(d for d in args.dtypes.split(",") if d)
    bad = [d for d in dtypes if d not in ("float32", "bfloat16", "float16", "int8")]
    if bad:
        parser.error(f"--dtypes: {bad[0]!r} is not one of float32, bfloat16, float16, int8")
    print(json.dumps(measure(args.readings, dtypes)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
