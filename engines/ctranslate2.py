"""CTranslate2's Generator as a Generator, on the fixture converted once per content.

Tokenization, decoding and the chat template come from the fixture's own
Hugging Face tokenizer (as CTranslate2's documentation does it); CTranslate2
runs the model. It has no stop strings of its own: a row is cut after the
token whose text completes one, which equals stopping there.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import ctranslate2
import numpy as np
from transformers import AutoTokenizer

from engines.base import (
    Capabilities,
    Completion,
    Deviation,
    Generator,
    LoadedWeights,
    SamplingParams,
    StreamDelta,
    stop_stream,
    text_deltas,
)
from engines.text import HfTokenizer, finish_row, log_softmax
from fixtures.convert import converted


def _convert(model_dir: Path, out: Path, quantization: str | None = None) -> None:
    """The fixture in CTranslate2's format; with `quantization` ("int8", "int8_float32"), its
    weights written quantized (smaller on disk, and loaded so)."""
    from ctranslate2.converters import TransformersConverter

    out.rmdir()  # the converter wants to create the folder itself
    TransformersConverter(str(model_dir), load_as_float16=False).convert(
        str(out), quantization=quantization)
    # A tokenizer without an unk token is written as "unk_token": null, which the runtime's
    # JSON reader refuses ("type must be string, but is null"); "" is what it writes otherwise.
    config_path = out / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("unk_token", "") is None:
        config_path.write_text(json.dumps(config | {"unk_token": ""}, indent=2), encoding="utf-8")


def converter_version() -> str:
    names = ("ctranslate2", "transformers", "torch")
    return " ".join(f"{n}=={importlib.metadata.version(n)}" for n in names) + " unk-fix"


class CTranslate2Generator(HfTokenizer, Generator):
    """ctranslate2.Generator.generate_batch / generate_tokens / forward_batch."""

    capabilities = Capabilities(
        streaming=True,
        chat=True,
        seeded_sampling=False,
        stop_strings=True,
        stop_string_kept=True,
        logprobs=True,  # generate_batch(return_logits_vocab=True): the raw logits of every step
        logits=True,
        prompt_log_probs=True,  # forward_batch: the logits of every position
        token_input=True,
        min_new_tokens=True,
        stop_token_ids=True,
        batching=True,
    )
    # int8 and int8_float32: int8 GEMMs on activations quantized row by row on the fly
    quantized_compute: ClassVar[dict[str, str]] = {"int8": "int8", "int8_float32": "int8"}
    quantized_deviations: ClassVar[dict[str, dict[str, Deviation]]] = {
        quantization: {prop: Deviation(
            f"with {quantization} weights a row's result depends on the rows batched beside it: "
            "measured on small-llama, a left-padded prompt's logits moved by up to 0.018 and its "
            "greedy ids diverged after the first token (float32 passes both properties); "
            "CTranslate2 quantizes each GEMM's input activations to int8 on the fly")
            for prop in ("batch_invariance", "padding_invariance")}
        for quantization in ("int8", "int8_float32")}
    unsupported: ClassVar[dict[str, str]] = {
        "seeded_sampling": "ctranslate2.set_random_seed() reaches a Generator's worker "
                   "threads only when they start: a second call with the same seed samples differently",
        "lora": "CTranslate2 runs converted weights and has no LoRA layers: an adapter is merged "
                "into the model before conversion"}

    def __init__(self) -> None:
        self._gen: ctranslate2.Generator | None = None
        self._tok = None

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        quantized = self.quantization != "none"
        folder = converted(model_dir, f"ctranslate2-{self.quantization}" if quantized else
                           "ctranslate2", converter_version(),
                           lambda src, out: _convert(src, out, self.quantization if quantized
                                                     else None))
        self.weights = LoadedWeights(bytes=(folder / "model.bin").stat().st_size)
        self._tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self._gen = ctranslate2.Generator(str(folder), device=device,
                                          compute_type=self.quantization if quantized else dtype)

    def _close(self) -> None:
        self._gen = None
        self._tok = None

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=True)

    def _tokens(self, ids: Sequence[int]) -> list[str]:
        return self._tok.convert_ids_to_tokens(list(ids))

    def _options(self, params: SamplingParams) -> dict:
        eos = [] if params.ignore_eos or self.eos_token_id is None else [self.eos_token_id]
        options = {"max_length": params.max_new_tokens, "include_prompt_in_result": False,
                   "end_token": [*eos, *params.stop_token_ids], "min_length": params.min_new_tokens}
        if params.greedy:
            return options | {"sampling_topk": 1}
        return options | {"sampling_topk": params.top_k or 0, "sampling_topp": params.top_p,
                          "sampling_temperature": params.temperature}

    def _generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        results = self._gen.generate_batch([self._tokens(p) for p in prompt_ids],
                                           **self._options(params),
                                           return_logits_vocab=params.logprobs is not None)
        return [finish_row(p, r.sequences_ids[0], params, self._decode,
                           r.logits[0] if params.logprobs is not None else None)
                for p, r in zip(prompt_ids, results)]

    def _stream(self, prompt_ids: list[int], params: SamplingParams) -> Iterator[StreamDelta]:
        options = self._options(params)
        del options["include_prompt_in_result"]
        ends = set(options["end_token"])
        steps = itertools.takewhile(lambda t: t not in ends, (  # generate_tokens yields the end id
            step.token_id for step in self._gen.generate_tokens(self._tokens(prompt_ids), **options)))
        yield from stop_stream(text_deltas(steps, self._decode), params.stop, self._decode)

    def _prompt_log_probs(self, prompt_ids: list[int]) -> np.ndarray:
        logits = np.asarray(self._gen.forward_batch([self._tokens(prompt_ids)]), dtype=np.float64)[0]
        return log_softmax(logits[:len(prompt_ids)])

    def _logits(self, prompt_ids: list[list[int]]) -> np.ndarray:
        logits = np.asarray(self._gen.forward_batch([self._tokens(r) for r in prompt_ids]),
                            dtype=np.float32)
        return np.stack([logits[i, len(r) - 1] for i, r in enumerate(prompt_ids)]).copy()
