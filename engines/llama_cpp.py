"""llama.cpp (llama-cpp-python) as a Generator, on a GGUF file written from the fixture.

The GGUF is written once per fixture content and converter version
(fixtures/convert.py) with the `gguf` package: float32 tensors, the
byte-level BPE vocabulary and merges, special-token ids and the chat
template, so prompt ids equal the Hugging Face tokenizer's. llama.cpp's
`llama` architecture rotates interleaved pairs where Hugging Face rotates
halves, so q and k projections are permuted as llama.cpp's own converter does.

The engine runs one sequence at a time; generate() takes a list and runs it in order.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import Llama, LogitsProcessorList
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from engines.base import (
    Capabilities,
    ChatMessage,
    Completion,
    Generator,
    InvalidParameterError,
    SamplingParams,
    StreamDelta,
    stop_stream,
    text_deltas,
    top_logprobs,
)
from fixtures.convert import converted

GGUF_NAME = "model.gguf"
CONTROL, NORMAL = 3, 1  # gguf token types

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
    out = {}
    for tensor in gguf.GGUFReader(str(path)).tensors:
        array = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if tensor.name.startswith("blk."):
            _, layer, part, kind = tensor.name.split(".")
            if part in heads:
                array = _unpermute(array, heads[part])
            out[f"model.layers.{layer}.{LAYER_TO_HF[part]}.{kind}"] = array
        else:
            out[GGUF_TO_HF[tensor.name]] = array
    return out


class QuantizationFallbackError(RuntimeError):
    """A quantized GGUF holds weight matrices in another type than the one asked for."""


def quantize_gguf(source: Path, out: Path, quantization: str) -> None:
    """llama.cpp's own quantizer (llama_model_quantize) on the float32 GGUF, then a check of the
    tensor types it wrote: a fallback raises QuantizationFallbackError naming the tensors."""
    ftype, allowed = GGUF_TYPES[quantization]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype)
    params.nthread = threads()
    written = out / GGUF_NAME
    code = llama_cpp.llama_model_quantize(str(source).encode(), str(written).encode(), params)
    if code != 0:
        raise RuntimeError(f"llama_model_quantize({quantization}) returned {code}")
    check_tensor_types(written, quantization, allowed)


def check_tensor_types(path: Path, quantization: str, allowed: set[str]) -> dict[str, int]:
    """Count the types of the weight matrices in a GGUF; raise if any is not an allowed one."""
    import gguf

    types: dict[str, int] = {}
    strays = []
    for tensor in gguf.GGUFReader(str(path)).tensors:
        if len(tensor.shape) < 2 or sum(int(d) > 1 for d in tensor.shape) < 2:
            continue  # norms and other vectors stay float32 in every file type
        name = tensor.tensor_type.name
        types[name] = types.get(name, 0) + 1
        if name not in allowed:
            strays.append(f"{tensor.name} ({name})")
    if strays:
        raise QuantizationFallbackError(
            f"{quantization}: {len(strays)} weight matrices fell back to another type: "
            f"{', '.join(strays[:6])}{' …' if len(strays) > 6 else ''}; expected "
            f"{' or '.join(sorted(allowed))} (K-quants need sizes that are multiples of 256)")
    return types


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face's rotate-half q/k rows -> llama.cpp's interleaved pairs."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_gguf(model_dir: Path, out: Path) -> None:
    """Write `model_dir` (a Hugging Face Llama folder) as out/model.gguf."""
    import gguf

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        raise ValueError(f"the GGUF writer handles model_type 'llama', not {config.get('model_type')!r}")
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads

    writer = gguf.GGUFWriter(str(out / GGUF_NAME), "llama")
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
    _write_tensors(writer, model_dir, heads, kv_heads)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _write_tokenizer(writer, model_dir: Path, config: dict) -> None:
    """Byte-level BPE vocabulary, merges, special ids and chat template, as llama.cpp reads them."""
    tok = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    tok_config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda item: item[1])
    special = {t["id"] for t in tok["added_tokens"] if t["special"]}
    writer.add_tokenizer_model("gpt2")  # byte-level BPE
    writer.add_tokenizer_pre("gpt-2")   # the GPT-2 split regex, as the ByteLevel pre-tokenizer uses
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types([CONTROL if i in special else NORMAL for _, i in vocab])
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
    """float32 tensors under llama.cpp's names; q/k rows permuted for its rotary layout."""
    from safetensors.numpy import load_file

    weights = load_file(str(model_dir / "model.safetensors"))
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
                 "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    if "lm_head.weight" not in weights:  # tied embeddings
        weights["lm_head.weight"] = weights["model.embed_tokens.weight"]
    for name, array in weights.items():
        array = np.ascontiguousarray(array, dtype=np.float32)
        if name in names:
            writer.add_tensor(names[name], array)
            continue
        _, _, layer, rest = name.split(".", 3)  # model.layers.<i>.<rest>.weight
        part = rest.removesuffix(".weight")
        if part == "self_attn.q_proj":
            array = _permute(array, heads)
        elif part == "self_attn.k_proj":
            array = _permute(array, kv_heads)
        writer.add_tensor(f"blk.{layer}.{per_layer[part]}.weight", array)


