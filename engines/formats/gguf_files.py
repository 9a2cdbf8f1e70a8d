"""The GGUF files llama.cpp runs, written from a fixture: the model (float32, with its
byte-level BPE vocabulary, merges, special-token ids and chat template, so prompt ids equal
the Hugging Face tokenizer's), its quantizations by llama.cpp's own quantizer (checked for
fallbacks), the weights of a GGUF read back dequantized, and a LoRA adapter (fixtures/lora.py)
in llama.cpp's adapter format.

llama.cpp's `llama` architecture rotates interleaved pairs where Hugging Face rotates halves,
so q and k projections (and a LoRA's B for them) are permuted as llama.cpp's own converter does;
its `qwen2` rotates halves (no permutation) and has q/k/v biases. A tied output projection is
not written (llama.cpp reads the embedding table for it, as its converter leaves it), and a
token list shorter than the embedding (a real shape's vocabulary with a small tokenizer) is
padded with unused tokens, as llama.cpp's converter pads one.
Shared by the in-process adapter (engines/llama_cpp.py) and its server (engines/llama_cpp_server.py).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path

import numpy as np

from fixtures.convert import converted

GGUF_NAME = "model.gguf"
LORA_GGUF_NAME = "adapter.gguf"
CONTROL, NORMAL, UNUSED = 3, 1, 5  # gguf token types
# model_type -> llama.cpp architecture, and whether q/k rows are permuted for it: llama.cpp's
# `llama` rotates interleaved pairs, its `qwen2` halves (NeoX style) as Hugging Face does.
ARCHITECTURES = {"llama": ("llama", True), "qwen2": ("qwen2", False)}

# quantization -> (llama.cpp file type, the tensor types its weight matrices may be written in).
# Q4_0 and Q4_K_M write the output matrix in Q6_K and Q4_K_M some matrices in Q6_K, as
# llama.cpp's quantizer always does; any other type means a tensor fell back (a K-quant on
# sizes not a multiple of 256 silently becomes Q5_0 / Q8_0 / F16), which must not pass quietly.
GGUF_TYPES = {
    "f16": ("LLAMA_FTYPE_MOSTLY_F16", {"F16"}),
    "q8_0": ("LLAMA_FTYPE_MOSTLY_Q8_0", {"Q8_0"}),
    "q4_0": ("LLAMA_FTYPE_MOSTLY_Q4_0", {"Q4_0", "Q6_K"}),
    "q4_k_m": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", {"Q4_K", "Q6_K"}),
}


GGUF_TO_HF = {"token_embd.weight": "model.embed_tokens.weight",
              "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
LAYER_TO_HF = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj",
               "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
               "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
               "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
HF_TO_GGUF = {hf: name for name, hf in GGUF_TO_HF.items()}
HF_TO_LAYER = {hf: part for part, hf in LAYER_TO_HF.items()}


def _unpermute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's interleaved q/k rows -> Hugging Face's rotate-half (the inverse of _permute)."""
    return (weights.reshape(heads, weights.shape[0] // heads // 2, 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def dequantized_weights(path: Path, config: dict) -> dict[str, np.ndarray]:
    """Every tensor of a GGUF dequantized (gguf's own dequantize), in Hugging Face's names and
    layout: what the quantized file really holds, for bench/reference_forward.py."""
    import gguf
    from gguf.quants import dequantize

    heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]}
    if not ARCHITECTURES[config.get("model_type", "llama")][1]:
        heads = {}
    out = {}
    for tensor in gguf.GGUFReader(str(path)).tensors:
        array = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if tensor.name.startswith("blk."):
            _, layer, part, kind = tensor.name.split(".")
            if part in heads and kind == "weight":
                array = _unpermute(array, heads[part])
            out[f"model.layers.{layer}.{LAYER_TO_HF[part]}.{kind}"] = array
        else:
            out[GGUF_TO_HF[tensor.name]] = array
    return out


TYPES_FILE = "tensor_types.json"


