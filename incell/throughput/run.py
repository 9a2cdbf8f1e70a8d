"""The benchmark inside a cell: the ladder's bench rung, and `nox -s bench`'s grid.

    python -m incell.throughput.run --ask '{"engine": "transformers", "fixtures": ["tiny-llama"]}' \
        --out bench.json
    python -m incell.throughput.run --ask '{"engine": "transformers", "fixtures": ["tiny-llama"],
        "bench_args": ["--profile", "full"]}' --out grid.json

Runs incell/throughput/test_throughput.py under pytest-benchmark (pedantic rounds: fixed
warm-up and timed rounds, no calibration), then writes the bench rung's record (a
core.results Rung, core/details.BenchDetail inside; a failure is the rung's): every metric
with its raw samples and statistics (bench/metrics.py has the definitions),
the peak resident memory of this process (and peak GPU memory where there is
one), the measured memory bandwidth and, for decode at batch 1, the fraction
of the bandwidth-bound limit the engine reached (the roofline: bench/roofline.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from bench.metrics import BenchInputError
from bench.profiles import PROFILES, BenchArgs, parse_bench_args
from bench.roofline import roofline
from core.ask import Ask, AskError
from core.bench_details import BenchDetail, Referee, Threads
from core.results import ErrorInfo, Rung, write_rung

SUITE = Path(__file__).parent
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# The process's peak after these includes what is not the timed engine: the machine probe's
# arrays, and the detector's second instance (the engine as shipped, prefix cache on).
NOT_THE_ENGINES_PEAK = ("test_memory_bandwidth", "test_compute_peak", "test_prefix_cache",
                        "test_quantized_against_float")








def gpu_peak_mib() -> float | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)








def referee(measured, prof) -> Referee | None:
    """llama.cpp's own tools on the GGUF a llama.cpp cell loaded, or None: llama-bench at the
    batch-1 shape the table shows, and where the GGUF is a quantization, llama-perplexity's KL
    against the float32 GGUF it was made from."""
    gguf, unquantized = measured.loaded.file, measured.loaded.unquantized_file
    if gguf is None or gguf.suffix != ".gguf":
        return None
    from engines.formats.gguf_files import threads as cores
    from incell.referee import llama_bench, llama_kl

    length = sorted(prof.input_lengths)[len(prof.input_lengths) // 2]  # the table's shape
    found = llama_bench(gguf, length, prof.new_tokens, cores())
    if found is not None and unquantized is not None:
        with tempfile.TemporaryDirectory() as work:
            try:
                found.kl = llama_kl(unquantized, gguf, cores(), Path(work))
            except RuntimeError as exc:  # the tool's failure, said beside the engine's figures
                found.kl_error = str(exc)[:500]
    return found


def timed_fixture(ask: Ask, bench: BenchArgs) -> str:
    """The fixture the bench times: bench_args' --fixture (a real shape), else the ask's first."""
    if not (bench.fixture or ask.fixtures):
        raise AskError("the ask names no fixture to time: give fixtures, or --fixture in bench_args")
    return bench.fixture or ask.fixtures[0]


def run(ask: Ask, bench: BenchArgs) -> BenchDetail:
    """The throughput suite in this process; the bench rung's record from what it measured."""
    import pytest

    from fixtures.catalog import locate
    from incell.throughput.measured import Collect, Measured

    measured = Measured()
    fixture = timed_fixture(ask, bench)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "pytest-benchmark.json"
        argv = [str(SUITE / "test_throughput.py"), str(SUITE / "test_paired.py"),
                "-c", str(SUITE / "pytest.ini"),
                "--rootdir", str(SUITE.parent.parent), "-q", "--ask", ask.arg(),
                "--benchmark-json", str(raw)]
        code = pytest.main(argv, plugins=[Collect(measured)])
        if code != 0:
            raise RuntimeError(f"the benchmark session failed (pytest exit status {code}); "
                               "its output above names the shape and the error")
        data = json.loads(raw.read_text(encoding="utf-8"))
    prof = bench.profile
    return BenchDetail(
        fixture=fixture, profile=bench.name, metrics=measured.metrics,
        prefix_cache=measured.prefix_cache, weights=measured.weights,
        referee=referee(measured, prof),
        roofline=roofline(measured.metrics, locate(fixture), measured.loaded.bytes,
                          device=ask.device, dtype=measured.dtype,
                          read_bytes=measured.loaded.read_bytes),
        peak_rss_mib=max((mib for test, mib in measured.peak_rss_mib.items()
                          if test not in NOT_THE_ENGINES_PEAK), default=None),
        peak_gpu_mib=gpu_peak_mib(), threads=threads(measured), rounds=prof.rounds,
        warmup=prof.warmup,
        pytest_benchmark={"version": data.get("version"), "machine_info": data.get("machine_info")})


def threads(measured) -> Threads:
    """The cores, the thread variables, and the cores the engine's processes kept busy."""
    return Threads(cpu_count=os.cpu_count(),
                   env={**{k: os.environ.get(k) for k in THREAD_VARS},
                        **{k: v for k, v in os.environ.items() if k.startswith("VLLM_CPU_")}},
                   cores_busy=dict(measured.cores_busy))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m incell.throughput.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ask", required=True, help="what to time, as JSON (core/ask.py): engine, "
                   "device, fixtures (the first is timed), bench_args: --profile "
                   f"{'|'.join(sorted(PROFILES))} (quick: what every matrix cell runs; full: the "
                   "batch x length grid), --fixture, and the shape options")
    p.add_argument("--out", type=Path, required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:  # refuse bad values before anything is loaded
        ask = Ask.parse(args.ask)
        bench = parse_bench_args(ask.bench_args)
        timed_fixture(ask, bench)
    except (AskError, BenchInputError) as exc:
        p.error(str(exc))
    try:
        outcome = Rung("bench", "pass", detail=run(ask, bench))
    except Exception as exc:  # the rung's failure, typed; the driver adds this process's output
        outcome = Rung("bench", "fail", error=ErrorInfo.from_exception(exc))
    write_rung(args.out, outcome)
    return 0 if outcome.status == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
