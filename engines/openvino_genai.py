"""OpenVINO GenAI's LLMPipeline (Intel's CPU engine) as a Generator.

The fixture is exported once per content and exporter version (fixtures/convert.py) with
optimum-intel (`optimum-cli export openvino`, FP32 weights; engines/openvino.py), which also
converts its tokenizer to OpenVINO (openvino-tokenizers). Tokenization, decoding and the chat template are the
pipeline's own. Each prompt is generated from its token ids (ov.TokenizedInputs), one prompt at
a time; streaming goes through an ov.StreamerBase that receives the token ids as they come.
"""

from __future__ import annotations

import queue
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import openvino as ov_runtime
import openvino_genai as ov

from engines.base import (
    Capabilities,
    ChatMessage,
    Completion,
    Deviation,
    Generator,
    LoadedWeights,
    SamplingParams,
    StreamDelta,
    text_deltas,
)
from engines.openvino import exported

DONE = object()


def plugin_weights(folder: Path, device: str) -> LoadedWeights:
    """The bytes of weights the plugin reads, and why: the float32 export's, halved where the
    device's default inference precision is bfloat16 or float16 (OpenVINO's CPU plugin picks
    bfloat16 on a CPU with AVX-512 BF16 or AMX and converts the weights when it compiles; measured
    here on SmolLM2-135M's shape: 48.6 tok/s as shipped, 34.4 with INFERENCE_PRECISION_HINT f32)."""
    exported_bytes = sum(p.stat().st_size for p in folder.glob("openvino_model.bin"))
    hint = ov_runtime.Core().get_property(device.upper(), "INFERENCE_PRECISION_HINT").get_type_name()
    if hint in ("bf16", "f16"):
        return LoadedWeights(exported_bytes // 2, note=(
            f"computes in {hint}, the plugin's default inference precision on this CPU: the "
            "float32 export's weights are read in 16 bits"))
    return LoadedWeights(exported_bytes, note=f"computes in {hint}")


def compute_dtype(device: str) -> str:
    """The dtype the plugin computes in on `device` (its INFERENCE_PRECISION_HINT)."""
    hint = ov_runtime.Core().get_property(device.upper(), "INFERENCE_PRECISION_HINT").get_type_name()
    return {"bf16": "bfloat16", "f16": "float16"}.get(hint, "float32")


class _Ids(ov.StreamerBase):
    """Hands every generated token id to a queue (the pipeline runs in another thread)."""

    def __init__(self, sink: queue.Queue) -> None:
        super().__init__()
        self.sink = sink

    def write(self, token) -> ov.StreamingStatus:
        for t in token if isinstance(token, list) else [token]:
            self.sink.put(int(t))
        return ov.StreamingStatus.RUNNING

    def end(self) -> None:
        pass