def converter_version() -> str:
    return f"gguf=={importlib.metadata.version('gguf')} infermatrix-llama-writer-1"


def threads() -> int:
    """llama.cpp's own thread pool ignores OMP_NUM_THREADS; honour it (the ladder's per-cell
    thread share when cells climb side by side), else use every core."""
    share = os.environ.get("OMP_NUM_THREADS", "")
    return int(share) if share.isdigit() and int(share) > 0 else os.cpu_count() or 1


class LlamaCppGenerator(Generator):
    """Llama.generate() token by token; Llama.eval() for logits; the GGUF's own chat template."""

    capabilities = Capabilities(
        streaming=True,
        chat=True,
        seeded_sampling=True,
        stop_strings=True,
        stop_string_kept=True,
        logprobs=True,  # the context's last logits, read as each token is sampled
        logits=True,
        token_input=True,
        min_new_tokens=True,
        stop_token_ids=True,
        batching=True,  # the list is run one prompt after another
    )

    # llama.cpp keeps its KV cache in float16 by default (type_k/type_v): measured 2.4e-3 nats
    # from the float32 reference on tiny-llama, 1.1e-2 on small-llama (whose logits spread about
    # 8 against tiny-llama's 3: the rounding error grows with them), 3e-6 with a float32 cache.
    # The adapter runs the default, as deployments do, so the tolerance allows for it.
    logprob_tolerance = 2e-2

    def __init__(self) -> None:
        self._llm: Llama | None = None

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        if dtype != "float32":
            raise InvalidParameterError(f"llama_cpp: the GGUF is written in float32, not {dtype!r}")
        folder = converted(model_dir, "gguf", converter_version(), write_gguf)
        if self.quantization != "none":
            source = folder / GGUF_NAME
            folder = converted(model_dir, f"gguf-{self.quantization}",
                               f"{converter_version()} llama-cpp-python "
                               f"{importlib.metadata.version('llama-cpp-python')}",
                               lambda _src, out: quantize_gguf(source, out, self.quantization))
        self.weights_bytes = (folder / GGUF_NAME).stat().st_size
        self._gguf = folder / GGUF_NAME
        self._config = config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self._llm = Llama(str(folder / GGUF_NAME), n_ctx=config["max_position_embeddings"],
                          n_threads=threads(), verbose=False)

    def _close(self) -> None:
        self._llm.close()
        self._llm = None

    def dequantized_weights(self) -> tuple[dict[str, np.ndarray], dict]:
        """The loaded GGUF's weights dequantized, in Hugging Face's layout, and the model config:
        the dequantized-reference check (quantization_quality) runs them through a float64
        forward pass to tell kernel error from quantization error."""
        self.check_loaded()
        return dequantized_weights(self._gguf, self._config), self._config

    @property
    def eos_token_id(self) -> int | None:
        return int(self._llm.token_eos()) if self._llm is not None else None

    def _tokenize(self, text: str) -> list[int]:
        llm = self._llm
        add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "true") == "true"
        return list(llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def _decode(self, ids: Sequence[int]) -> str:
        return self._llm.detokenize(list(ids), special=False).decode("utf-8", errors="replace")

    def _last_logits(self) -> np.ndarray:
        """A copy of the logits of the last position the context evaluated."""
        llm = self._llm
        last = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return np.ctypeslib.as_array(last, shape=(llm.n_vocab(),)).astype(np.float32)

    def _tokens(self, prompt_ids: Sequence[int], params: SamplingParams,
                logits: list[np.ndarray] | None = None) -> Iterator[int]:
        """Generated ids of one prompt, stopping at EOS / stop ids / max_new_tokens.

        With a `logits` list, each yielded token's step logits are appended to it: when
        Llama.generate() yields a token, the context still holds the logits it was sampled from
        (the sampler works on a copy; the next eval comes after the yield)."""
        llm = self._llm
        eos = llm.token_eos()
        stops = set(params.stop_token_ids) | ({eos} if not params.ignore_eos else set())
        floor = params.max_new_tokens if params.ignore_eos else params.min_new_tokens
        count = 0

        def mask_eos(_input_ids, scores):  # no EOS (or stop id) before `floor` tokens
            if count < floor:
                scores = scores.copy()
                scores[[eos, *params.stop_token_ids]] = -np.inf
            return scores

        llm.set_seed(params.seed if params.seed is not None else secrets.randbits(31))
        sampling = {"temp": 0.0} if params.greedy else {
            "temp": params.temperature, "top_p": params.top_p, "top_k": params.top_k}
        stream = llm.generate(list(prompt_ids), min_p=0.0, typical_p=1.0, repeat_penalty=1.0,
                              logits_processor=LogitsProcessorList([mask_eos]) if floor else None,
                              reset=True, **sampling)
        for token in stream:
            if token in stops:
                return
            if logits is not None:
                logits.append(self._last_logits())
            yield int(token)
            count += 1
            if count >= params.max_new_tokens:
                return

    def _complete_one(self, prompt_ids: Sequence[int], params: SamplingParams) -> Completion:
        ids: list[int] = []
        text, reason = "", "eos"
        steps: list[np.ndarray] | None = None if params.logprobs is None else []
        for delta in stop_stream(text_deltas(self._tokens(prompt_ids, params, steps), self._decode),
                                 params.stop, self._decode):
            ids.extend(delta.token_ids)
            text += delta.text
        if params.stop and any(s in text for s in params.stop):
            reason = "stop"
        elif len(ids) >= params.max_new_tokens:
            reason = "length"
        logprobs = None if steps is None else tuple(
            top_logprobs(step, token, params.logprobs) for step, token in zip(steps, ids))
        return Completion(self._decode(ids), tuple(ids), tuple(prompt_ids), reason, logprobs)

    def _generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        return [self._complete_one(ids, params) for ids in prompt_ids]

    def _stream(self, prompt_ids: list[int], params: SamplingParams) -> Iterator[StreamDelta]:
        yield from stop_stream(text_deltas(self._tokens(prompt_ids, params), self._decode),
                               params.stop, self._decode)

    def _chat_ids(self, messages: list[ChatMessage]) -> list[int]:
        meta = self._llm.metadata
        template = meta.get("tokenizer.chat_template")
        if not template:
            raise InvalidParameterError("llama_cpp: this GGUF carries no chat template")
        token = lambda key: self._decode_special(int(meta[key])) if key in meta else ""  # noqa: E731
        formatter = Jinja2ChatFormatter(template, eos_token=token("tokenizer.ggml.eos_token_id"),
                                        bos_token=token("tokenizer.ggml.bos_token_id"))
        rendered = formatter(messages=[{"role": m.role, "content": m.content} for m in messages])
        return list(self._llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=False, special=True))

    def _decode_special(self, token: int) -> str:
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def _logits(self, prompt_ids: list[list[int]]) -> np.ndarray:
        llm = self._llm
        rows = []
        for ids in prompt_ids:
            llm.reset()
            llm.eval(list(ids))  # keeps logits in llm.scores only with logits_all=True
            rows.append(self._last_logits())
        return np.stack(rows)