def quantize_gguf(source: Path, out: Path, quantization: str) -> None:
    """llama.cpp's own quantizer (llama_model_quantize) on the float32 GGUF, then what it wrote:
    the type of every weight matrix, into out/tensor_types.json (a K-quant on a size that is not
    a multiple of 256 falls back to Q5_0 / Q8_0, as it does for the real Qwen2-0.5B: a fact the
    report states with the effective bits per weight, not a refusal)."""
    import llama_cpp

    ftype, _allowed = GGUF_TYPES[quantization]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype)
    params.nthread = threads()
    written = out / GGUF_NAME
    code = llama_cpp.llama_model_quantize(str(source).encode(), str(written).encode(), params)
    if code != 0:
        raise RuntimeError(f"llama_model_quantize({quantization}) returned {code}")
    (out / TYPES_FILE).write_text(json.dumps(tensor_types(written, quantization), indent=1) + "\n",
                                  encoding="utf-8")


def tensor_types(path: Path, quantization: str) -> dict:
    """What a quantized GGUF holds: {"types": {type: matrices}, "fallbacks": ["tensor (type)"]
    for matrices in another type than `quantization` writes them in, "bits_per_weight": the
    matrices' bits over their weights}. A file not written by our quantizer (SHIPPED) has no
    fallbacks: any type is what it was shipped in."""
    import gguf

    allowed = GGUF_TYPES[quantization][1] if quantization in GGUF_TYPES else None
    types: dict[str, int] = {}
    fallbacks = []
    weights = bits = 0
    for tensor in gguf.GGUFReader(str(path)).tensors:
        if len(tensor.shape) < 2 or sum(int(d) > 1 for d in tensor.shape) < 2:
            continue  # norms and other vectors stay float32 in every file type
        name = tensor.tensor_type.name
        types[name] = types.get(name, 0) + 1
        weights += int(tensor.n_elements)
        bits += 8 * int(tensor.n_bytes)
        if allowed is not None and name not in allowed:
            fallbacks.append(f"{tensor.name} ({name})")
    return {"quantization": quantization, "types": types, "fallbacks": fallbacks,
            "bits_per_weight": round(bits / weights, 3) if weights else None}


def describe_types(found: dict) -> str:
    """One line: the types written and how many matrices fell back, e.g. "Q4_K ×120, Q6_K ×25,
    Q5_0 ×66 (66 of 211 fell back: sizes not multiples of 256), 5.02 bits per weight"."""
    types = ", ".join(f"{t} ×{n}" for t, n in sorted(found["types"].items(), key=lambda x: -x[1]))
    total = sum(found["types"].values())
    fell = len(found["fallbacks"])
    fallback = (f" ({fell} of {total} matrices fell back to another type: K-quants need sizes "
                f"that are multiples of 256)") if fell else ""
    return f"{types}{fallback}, {found['bits_per_weight']} bits per weight"


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face's rotate-half q/k rows -> llama.cpp's interleaved pairs."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_gguf(model_dir: Path, out: Path) -> None:
    """Write `model_dir` (a Hugging Face Llama or Qwen2 folder) as out/model.gguf."""
    import gguf

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") not in ARCHITECTURES:
        raise ValueError(f"the GGUF writer handles model_type {' or '.join(map(repr, ARCHITECTURES))}, "
                         f"not {config.get('model_type')!r}")
    arch, permuted = ARCHITECTURES[config["model_type"]]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads

    writer = gguf.GGUFWriter(str(out / GGUF_NAME), arch)
    writer.add_name(model_dir.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(config["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _write_tokenizer(writer, model_dir, config)
    _write_tensors(writer, model_dir, heads if permuted else 0, kv_heads if permuted else 0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def pre_tokenizer_name(tok: dict) -> str:
    """llama.cpp's name for tokenizer.json's pre-tokenizer: "gpt-2" for plain byte-level splitting
    (the random fixtures'), "smollm" for every digit split off first (SmolLM2's); another one is
    refused, by name, rather than written as one llama.cpp would split differently."""
    pre = tok.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    shape = tuple((p.get("type"), p.get("individual_digits")) for p in parts)
    names = {(("ByteLevel", None),): "gpt-2", (("Digits", True), ("ByteLevel", None)): "smollm"}
    if shape not in names:
        raise ValueError(f"tokenizer.json's pre-tokenizer {[t for t, _ in shape]} has no llama.cpp "
                         f"name this writer knows; known: {sorted(names.values())}")
    return names[shape]


def _write_tokenizer(writer, model_dir: Path, config: dict) -> None:
    """Byte-level BPE vocabulary, merges, special ids and chat template, as llama.cpp reads them."""
    tok = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    tok_config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda item: item[1])
    special = {t["id"] for t in tok["added_tokens"] if t["special"]}
    writer.add_tokenizer_model("gpt2")  # byte-level BPE
    writer.add_tokenizer_pre(pre_tokenizer_name(tok))
    padding = [f"[PAD{i}]" for i in range(len(vocab), config["vocab_size"])]
    writer.add_token_list([token for token, _ in vocab] + padding)
    writer.add_token_types([CONTROL if i in special else NORMAL for _, i in vocab]
                           + [UNUSED] * len(padding))
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]])
    for key, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                     ("pad_token_id", writer.add_pad_token_id)):
        if config.get(key) is not None:
            add(config[key])
    writer.add_add_bos_token(bool(tok_config.get("add_bos_token")))
    writer.add_add_eos_token(bool(tok_config.get("add_eos_token")))
    if tok_config.get("chat_template"):
        writer.add_chat_template(tok_config["chat_template"])



