"""The roofline: what one decode step and one prompt token must cost, and how close an engine
came to the limits of the device it ran on. Pure arithmetic over the bench's metrics and the
fixture's safetensors headers (no weights are loaded), shared by the bench rung that writes a
`Roofline` (incell/throughput/run.py) and the audit that checks it (pages/audit.py).

- Decode at batch 1 is bound by memory bandwidth: every weight is read once a step, so the
  bound is bandwidth ÷ bytes read a token, and MBU = bytes a token × tok/s ÷ bandwidth.
- Prefill is bound by the matmul peak: a weight costs 2 FLOPs a token (a multiply and an add),
  so the bound is peak ÷ FLOPs a token.
- Both limits are the best reading of the device's own probe in the same run (what the machine
  showed it can do), measured on the device the engine computes on, in its compute dtype.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from core.bench_details import MetricRecord, Roofline

EMBEDDING_TABLES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight")
OUTPUT_HEADS = ("lm_head.weight", "output.weight")
FLOAT32_BYTES = 4
FLOPS_PER_WEIGHT = 2
"""A multiply and an add, for every weight, for every token."""


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
    tied = not any(name.endswith(OUTPUT_HEADS) for name in sizes)
    return sum(size for name, size in sizes.items()
               if tied or not name.endswith(EMBEDDING_TABLES))


def output_head_bytes(model_dir: Path) -> int:
    """Bytes of the output projection: lm_head (or output), else the tied input embedding."""
    sizes = safetensors_sizes(model_dir)
    heads = [s for n, s in sizes.items() if n.endswith(OUTPUT_HEADS)]
    return sum(heads) or sum(s for n, s in sizes.items() if n.endswith(EMBEDDING_TABLES))


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


def bytes_read_per_token(model_dir: Path, engine_bytes: int | None, read_bytes: int | None) -> int:
    """Bytes one batch-1 decode step reads of the engine's own weights.

    What the engine's adapter read from its own files (`read_bytes`,
    engines/formats/weights_read.py: every tensor once, a table that is only gathered left out),
    else the fixture's at float32 (every matrix once, one row of an untied input embedding)
    scaled to the engine's own weights where its adapter knows their size: a Q4 GGUF reads about
    a seventh of what the float32 file holds, bfloat16 half."""
    if read_bytes:
        return read_bytes
    float32_per_token = weight_bytes_per_token(model_dir)
    if not engine_bytes:
        return float32_per_token
    float32_total = sum(safetensors_sizes(model_dir).values())
    return round(float32_per_token * engine_bytes / float32_total)


def roofline(metrics: list[MetricRecord], model_dir: Path, engine_bytes: int | None = None, *,
             device: str = "cpu", dtype: str = "float32",
             read_bytes: int | None = None) -> Roofline | None:
    """Decode at batch 1 against the bandwidth-bound limit (bytes a token × tok/s ÷ bandwidth),
    and prefill at batch 1 against the matmul peak, both measured on `device` (the peak in
    `dtype`, what the engine computes in); None where the device's bandwidth was not measured.

    FLOPs a token are counted on the float32 fixture, whatever the engine's format: a 4-bit
    weight costs the same multiply and add as a float32 one. `least_flops_per_token` leaves the
    output projection out: vLLM and llama.cpp compute logits at a prompt's last position only,
    so a prefill bound that charged every position the projection would be too low."""
    bandwidth = measured_on(metrics, "memory_bandwidth_gb_s", device)
    decode = [m for m in metrics if m.name == "decode_tokens_per_s" and m.params["batch"] == 1]
    if bandwidth is None or not decode or not any(model_dir.glob("*.safetensors")):
        return None
    per_token = bytes_read_per_token(model_dir, engine_bytes, read_bytes)
    gb_s = max(bandwidth.samples)  # the best reading: what this machine showed it can do
    out = Roofline(weight_bytes_per_token=per_token, bandwidth_gb_s=gb_s,
                   last_level_cache_bytes=last_level_cache_bytes() if device == "cpu" else None,
                   device=device,
                   bytes_counted="files" if read_bytes else "scaled",
                   device_name=bandwidth.params.get("device_name", ""), compute_dtype=dtype)
    float32_weights = weight_bytes_per_token(model_dir) / FLOAT32_BYTES
    out.flops_per_token = FLOPS_PER_WEIGHT * float32_weights
    head_weights = output_head_bytes(model_dir) / FLOAT32_BYTES
    out.least_flops_per_token = FLOPS_PER_WEIGHT * (float32_weights - head_weights)
    compute = measured_on(metrics, "compute_tflops", device, dtype)
    if compute is not None:  # prefill against the compute limit (BenchDetail.prefill_bounds)
        out.compute_tflops = max(compute.samples)
    return out
