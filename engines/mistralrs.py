"""mistral.rs (Rust, on candle) as a Generator, in process, through its `mistralrs` wheel.

The fixture's folder is loaded as it is: `Runner(which=Which.Plain(model_id=<folder>,
arch=Architecture.Llama, dtype=ModelDType.F32, tokenizer_json=<its tokenizer.json>))`, with
`in_situ_quant` for the quantizations it makes while loading (ISQ: Q8_0, Q4_0). Its Python API
takes text and answers text: a prompt's ids are decoded to their text (mistral.rs tokenizes it
again, adding BOS as the fixture's tokenizer does), and the ids of an answer are its text
encoded with the engine's own tokenizer (`tokenize_text`). Greedy is temperature 0 with top_k 1;
EOS is ignored with `ignore_eos`. A completion request does not stream in the Python API (only
a chat request does, and a chat request given the prompt as a pre-templated string answered other
text than the completion: measured, ' ne measure…' against 'model�� it…' for the prompt '0'), so
streaming is declared unsupported. `usage` carries its own tok/s; the benchmark times the calls
itself, as for every engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from mistralrs import (
    Architecture,
    ChatCompletionRequest,
    CompletionRequest,
    ModelDType,
    Runner,
    Which,
)

from engines.base import (
    Capabilities,
    ChatMessage,
    Completion,
    Deviation,
    Generator,
    InvalidParameterError,
    LoadedWeights,
    SamplingParams,
)
from engines.formats.weights_read import isq_read_bytes

ARCHITECTURES = {"llama": Architecture.Llama, "mistral": Architecture.Mistral}
ISQ = {"q8_0": "Q8_0", "q4_0": "Q4_0"}
ISQ_BITS = {"q8_0": 8.5, "q4_0": 4.5}
"""Bits a weight of each in-situ quantization: blocks of 32 with a float16 scale (GGML's)."""
"""The registry's quantization -> mistral.rs's in-situ quantization type."""
TEXT_ONLY = ("mistral.rs's Python API answers text: ids re-encoded from the text can differ from "
             "those generated where a token is part of a UTF-8 character (it comes back as U+FFFD)")
MODEL = "fixture"


class MistralRsGenerator(Generator):
    """mistralrs.Runner.send_completion_request, one prompt after another."""

    capabilities = Capabilities(
        streaming=False,
        chat=True,  # a chat request: its template from tokenizer_config, its prompt counted in usage
        seeded_sampling=False,
        stop_strings=True,
        stop_string_kept=False,
        logprobs=False,
        logits=False,
        token_input=False,
        min_new_tokens=False,
        stop_token_ids=False,
        batching=True,  # the list is run one prompt after another
        batch_decode=False,
    )
    prefix_cache = "switch"
    prefix_cache_switch = "Runner(prefix_cache_n=0)"
    # in-situ Q8_0 / Q4_0: candle quantizes activations to Q8 blocks for integer dot products
    quantized_compute: ClassVar[dict[str, str]] = {"q8_0": "int8", "q4_0": "int8"}
    deviations: ClassVar[dict[str, Deviation]] = {
        name: Deviation(TEXT_ONLY) for name in ("length_contract", "greedy_parity", "stop_strings")}
    unsupported: ClassVar[dict[str, str]] = {
        "streaming": "send_completion_request returns the whole answer (CompletionRequest has no "
                     "stream); a chat request streams, but not the same completion",
        "seeded_sampling": "no per-request seed, and Runner(seed=...) raises on the CPU build",
        "logprobs": "completion requests carry no log-probabilities (chat ones key them by text)",
        "logits": "the Python API has no forward pass that returns logits",
        "token_input": "the Python API takes a prompt as text",
        "min_new_tokens": "no minimum length (only ignore_eos)",
        "stop_token_ids": "no stop token ids (only stop strings)",
        "lora": "adapters are given at load (Which.Lora), not set per call; not wired yet",
    }

    def __init__(self) -> None:
        self._runner: Runner | None = None
        self._eos: int | None = None

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        arch = ARCHITECTURES.get(config.get("model_type", ""))
        if arch is None:
            raise InvalidParameterError(f"mistralrs: model_type {config.get('model_type')!r} is "
                                        f"not one of {', '.join(ARCHITECTURES)}")
        eos = config.get("eos_token_id")
        self._eos = eos[0] if isinstance(eos, list) else eos
        which = Which.Plain(model_id=str(model_dir), arch=arch, dtype=ModelDType.F32,
                            tokenizer_json=str(model_dir / "tokenizer.json"))
        self._runner = Runner(which=which, prefix_cache_n=16 if self.cache_prefixes else 0,
                              in_situ_quant=ISQ.get(self.quantization))
        bits = ISQ_BITS.get(self.quantization)  # what a decode step reads: the in-memory Q8_0 / Q4_0
        self.weights = LoadedWeights(
            bytes=sum(p.stat().st_size for p in model_dir.glob("*.safetensors")),
            read_bytes=isq_read_bytes(model_dir, bits) if bits else None)

    def _close(self) -> None:
        self._runner = None

    @property
    def eos_token_id(self) -> int | None:
        return self._eos if self._runner is not None else None

    def _tokenize(self, text: str) -> list[int]:
        return list(self._runner.tokenize_text(text, True, None))

    def _ids(self, text: str) -> tuple[int, ...]:
        return tuple(self._runner.tokenize_text(text, False, None)) if text else ()

    def _text(self, ids) -> str:
        return self._runner.detokenize_text(list(ids), True)

    def _sampling(self, params: SamplingParams) -> dict:
        sampling = ({"temperature": 0.0, "top_k": 1} if params.greedy else
                    {"temperature": params.temperature, "top_p": params.top_p,
                     "top_k": params.top_k or None})
        return {"model": MODEL, "max_tokens": params.max_new_tokens, "ignore_eos": params.ignore_eos,
                "stop_seqs": list(params.stop) or None, **sampling}

    def _generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        out = []
        for ids in prompt_ids:
            answer = self._runner.send_completion_request(
                CompletionRequest(prompt=self._text(ids), **self._sampling(params)))
            choice = answer.choices[0]
            generated = self._ids(choice.text)
            reason = ("stop" if params.stop and choice.finish_reason == "stop" else
                      "length" if choice.finish_reason == "length" else "eos")
            out.append(Completion(choice.text, generated, tuple(ids), reason,
                                  prompt_tokens=answer.usage.prompt_tokens,
                                  generated_tokens=answer.usage.completion_tokens))
        return out

    def _chat(self, messages: list[ChatMessage], params: SamplingParams) -> Completion:
        """A chat request: mistral.rs applies the model's template itself and answers text; the
        prompt it fed is known by its count (usage.prompt_tokens), not by its ids."""
        answer = self._runner.send_chat_completion_request(ChatCompletionRequest(
            messages=[{"role": m.role, "content": m.content} for m in messages],
            **self._sampling(params)))
        choice = answer.choices[0]
        text = choice.message.content or ""
        reason = ("stop" if params.stop and choice.finish_reason == "stop" else
                  "length" if choice.finish_reason == "length" else "eos")
        return Completion(text, self._ids(text), (), reason, None, answer.usage.prompt_tokens)