class OpenVinoGenaiGenerator(Generator):
    """ov.LLMPipeline(<exported folder>, "CPU").generate on token ids, one prompt at a time."""

    capabilities = Capabilities(
        streaming=True,
        chat=True,
        seeded_sampling=True,  # GenerationConfig.rng_seed
        stop_strings=True,
        stop_string_kept=False,  # GenerationConfig's default: include_stop_str_in_output off
        logprobs=False,
        logits=False,
        token_input=True,
        min_new_tokens=True,
        stop_token_ids=True,
        batching=True,  # rows of one length, greedy: one batch; else one prompt after another
    )
    prefix_cache = "switch"
    prefix_cache_switch = "LLMPipeline(..., scheduler_config=SchedulerConfig(enable_prefix_caching=False))"
    deviations: ClassVar[dict[str, Deviation]] = {
        "call_order_independence": Deviation(
            reason="prefix caching, on by default in LLMPipeline on the CPU, changes greedy ids: "
                   "after a 1-token call on 'The cat sat', generating from the same prompt again "
                   "diverges from a fresh pipeline at position 10; with "
                   "SchedulerConfig(enable_prefix_caching=False) both agree"),
        "eos_and_stops": Deviation(
            reason="the same whole-token trimming on the trained model's real text: the stop "
                   "'France' cuts 'The capital of France is Paris.' to 'The capital of' (the "
                   "token ' France' dropped whole, its space with it), where the text before the "
                   "string is 'The capital of '; the answer's own end at the EOS is exact"),
        "stop_strings": Deviation(
            reason="the pipeline finds the stop string but trims its output by whole tokens: for "
                   "the stop 'l\\x03 ', completed by the third of the tokens 'ol', '\\x03', ' a…', it "
                   "returns 'ol' (the text before the string is 'o'), and with "
                   "include_stop_str_in_output 'ol\\x03' (the string only in part)"),
    }
    unsupported: ClassVar[dict[str, str]] = {
        "logprobs": "LLMPipeline's EncodedResults gives one score per sequence, not each token's "
                    "log-probability among the most likely",
        "logits": "LLMPipeline has no low-level forward pass that returns logits",
        "lora": "LLMPipeline takes adapters (ov_genai.Adapter, AdapterConfig at construction), "
                "but without logits or log-probabilities only greedy ids could be compared; "
                "this adapter does not set one yet",
    }

    def __init__(self) -> None:
        self._pipe = None
        self._tok = None
        self._eos: int | None = None

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        folder = exported(model_dir)
        off = {}
        if not self.cache_prefixes:  # a scheduler config makes the continuous-batching pipeline
            off["scheduler_config"] = scheduler = ov.SchedulerConfig()
            scheduler.enable_prefix_caching, scheduler.cache_size = False, 1  # GB of KV cache
        self._pipe = ov.LLMPipeline(str(folder), device.upper(), **off)
        self._tok = self._pipe.get_tokenizer()
        self.weights = plugin_weights(folder, device)
        # what it really computes in: the plugin's own choice (its tolerances and its compute
        # peak follow it: bench/quality.tolerance, bench/roofline.roofline)
        self.dtype = compute_dtype(device)
        self._eos = int(self._tok.get_eos_token_id())

    def _close(self) -> None:
        self._pipe = self._tok = None

    @property
    def eos_token_id(self) -> int | None:
        return self._eos if self._pipe is not None else None

    def _tokenize(self, text: str) -> list[int]:
        return [int(t) for t in np.asarray(self._tok.encode(text).input_ids.data).reshape(-1)]

    def _decode(self, ids) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=True) if ids else ""

    def _config(self, params: SamplingParams) -> ov.GenerationConfig:
        config = self._pipe.get_generation_config()
        config.max_new_tokens = params.max_new_tokens
        config.min_new_tokens = params.max_new_tokens if params.ignore_eos else params.min_new_tokens
        config.ignore_eos = params.ignore_eos
        config.stop_token_ids = set(params.stop_token_ids)
        config.stop_strings = set(params.stop)
        config.do_sample = not params.greedy
        if not params.greedy:
            config.temperature, config.top_p, config.top_k = (params.temperature, params.top_p,
                                                              params.top_k or 0)
            config.rng_seed = params.seed if params.seed is not None else secrets.randbits(31)
        return config

    def _inputs(self, prompt_ids: list[int], *more: list[int]) -> ov.TokenizedInputs:
        ids = np.asarray([prompt_ids, *more], dtype=np.int64)
        return ov.TokenizedInputs(ov_runtime.Tensor(ids), ov_runtime.Tensor(np.ones_like(ids)))

    def _complete_one(self, prompt_ids: list[int], params: SamplingParams) -> Completion:
        result = self._pipe.generate(self._inputs(prompt_ids), self._config(params))
        return self._row(prompt_ids, [int(t) for t in result.tokens[0]], params)

    def _row(self, prompt_ids: list[int], ids: list[int], params: SamplingParams) -> Completion:
        """One row's Completion from the ids the pipeline gave it."""
        stops = {*params.stop_token_ids, *(() if params.ignore_eos else (self._eos,))}
        end = next((i for i, t in enumerate(ids) if t in stops), None)
        text = self._decode(ids[:end])
        if end is not None:
            return Completion(text, tuple(ids[:end]), tuple(prompt_ids), "eos")
        # the pipeline ends a natural answer with its EOS id, and trims a stop string's tokens
        # (no EOS then): an early end without the EOS, where stop strings were asked, is theirs
        early = len(ids) < params.max_new_tokens
        hit = any(s in text for s in params.stop) or (bool(params.stop) and early)
        reason = "stop" if hit else "eos" if early else "length"
        return Completion(text, tuple(ids), tuple(prompt_ids), reason)

    def _generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        """Rows of one length, greedy, no stop strings: one batch (a [rows, length] input);
        otherwise one prompt after another (no padding is asked of the pipeline)."""
        if (len(prompt_ids) > 1 and params.greedy and not params.stop
                and len({len(ids) for ids in prompt_ids}) == 1):
            result = self._pipe.generate(self._inputs(*prompt_ids), self._config(params))
            return [self._row(ids, [int(t) for t in row], params)
                    for ids, row in zip(prompt_ids, result.tokens, strict=True)]
        return [self._complete_one(ids, params) for ids in prompt_ids]

    def _stream(self, prompt_ids: list[int], params: SamplingParams) -> Iterator[StreamDelta]:
        sink: queue.Queue = queue.Queue()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self._pipe.generate(self._inputs(prompt_ids), self._config(params), _Ids(sink))
            except BaseException as exc:  # re-raised in the caller's thread below
                errors.append(exc)
            sink.put(DONE)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        stops = {*params.stop_token_ids, *(() if params.ignore_eos else (self._eos,))}
        ids = iter(sink.get, DONE)
        yield from text_deltas((t for t in ids if t not in stops), self._decode)
        worker.join()
        if errors:
            raise errors[0]

    def _chat_ids(self, messages: list[ChatMessage]) -> list[int]:
        turns = [{"role": m.role, "content": m.content} for m in messages]
        text = self._tok.apply_chat_template(turns, add_generation_prompt=True)
        encoded = self._tok.encode(text, add_special_tokens=False)
        return [int(t) for t in np.asarray(encoded.input_ids.data).reshape(-1)]
