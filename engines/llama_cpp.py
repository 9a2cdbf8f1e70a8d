"""llama.cpp (llama-cpp-python) as a Generator, on a GGUF file written from the fixture.

The GGUF is written once per fixture content and converter version
(fixtures/convert.py) with the `gguf` package (engines/formats/gguf_files.py): float32
tensors and the tokenizer, so prompt ids equal the Hugging Face tokenizer's;
quantized from there by llama.cpp's own quantizer. A trained fixture's GGUF as its package ships
it (quantization SHIPPED) is read unconverted, with its own tokenizer and chat template metadata.

One prompt runs through Llama.generate(); several greedy prompts run as llama.cpp batches them
(llama-batched-bench, llama-server's slots): each its own sequence of one unified KV cache, every
step one llama_batch holding each live sequence's next id.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import json
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import llama_cpp
import numpy as np
from llama_cpp import Llama, LogitsProcessorList
from llama_cpp._internals import LlamaBatch, LlamaContext
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from engines import SHIPPED
from engines.base import (
    Capabilities,
    ChatMessage,
    Completion,
    Deviation,
    Generator,
    InvalidParameterError,
    LoadedWeights,
    SamplingParams,
    StreamDelta,
    stop_stream,
    text_deltas,
    top_logprobs,
)
from engines.formats.gguf_files import (
    GGUF_NAME,
    LORA_GGUF_NAME,
    TYPES_FILE,
    converter_version,
    dequantized_weights,
    describe_types,
    float32_gguf,
    quantize_gguf,
    tensor_types,
    threads,
    write_gguf_lora,
)
from engines.formats.weights_read import gguf_read_bytes
from engines.text import finish_row, log_softmax
from fixtures.convert import converted


class LlamaCppGenerator(Generator):
    """Llama.generate() token by token; Llama.eval() for logits; the GGUF's own chat template."""

    prefix_cache = "switch"
    prefix_cache_switch = ("Llama.generate(reset=True) keeps the longest prefix already evaluated; "
                           "off: Llama.reset() before each prompt, which evaluates it all again")
    capabilities = Capabilities(
        streaming=True,
        chat=True,
        seeded_sampling=True,
        stop_strings=True,
        stop_string_kept=True,
        logprobs=True,  # the context's last logits, read as each token is sampled
        logits=True,
        prompt_log_probs=True,  # a llama_batch asking for every position's logits
        token_input=True,
        min_new_tokens=True,
        stop_token_ids=True,
        batching=True,
        batch_decode=True,  # greedy prompts as sequences of one llama_batch (_batch_tokens)
        lora=True,  # a GGUF adapter (llama_adapter_lora_init) set on the context
    )

    # ggml quantizes a quantized matrix's input rows to 8 bits (Q8_0 / Q8_K blocks) and takes
    # integer dot products (AVX-512 VNNI here)
    quantized_compute: ClassVar[dict[str, str]] = dict.fromkeys(("q8_0", "q4_0", "q4_k_m", SHIPPED),
                                                                "int8")
    quantized_deviations: ClassVar[dict[str, dict[str, Deviation]]] = {
        quantization: {prop: Deviation(
            f"with {quantization} weights a sequence's greedy ids depend on the sequences batched "
            "beside it: llama.cpp's CPU kernels change with the batch's width, and a sequence's "
            "attention rounds otherwise once its cells interleave with others' in the unified KV "
            "cache (llama.cpp#6950). Measured on SmolLM2-135M-Instruct: one decode step of "
            "2-8 sequences moved Q4_K_M's logits by up to 1.3 (Q4_0 0.75) from the same sequence "
            "decoded alone, neither side nearer float32 (KL 0.17 both); Q8_0's step is "
            "bit-identical and its ids part later (small-llama: at position 8); float32 and F16 "
            "hold the properties", "https://github.com/ggml-org/llama.cpp/pull/6950")
            for prop in ("batch_invariance", "order_invariance")}
        for quantization in ("q8_0", "q4_0", "q4_k_m", SHIPPED)}

    # llama.cpp keeps its KV cache in float16 by default (type_k/type_v): measured 2.4e-3 nats
    # from the float32 reference on tiny-llama, 1.1e-2 on small-llama (whose logits spread about
    # 8 against tiny-llama's 3: the rounding error grows with them), 3e-6 with a float32 cache.
    # The adapter runs the default, as deployments do, so the tolerance allows for it.
    logprob_tolerance = 2e-2

    def __init__(self) -> None:
        self._llm: Llama | None = None
        self._adapter = False
        self._batched: tuple[LlamaContext, LlamaBatch] | None = None

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        if self.quantization == SHIPPED:
            self._load_shipped(model_dir)
        else:
            self._convert(model_dir)
        self._config = config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self._llm = Llama(str(self._gguf), n_ctx=config["max_position_embeddings"],
                          n_threads=threads(), verbose=False)

    def _load_shipped(self, model_dir: Path) -> None:
        """The GGUF the trained fixture's package ships (its SOURCE.json names it), as shipped."""
        source = model_dir / "SOURCE.json"
        if not source.is_file():
            raise InvalidParameterError(f"llama_cpp: quantization {SHIPPED!r} reads the GGUF a "
                                        f"trained fixture ships; {model_dir.name} ships none")
        self._gguf = gguf = model_dir / json.loads(source.read_text("utf-8"))["file"]
        self.weights = LoadedWeights(
            bytes=gguf.stat().st_size, read_bytes=gguf_read_bytes(gguf), file=gguf,
            note=f"as shipped: {describe_types(tensor_types(gguf, SHIPPED))}")

    def _convert(self, model_dir: Path) -> None:
        """The float32 GGUF written from the fixture, quantized by llama.cpp where asked."""
        source = float32_gguf(model_dir)
        folder = source.parent
        quantized = self.quantization != "none"
        if quantized:
            folder = converted(model_dir, f"gguf-{self.quantization}",
                               f"{converter_version()} {TYPES_FILE} llama-cpp-python "
                               f"{importlib.metadata.version('llama-cpp-python')}",
                               lambda _src, out: quantize_gguf(source, out, self.quantization))
        self._gguf = gguf = folder / GGUF_NAME
        types = folder / TYPES_FILE
        self.weights = LoadedWeights(
            bytes=gguf.stat().st_size, read_bytes=gguf_read_bytes(gguf), file=gguf,
            unquantized_file=source if quantized else None,
            note=describe_types(json.loads(types.read_text("utf-8"))) if types.is_file() else "")

    def _close(self) -> None:
        self._drop_batched()
        self._llm.close()  # the model frees the adapters loaded for it
        self._llm = None

    def _set_adapter(self, adapter_dir: Path | None) -> None:
        """The peft adapter converted to llama.cpp's GGUF adapter format (engines/formats/gguf_files.py)
        and set on the context at scale 1 (llama.cpp scales by alpha / r as peft does); None
        clears it. The token cache is reset: its keys and values were computed without it."""
        ctx = self._llm._ctx.ctx
        self._llm.reset()
        self._adapter = adapter_dir is not None  # set on the main context: batches go one by one
        if adapter_dir is None:
            llama_cpp.llama_set_adapters_lora(ctx, None, 0, None)
            return
        folder = converted(adapter_dir, "gguf-lora", converter_version(),
                           lambda src, out: write_gguf_lora(src, out, self._config))
        adapter = llama_cpp.llama_adapter_lora_init(self._llm._model.model,
                                                    str(folder / LORA_GGUF_NAME).encode())
        if not adapter:
            raise RuntimeError(f"llama.cpp could not load the adapter {folder / LORA_GGUF_NAME}")
        adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
        if llama_cpp.llama_set_adapters_lora(ctx, adapters, 1, (ctypes.c_float * 1)(1.0)):
            raise RuntimeError(f"llama.cpp could not set the adapter {folder / LORA_GGUF_NAME}")

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
        eos, stops, floor = self._ends(params)
        count = 0

        def mask_eos(_input_ids, scores):  # no EOS (or stop id) before `floor` tokens
            if count < floor:
                scores = scores.copy()
                scores[[eos, *params.stop_token_ids]] = -np.inf
            return scores

        if not self.cache_prefixes:  # generate(reset=True) would keep the prompt's longest
            llm.reset()  # prefix already evaluated; with n_tokens 0 it evaluates it all again
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
        """Several prompts, greedy, no log-probabilities, no adapter: one batch (_batch_tokens);
        otherwise one prompt after another through Llama.generate()."""
        if len(prompt_ids) > 1 and params.greedy and params.logprobs is None and not self._adapter:
            rows = self._batch_tokens(prompt_ids, params)
            return [finish_row(ids, row, params, self._decode) for ids, row in zip(prompt_ids, rows)]
        return [self._complete_one(ids, params) for ids in prompt_ids]

    def _batch_context(self, sequences: int, cells: int) -> tuple[LlamaContext, LlamaBatch]:
        """A context of the main one's settings (threads, KV cache types) for `sequences`
        sequences in one unified KV cache of at least `cells` cells, emptied; kept while it is big
        enough. Its llama_batch holds n_batch ids."""
        held = self._batched
        if held is None or held[0].params.n_seq_max < sequences or held[0].n_ctx() < cells:
            self._drop_batched()
            params = llama_cpp.llama_context_params.from_buffer_copy(self._llm.context_params)
            params.n_seq_max, params.kv_unified = sequences, True
            params.n_ctx = -(-cells // 256) * 256
            context = LlamaContext(model=self._llm._model, params=params, verbose=False)
            held = self._batched = (context, LlamaBatch(n_tokens=self._llm.n_batch, embd=0,
                                                        n_seq_max=1, verbose=False))
        held[0].kv_cache_clear()
        return held

    def _drop_batched(self) -> None:
        """Free the batch context and its llama_batch, where there are any."""
        for part in reversed(self._batched or ()):
            part.close()
        self._batched = None

    def _ends(self, params: SamplingParams) -> tuple[int, set[int], int]:
        """EOS, the ids that end an answer, and how many tokens come before any may (the floor)."""
        eos = int(self._llm.token_eos())
        stops = set(params.stop_token_ids) | ({eos} if not params.ignore_eos else set())
        return eos, stops, params.max_new_tokens if params.ignore_eos else params.min_new_tokens

    def _batch_tokens(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[list[int]]:
        """Greedy ids of each prompt, every prompt its own sequence: the prompts' ids first (packed
        n_batch at a time, logits at each prompt's last id), then one llama_batch a step holding
        each live sequence's last id. A sequence leaves the batch at EOS, a stop id or its
        max_new_tokens; EOS and stop ids are masked before the floor."""
        held = self._batch_context(len(prompt_ids),
                                   sum(len(ids) + params.max_new_tokens for ids in prompt_ids))
        eos, stops, floor = self._ends(params)
        rows: list[list[int]] = [[] for _ in prompt_ids]
        entries = [(token, seq, pos, pos == len(ids) - 1)
                   for seq, ids in enumerate(prompt_ids) for pos, token in enumerate(ids)]
        while entries:
            masked = [eos, *params.stop_token_ids] if len(rows[entries[-1][1]]) < floor else []
            picks, entries = self._decode_entries(held, entries, masked), []
            for seq, token in picks.items():
                if token in stops:
                    continue
                rows[seq].append(token)
                if len(rows[seq]) < params.max_new_tokens:
                    entries.append((token, seq, len(prompt_ids[seq]) + len(rows[seq]) - 1, True))
        return rows

    def _decode_entries(self, held: tuple[LlamaContext, LlamaBatch],
                        entries: list[tuple[int, int, int, bool]], masked: list[int]) -> dict[int, int]:
        """Entries (id, sequence, position, wants logits) decoded n_batch at a time: the greedy id
        after each entry that wants logits, by sequence (`masked` ids never picked)."""
        (context, batch), picks, n_vocab = held, {}, self._llm.n_vocab()
        for start in range(0, len(entries), self._llm.n_batch):
            part = entries[start:start + self._llm.n_batch]
            raw = batch.batch
            raw.n_tokens = len(part)
            for i, (token, seq, pos, wanted) in enumerate(part):
                raw.token[i], raw.pos[i], raw.n_seq_id[i], raw.logits[i] = token, pos, 1, wanted
                raw.seq_id[i][0] = seq
            context.decode(batch)
            for i, (_, seq, _, wanted) in enumerate(part):
                if wanted:
                    row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(context.ctx, i),
                                                shape=(n_vocab,)).copy()
                    row[masked] = -np.inf
                    picks[seq] = int(np.argmax(row))
        return picks

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

    def _prompt_log_probs(self, prompt_ids: list[int]) -> np.ndarray:
        """The prompt decoded from an empty cache in the binding's own llama_batch (n_batch ids at
        a time), every position flagged for logits as llama-perplexity flags them: Llama.eval()
        keeps them only when the whole context was built with logits_all."""
        llm, rows = self._llm, []
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        for start in range(0, len(prompt_ids), llm.n_batch):
            part = prompt_ids[start:start + llm.n_batch]
            llm._batch.set_batch(batch=part, n_past=start, logits_all=True)
            llm._ctx.decode(llm._batch)
            rows.append(np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx),
                                              shape=(len(part), llm.n_vocab())).copy())
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        return log_softmax(np.concatenate(rows))

    def _logits(self, prompt_ids: list[list[int]]) -> np.ndarray:
        llm = self._llm
        rows = []
        for ids in prompt_ids:
            llm.reset()
            llm.eval(list(ids))  # keeps logits in llm.scores only with logits_all=True
            rows.append(self._last_logits())
        return np.stack(rows)
