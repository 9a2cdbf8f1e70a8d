"""4-bit weight-only checkpoints of a Llama fixture, AWQ's and GPTQ's formats, written with
numpy and safetensors, and read back.

Both as vLLM loads them (`quantization_config.quant_method`), 4 bits in groups of 128 inputs
(64 where the model's sizes are not multiples of 128: SmolLM2-135M's 576), for each linear
layer of each block; the rest is float16:
- "awq" (AutoAWQ's GEMM format): `qweight` (in × out/8 int32, eight values per word in AWQ's
  order 0 2 4 6 1 3 5 7), `qzeros` (in/128 × out/8, packed alike; asymmetric) and `scales`
  (in/128 × out, float16).
- "gptq" (AutoGPTQ's format, symmetric, no act-order): `qweight` (in/8 × out int32, eight
  consecutive inputs per word), `scales`, `g_idx`, and `qzeros` holding the fixed zero point 8
  as AutoGPTQ writes it (minus one).

The 4-bit values are the weights rounded to the nearest step of their group. The algorithms
that choose better values — AWQ's activation-aware channel scaling, GPTQ's error compensation
through the Hessian — need their libraries (AutoAWQ, GPTQModel) and calibration text on an
accelerator, and are not run; the formats, and so the engine's kernels, are the same.
`dequantized_weights` reads a written checkpoint back (the dequantized-reference check).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

GROUP, BITS, LEVELS = 128, 4, 15
GROUPS = (128, 64)  # the largest that divides every input size is taken
FORMATS = ("awq", "gptq")
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
"""Which of eight consecutive output columns each nibble of an AWQ word holds, lowest first."""
SEQUENTIAL = tuple(range(8))
GPTQ_ZERO = 8
VERSION = f"infermatrix-w4-rtn-2 w{BITS} g{GROUP}"
WEIGHTS = "model.safetensors"


def pack(values: np.ndarray, order: tuple[int, ...] = AWQ_ORDER) -> np.ndarray:
    """(rows, cols) integers in 0..15 -> (rows, cols / 8) int32 words, nibbles in `order`."""
    rows, cols = values.shape
    grouped = values.reshape(rows, cols // 8, 8)[:, :, list(order)].astype(np.uint32)
    words = np.zeros((rows, cols // 8), dtype=np.uint32)
    for i in range(8):
        words |= grouped[:, :, i] << np.uint32(BITS * i)
    return words.view(np.int32)


def unpack(words: np.ndarray, order: tuple[int, ...] = AWQ_ORDER) -> np.ndarray:
    """The inverse of pack: (rows, cols / 8) int32 -> (rows, cols) integers in 0..15."""
    raw = words.view(np.uint32)
    nibbles = np.stack([(raw >> np.uint32(BITS * i)) & np.uint32(LEVELS) for i in range(8)], axis=-1)
    out = np.empty_like(nibbles)
    out[:, :, list(order)] = nibbles
    return out.reshape(raw.shape[0], -1).astype(np.int64)


def group_size(config: dict) -> int:
    """The group of inputs one scale covers: the largest of GROUPS that divides the hidden and
    intermediate sizes (every linear layer's input is one of them)."""
    for size in GROUPS:
        if config["hidden_size"] % size == 0 and config["intermediate_size"] % size == 0:
            return size
    raise ValueError(f"4-bit groups of {' or '.join(map(str, GROUPS))} inputs need sizes that are "
                     f"multiples of one of them, not hidden {config['hidden_size']} and "
                     f"intermediate {config['intermediate_size']}")


def quantize(weight: np.ndarray, method: str = "awq", group: int = GROUP) -> dict[str, np.ndarray]:
    """One linear layer's (out × in) weight in `method`'s tensors, `group` inputs per scale."""
    columns = weight.T.astype(np.float64)  # (in, out): both formats store the input dimension first
    inputs, outputs = columns.shape
    groups = columns.reshape(inputs // group, group, outputs)
    low, high = groups.min(axis=1), groups.max(axis=1)
    if method == "gptq":  # symmetric: the zero point fixed at 8
        high = np.maximum(np.abs(low), high)
        low = -high
    # C order: `groups` is a view of weight.T, so its reductions come out in Fortran order, and
    # safetensors writes an array's buffer as it lies: the file's scales were a permutation of
    # these (harmless on random weights, whose groups all span alike; a trained model with
    # outlier input channels read them back 76% off and its perplexity went from 46 to 1.7e6)
    scales = np.ascontiguousarray(np.maximum(high - low, 1e-8) / LEVELS, dtype=np.float16)
    step = scales.astype(np.float64)
    zeros = np.full_like(low, GPTQ_ZERO) if method == "gptq" else \
        np.clip(np.round(-low / step), 0, LEVELS)
    values = np.clip(np.round(groups / step[:, None]) + zeros[:, None], 0, LEVELS)
    values = values.reshape(inputs, outputs).astype(np.int64)
    if method == "awq":
        return {"qweight": pack(values), "qzeros": pack(zeros.astype(np.int64)), "scales": scales}
    return {"qweight": pack(values.T, SEQUENTIAL).T.copy(), "scales": scales,
            "qzeros": pack(zeros.astype(np.int64) - 1, SEQUENTIAL),
            "g_idx": (np.arange(inputs) // group).astype(np.int32)}


def write_checkpoint(model_dir: Path, out: Path, method: str) -> None:
    """`model_dir` (a Hugging Face Llama or Qwen2 folder) as a `method` ("awq" or "gptq")
    checkpoint."""
    from safetensors.numpy import load_file, save_file

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") not in ("llama", "qwen2"):
        raise ValueError(f"the {method} writer handles Llama and Qwen2, not {config.get('model_type')!r}")
    group = group_size(config)
    for path in model_dir.iterdir():
        if path.is_file() and path.name not in (WEIGHTS, "config.json"):
            shutil.copy2(path, out / path.name)
    tensors = {}
    for name, array in load_file(str(model_dir / WEIGHTS)).items():
        if name.startswith("model.layers.") and name.endswith("_proj.weight"):
            stem = name.removesuffix(".weight")
            tensors |= {f"{stem}.{part}": v for part, v in quantize(array, method, group).items()}
        else:
            tensors[name] = array.astype(np.float16)
    save_file(tensors, str(out / WEIGHTS))
    settings = {"zero_point": True, "version": "gemm"} if method == "awq" else \
        {"sym": True, "desc_act": False, "checkpoint_format": "gptq"}
    config |= {"torch_dtype": "float16", "quantization_config": {
        "quant_method": method, "bits": BITS, "group_size": group, **settings}}
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def dequantized_weights(folder: Path) -> dict[str, np.ndarray]:
    """Every weight of a written checkpoint in float64, Hugging Face's names and layout."""
    from safetensors.numpy import load_file

    method = json.loads((folder / "config.json").read_text(encoding="utf-8")
                        )["quantization_config"]["quant_method"]
    tensors, weights = load_file(str(folder / WEIGHTS)), {}
    for name, array in tensors.items():
        if name.endswith(".qweight"):
            stem = name.removesuffix(".qweight")
            scales = tensors[f"{stem}.scales"].astype(np.float64)
            if method == "awq":
                values, zeros = unpack(array), unpack(tensors[f"{stem}.qzeros"])
            else:
                values = unpack(array.T.copy(), SEQUENTIAL).T
                zeros = unpack(tensors[f"{stem}.qzeros"], SEQUENTIAL) + 1
            group = values.shape[0] // scales.shape[0]
            columns = (values - np.repeat(zeros, group, axis=0)) * np.repeat(scales, group, axis=0)
            weights[f"{stem}.weight"] = columns.T
        elif not name.endswith((".qzeros", ".scales", ".g_idx")):
            weights[name] = array.astype(np.float64)
    weights.setdefault("lm_head.weight", weights["model.embed_tokens.weight"])
    return weights