def _write_tensors(writer, model_dir: Path, heads: int, kv_heads: int) -> None:
    """float32 tensors under llama.cpp's names; q/k rows permuted for its rotary layout where
    `heads` is given (0: not permuted). A tied model has no lm_head: none is written."""
    from safetensors.numpy import load_file

    weights = load_file(str(model_dir / "model.safetensors"))
    for name, array in weights.items():
        array = np.ascontiguousarray(array, dtype=np.float32)
        if name in HF_TO_GGUF:
            writer.add_tensor(HF_TO_GGUF[name], array)
            continue
        _, _, layer, rest = name.split(".", 3)  # model.layers.<i>.<rest>.weight|bias
        part, _, kind = rest.rpartition(".")
        if part == "self_attn.q_proj" and heads:
            array = _permute(array, heads)
        elif part == "self_attn.k_proj" and kv_heads:
            array = _permute(array, kv_heads)
        writer.add_tensor(f"blk.{layer}.{HF_TO_LAYER[part]}.{kind}", array)


def float32_gguf(model_dir: Path) -> Path:
    """The float32 GGUF written from a fixture (write_gguf), once per content: what llama.cpp,
    its server and llama-cpp-python's server load, and what a quantization is made from."""
    return converted(model_dir, "gguf", converter_version(), write_gguf) / GGUF_NAME


def context_length(model_dir: Path) -> int:
    """The context a GGUF engine is given: the fixture's own max_position_embeddings."""
    return int(json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
               ["max_position_embeddings"])


def write_gguf_lora(adapter_dir: Path, out: Path, config: dict) -> None:
    """A peft LoRA adapter (fixtures/lora.py) as out/adapter.gguf, as llama.cpp's
    convert_lora_to_gguf.py writes one: general.type "adapter", its alpha, and for each base
    tensor `<name>.lora_a` (r × in) and `<name>.lora_b` (out × r), B's rows permuted for q and k."""
    import gguf

    from fixtures.lora import read_adapter

    pairs, scaling = read_adapter(adapter_dir)
    rank = next(iter(pairs.values()))[0].shape[0]
    heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]}
    writer = gguf.GGUFWriter(str(out / LORA_GGUF_NAME), "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(scaling * rank))
    for name, (a, b) in pairs.items():  # model.layers.<i>.<part>.<proj>
        _, _, layer, module = name.split(".", 3)
        part = HF_TO_LAYER[module]
        if part in heads:
            b = _permute(b, heads[part])
        for suffix, array in (("lora_a", a), ("lora_b", b)):
            writer.add_tensor(f"blk.{layer}.{part}.weight.{suffix}",
                              np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def converter_version() -> str:
    return f"gguf=={importlib.metadata.version('gguf')} infermatrix-llama-writer-1"


def threads() -> int:
    """llama.cpp's own thread pool ignores OMP_NUM_THREADS; honour it (the ladder's per-cell
    thread share when cells climb side by side), else use every core."""
    share = os.environ.get("OMP_NUM_THREADS", "")
    return int(share) if share.isdigit() and int(share) > 0 else os.cpu_count() or 1
