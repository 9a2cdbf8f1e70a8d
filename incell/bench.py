"""The benchmark inside a cell: the ladder's bench rung, and `nox -s bench`'s grid.

    python -m incell.bench --ask '{"engine": "transformers", "fixtures": ["tiny-llama"]}' --out bench.json
    python -m incell.bench --ask '{"engine": "transformers", "fixtures": ["tiny-llama"],
        "bench_args": ["--profile", "full"]}' --out grid.json

Runs incell/throughput/test_throughput.py under pytest-benchmark (pedantic rounds: fixed
warm-up and timed rounds, no calibration), then writes the bench rung's record (a
core.results Rung, core/details.BenchDetail inside; a failure is the rung's): every metric
with its raw samples and statistics (bench/metrics.py has the definitions),
the peak resident memory of this process (and peak GPU memory where there is
one), the measured memory bandwidth and, for decode at batch 1, the fraction
of the bandwidth-bound limit the engine reached (the roofline).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
from pathlib import Path

from bench.metrics import BenchInputError
from bench.profiles import PROFILES, BenchArgs, parse_bench_args
from core.ask import Ask, AskError
from core.bench_details import (
    BenchDetail,
    DecodeBound,
    MetricRecord,
    PrefillBound,
    Referee,
    Roofline,
    Threads,
)
from core.results import ErrorInfo, Rung, write_rung

SUITE = Path(__file__).parent / "throughput"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# The process's peak after these includes what is not the timed engine: the machine probe's
# arrays, and the detector's second instance (the engine as shipped, prefix cache on).
NOT_THE_ENGINES_PEAK = ("test_memory_bandwidth", "test_compute_peak", "test_prefix_cache",
                        "test_quantized_against_float")
EMBEDDING_TABLES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight")


def safetensors_sizes(model_dir: Path) -> dict[str, int]:
    """Tensor name -> bytes, read from the safetensors headers (no weights loaded)."""
    sizes = {}
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for name, info in header.items():
            if name != "__metadata__":
                start, end = info["data_offsets"]
                sizes[name] = end - start
    return sizes


def weight_bytes_per_token(model_dir: Path) -> int:
    """Bytes of weights one decode step reads at batch 1: every matrix once, except an input
    embedding table that is not also the output projection (only one row of it is read)."""
    sizes = safetensors_sizes(model_dir)
    tied = not any(name.endswith(("lm_head.weight", "output.weight")) for name in sizes)
    return sum(size for name, size in sizes.items()
               if tied or not name.endswith(EMBEDDING_TABLES))


def output_head_bytes(model_dir: Path) -> int:
    """Bytes of the output projection: lm_head (or output), else the tied input embedding."""
    sizes = safetensors_sizes(model_dir)
    heads = [s for n, s in sizes.items() if n.endswith(("lm_head.weight", "output.weight"))]
    return sum(heads) or sum(s for n, s in sizes.items() if n.endswith(EMBEDDING_TABLES))


def gpu_peak_mib() -> float | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def last_level_cache_bytes() -> int | None:
    """The largest CPU cache the kernel lists (sysfs), in bytes; None where it lists none."""
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text(encoding="utf-8").strip().upper()
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes, default=None)


def measured_on(metrics: list[MetricRecord], name: str, device: str,
                dtype: str | None = None) -> MetricRecord | None:
    """The machine-limit metric `name` measured on `device` (and in `dtype`), or None. A limit
    measured on another device never stands in: a GPU row divided by the host's DRAM bandwidth
    shows a decode past 100% where the truth is a few percent."""
    return next((m for m in metrics if m.name == name
                 and m.params.get("device", "cpu") == device
                 and (dtype is None or m.params.get("dtype", "float32") == dtype)), None)


def roofline(metrics: list[MetricRecord], model_dir: Path, engine_bytes: int | None = None, *,
             device: str = "cpu", dtype: str = "float32",
             read_bytes: int | None = None) -> Roofline | None:
    """Decode at batch 1 against the bandwidth-bound limit: bytes/token x tok/s / bandwidth, and
    prefill at batch 1 against the matmul peak, both measured on `device` (the peak in `dtype`,
    what the engine computes in); None where the device's bandwidth was not measured.

    Bytes per token are what the engine's adapter read from its own files (`read_bytes`,
    engines/weights_read.py: every tensor once, a table only gathered left out), else the
    fixture's at float32 (every matrix once, one row of an untied input embedding) scaled to the
    engine's own weights where its adapter knows their size (a Q4 GGUF: about a seventh)."""
    bandwidth = measured_on(metrics, "memory_bandwidth_gb_s", device)
    decode = [m for m in metrics if m.name == "decode_tokens_per_s" and m.params["batch"] == 1]
    if bandwidth is None or not decode or not any(model_dir.glob("*.safetensors")):
        return None
    float32_per_token = per_token = weight_bytes_per_token(model_dir)
    if read_bytes:
        per_token = read_bytes
    elif engine_bytes:
        per_token = round(per_token * engine_bytes / sum(safetensors_sizes(model_dir).values()))
    gb_s = max(bandwidth.samples)  # the best reading: what this machine showed it can do
    rows = [DecodeBound(input_tokens=m.params["input_tokens"], decode_tokens_per_s=m.stats.median,
                        bound_tokens_per_s=gb_s * 1e9 / per_token,
                        fraction=per_token * m.stats.median / (gb_s * 1e9))
            for m in decode]
    out = Roofline(weight_bytes_per_token=per_token, bandwidth_gb_s=gb_s, decode_batch1=rows,
                   last_level_cache_bytes=last_level_cache_bytes() if device == "cpu" else None,
                   engine_weights_bytes=engine_bytes, device=device,
                   bytes_counted="files" if read_bytes else "scaled",
                   device_name=bandwidth.params.get("device_name", ""), compute_dtype=dtype)
    flops_per_token = out.flops_per_token = float32_per_token / 2  # 2 a weight of 4 bytes
    out.least_flops_per_token = (float32_per_token - output_head_bytes(model_dir)) / 2
    compute = measured_on(metrics, "compute_tflops", device, dtype)
    if compute is not None:  # prefill against the compute limit
        tflops = out.compute_tflops = max(compute.samples)
        out.prefill_batch1 = [
            PrefillBound(input_tokens=m.params["input_tokens"], prefill_tokens_per_s=m.stats.median,
                         fraction=m.stats.median * flops_per_token / (tflops * 1e12))
            for m in metrics if m.name == "prefill_tokens_per_s" and m.params["batch"] == 1]
    return out


def referee(measured, prof) -> Referee | None:
    """llama.cpp's own tools on the GGUF a llama.cpp cell loaded, or None: llama-bench at the
    batch-1 shape the table shows, and where the GGUF is a quantization, llama-perplexity's KL
    against the float32 GGUF it was made from."""
    if not str(measured.weights_file or "").endswith(".gguf"):
        return None
    from engines.gguf_files import threads as cores
    from incell.referee import llama_bench, llama_kl

    length = sorted(prof.input_lengths)[len(prof.input_lengths) // 2]  # the table's shape
    found = llama_bench(Path(measured.weights_file), length, prof.new_tokens, cores())
    if found is not None and measured.unquantized_file:
        with tempfile.TemporaryDirectory() as work:
            try:
                found.kl = llama_kl(Path(measured.unquantized_file), Path(measured.weights_file),
                                    cores(), Path(work))
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
        roofline=roofline(measured.metrics, locate(fixture), measured.weights_bytes,
                          device=ask.device, dtype=measured.dtype,
                          read_bytes=measured.weights_read_bytes),
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
    p = argparse.ArgumentParser(prog="python -m incell.bench", description=__doc__,
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
