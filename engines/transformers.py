"""Hugging Face transformers (AutoModelForCausalLM.generate) as a Generator: the reference."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

from engines.base import (
    Capabilities,
    Completion,
    Deviation,
    Generator,
    LoadedWeights,
    SamplingParams,
    StreamDelta,
    cut_at_stop,
    top_logprobs,
)
from engines.text import HfTokenizer


def bitsandbytes_config(quantization: str, dtype: str):
    """bitsandbytes' quantization of the weights as they load: "llm_int8" (LLM.int8(): int8
    weights, outlier features kept in 16 bits) or "nf4" (4-bit NormalFloat, blocks of 64,
    computing in the cell's dtype). Its CPU kernels need AVX2 (this machine's floor)."""
    from transformers import BitsAndBytesConfig

    if quantization == "llm_int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=getattr(torch, dtype))


class _IdStreamer(TextIteratorStreamer):
    """TextIteratorStreamer that also keeps the generated token ids, in order."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ids: list[int] = []

    def put(self, value) -> None:
        if not (self.skip_prompt and self.next_tokens_are_prompt):
            self.ids.extend(int(t) for t in value.reshape(-1).tolist())
        super().put(value)


class TransformersGenerator(HfTokenizer, Generator):
    """generate() on a batch (left padding), TextIteratorStreamer for stream()."""

    capabilities = Capabilities(
        streaming=True,
        chat=True,
        seeded_sampling=True,
        stop_strings=True,
        stop_string_kept=True,  # generate() stops after the token that completes the string
        logprobs=True,  # from generate(output_logits=True): the raw logits of every step
        logits=True,
        prompt_log_probs=True,
        token_input=True,
        min_new_tokens=True,
        stop_token_ids=True,
        batching=True,
        lora=True,  # peft's PeftModel around the loaded model: the adapter unmerged
    )
    quantized_deviations: ClassVar[dict[str, dict[str, Deviation]]] = {
        "llm_int8": {prop: Deviation(
            "LLM.int8() keeps in float16 the input columns holding an outlier (|x| > 6) anywhere in "
            "the rows multiplied together, and quantizes the rest per row: a row's result depends on "
            "the rows, padding and positions computed with it (measured on small-llama: left "
            "padding moved logits by 0.22; greedy ids diverged in a batch and when continuing)",
            "https://arxiv.org/abs/2208.07339")
            for prop in ("batch_invariance", "padding_invariance", "continuation")},
        "nf4": {"batch_invariance": Deviation(
            "bitsandbytes multiplies one row by its 4-bit weights with gemv_4bit and a batch by "
            "the weights dequantized: the rounding differs, and on small-llama greedy ids "
            "diverged at position 8, alone against in a batch of two")},
    }

    def __init__(self) -> None:
        self._model = None
        self._tok = None
        self._device = "cpu"

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        self._tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self._tok.padding_side = "left"
        self._model = self._load_model(model_dir, device, dtype)
        self._device = device

    def _load_model(self, model_dir: Path, device: str, dtype: str):
        """The model object whose generate() and forward the adapter drives; quantized by
        bitsandbytes as it loads where the cell asks for "llm_int8" or "nf4"."""
        quantized = {"quantization_config": bitsandbytes_config(self.quantization, dtype),
                     "device_map": device} if self.quantization != "none" else {}
        model, info = AutoModelForCausalLM.from_pretrained(
            str(model_dir), dtype=getattr(torch, dtype), local_files_only=True,
            output_loading_info=True, **quantized,
        )
        problems = {k: v for k, v in info.items() if v}
        if problems:  # a fixture that does not match its architecture must not load silently
            raise RuntimeError(f"weights do not match the architecture in {model_dir}: {problems}")
        self.weights = LoadedWeights(bytes=model.get_memory_footprint())
        return (model if quantized else model.to(device)).eval()

    def _close(self) -> None:
        self._model = None
        self._tok = None

    def _set_adapter(self, adapter_dir: Path | None) -> None:
        """peft's PeftModel around the model: the LoRA layers beside the base weights (unmerged,
        as peft serves an adapter); None unloads them, leaving the base model as it was."""
        from peft import PeftModel

        if isinstance(self._model, PeftModel):
            self._model = self._model.unload()
        if adapter_dir is not None:
            self._model = PeftModel.from_pretrained(self._model, str(adapter_dir)).eval()

    def _kwargs(self, params: SamplingParams) -> dict:
        tok = self._tok
        kw = {"max_new_tokens": params.max_new_tokens, "pad_token_id": tok.pad_token_id}
        if params.greedy:
            kw |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        else:
            kw |= {"do_sample": True, "temperature": params.temperature,
                   "top_p": params.top_p, "top_k": params.top_k}
        stops = self._stop_ids(params)
        kw["eos_token_id"] = stops or None
        if params.ignore_eos and not params.stop_token_ids:  # EOS masked until the end
            kw["min_new_tokens"] = params.max_new_tokens
        elif params.min_new_tokens:
            kw["min_new_tokens"] = params.min_new_tokens
        if params.stop:
            kw |= {"stop_strings": list(params.stop), "tokenizer": tok}
        return kw

    def _seed(self, params: SamplingParams) -> None:
        # A fresh random seed when none is given, so one call's seed never leaks into the next.
        torch.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))

    def _batch(self, prompt_ids: list[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids in prompt_ids)
        pad = self._tok.pad_token_id
        ids = [[pad] * (width - len(row)) + row for row in prompt_ids]
        mask = [[0] * (width - len(row)) + [1] * len(row) for row in prompt_ids]
        return {
            "input_ids": torch.tensor(ids, device=self._device),
            "attention_mask": torch.tensor(mask, device=self._device),
        }

    def _stop_ids(self, params: SamplingParams) -> list[int]:
        """Ids that end a row: the model's EOS (unless ignored) and the caller's stop ids."""
        eos = [] if params.ignore_eos or self.eos_token_id is None else [self.eos_token_id]
        return [*eos, *params.stop_token_ids]

    def _finish(self, generated: list[int], params: SamplingParams) -> tuple[list[int], str]:
        """Cut one row where generation really ended (rows are padded after they finish)."""
        stops = set(self._stop_ids(params))
        end = next((i for i, t in enumerate(generated) if t in stops), None)
        if end is not None:
            generated = generated[:end]
        cut, hit = cut_at_stop(generated, params.stop,
                               lambda ids: self._tok.decode(ids, skip_special_tokens=True))
        if hit:
            return cut, "stop"
        return generated, "eos" if end is not None else "length"

    def _generate(self, prompt_ids: list[list[int]], params: SamplingParams,
                  streamer=None) -> list[Completion]:
        self._seed(params)
        batch = self._batch(prompt_ids)
        kw = self._kwargs(params)
        if params.logprobs is not None:
            kw |= {"output_logits": True, "return_dict_in_generate": True}
        with torch.inference_mode():
            out = self._model.generate(**batch, **kw, streamer=streamer)
        sequences = out if params.logprobs is None else out.sequences
        width = batch["input_ids"].shape[1]
        completions = []
        for r, (ids, row) in enumerate(zip(prompt_ids, sequences[:, width:].tolist())):
            generated, reason = self._finish(row, params)
            text = self._tok.decode(generated, skip_special_tokens=True)
            logprobs = None if params.logprobs is None else tuple(
                top_logprobs(out.logits[step][r].float().cpu().numpy(), token, params.logprobs)
                for step, token in enumerate(generated))
            completions.append(Completion(text, tuple(generated), tuple(ids), reason, logprobs))
        return completions

    def _logits(self, prompt_ids: list[list[int]]) -> np.ndarray:
        """One forward pass over the left-padded batch; position ids count real tokens only."""
        batch = self._batch(prompt_ids)
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            out = self._model(**batch, position_ids=positions)
        return out.logits[:, -1, :].float().cpu().numpy().copy()

    def _prompt_log_probs(self, prompt_ids: list[int]) -> np.ndarray:
        """One forward pass, no cache; the log-softmax of every position's logits in float64."""
        with torch.inference_mode():
            logits = self._model(**self._batch([prompt_ids])).logits[0]
        if logits.shape[0] != len(prompt_ids):
            raise RuntimeError(f"{self.id}: the forward pass gave {logits.shape[0]} rows of logits "
                               f"for {len(prompt_ids)} ids (an export that keeps the last only)")
        return torch.log_softmax(logits.double(), -1).cpu().numpy()

    def _stream(self, prompt_ids: list[int], params: SamplingParams) -> Iterator[StreamDelta]:
        streamer = _IdStreamer(self._tok, skip_prompt=True, skip_special_tokens=True)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self._generate([prompt_ids], params, streamer=streamer)
            except BaseException as exc:  # re-raised in the caller's thread below
                errors.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        stops, sent = set(self._stop_ids(params)), 0
        for text in streamer:  # ids are recorded before their text is queued
            ids = tuple(t for t in streamer.ids[sent:] if t not in stops)
            sent = len(streamer.ids)
            if text or ids:
                yield StreamDelta(text, ids)
        worker.join()
        if errors:
            raise errors[0]
