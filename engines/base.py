"""The engine contracts: what every adapter offers, with shapes and units.

Two small abstract classes, `Generator` and `Embedder`. An adapter implements a few primitives
(a Generator: load, tokenize, generation from token ids); the public methods here check inputs,
parameters, capabilities and the loaded state once, for every engine, and call them. An adapter
declares its `Capabilities`; a property needing one it lacks is skipped with that reason.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from core.details import Capabilities
from core.errors import unknown
from engines import DTYPE_ENV, DTYPES, ENGINES, QUANT_ENV, QUANTIZATIONS, registered_id
from engines.params import (
    MAX_LOGPROBS,
    ChatMessage,
    Completion,
    Deviation,
    EngineNotLoadedError,
    FinishReason,
    InvalidParameterError,
    LoadedWeights,
    SamplingParams,
    StreamDelta,
    UnsupportedCapabilityError,
    check_prompt_ids,
    check_prompts,
)
from engines.text import as_rows, cut_at_stop, stop_stream, text_deltas, top_logprobs

__all__ = [  # what adapters and the suites import from here
    "MAX_LOGPROBS", "Capabilities", "ChatMessage", "Completion", "Deviation", "Embedder", "Engine",
    "EngineNotLoadedError", "FinishReason", "Generator", "InvalidParameterError", "LoadedWeights",
    "SamplingParams", "StreamDelta", "UnsupportedCapabilityError", "as_rows", "check_prompt_ids",
    "check_prompts", "cut_at_stop", "stop_stream", "text_deltas", "top_logprobs",
]

REDUCED_PRECISION_DEVIATIONS = {prop: Deviation(
    "computing in bfloat16 or float16, logits move by tenths when the kernel's shape changes (a "
    "prompt alone or in a batch, left-padded, continued from its cache: 0.2 measured with "
    "transformers in bfloat16 on an H200 and on an AVX-512 CPU, where float32 stays below 1e-4), "
    "so greedy ids part where two tokens are that close, and so does the argmax; the float32 "
    "cells hold the property exactly")
    for prop in ("batch_invariance", "padding_invariance", "continuation")}
"""What a reduced dtype departs from in any engine (a property failing in a bfloat16 cell is ⚠️
with this reason, not ❌); its numeric tolerances widen as bench/quality.tolerance states."""

# Which SamplingParams field needs which capability: asked of an engine without it, the call
# raises UnsupportedCapabilityError instead of silently answering something else.
PARAM_CAPABILITIES = (("seed", "seeded_sampling"), ("stop", "stop_strings"),
                      ("min_new_tokens", "min_new_tokens"), ("stop_token_ids", "stop_token_ids"),
                      ("logprobs", "logprobs"))


class Engine(abc.ABC):
    """What both contracts share: an id, capabilities, load and close, the loaded state."""

    id: ClassVar[str] = ""
    """The registry's id (engines/__init__.py), set when the class is defined."""
    kind: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    deviations: ClassVar[dict[str, Deviation]] = {}
    """Conformance property name -> why this engine departs from it (shown as ⚠️ deviation)."""
    quantized_deviations: ClassVar[dict[str, dict[str, Deviation]]] = {}
    """Quantization -> deviations that hold under it only (e.g. int8 kernels that are not
    batch invariant), added to `deviations` for a cell of that quantization."""

    @classmethod
    def deviations_under(cls, quantization: str, dtype: str = "float32") -> dict[str, Deviation]:
        """The deviations declared for the engine under `quantization`, computing in `dtype`
        (a reduced dtype adds REDUCED_PRECISION_DEVIATIONS)."""
        reduced = REDUCED_PRECISION_DEVIATIONS if dtype != "float32" else {}
        return {**reduced, **cls.deviations, **cls.quantized_deviations.get(quantization, {})}
    unsupported: ClassVar[dict[str, str]] = {}
    """Capability the adapter declares False -> why (shown where the property is skipped)."""
    _is_loaded: bool = False
    dtype: str = "float32"
    """What load() computes in (engines/__init__.DTYPES)."""
    quantization: str = "none"
    """The quantization load() was asked for (engines/__init__.QUANTIZATIONS)."""
    quantized_compute: ClassVar[dict[str, str]] = {}
    """Quantization -> what its matmuls compute in where not `dtype` ("int8": activations
    quantized on the fly); the peak its prefill is held to (test_compute_peak)."""

    @property
    def compute_dtype(self) -> str:
        return self.quantized_compute.get(self.quantization, self.dtype)
    weights: LoadedWeights = LoadedWeights()
    """What load() loaded, where the adapter knows it; `_load` sets it once."""
    prefix_cache: ClassVar[str] = "none"
    """Whether the engine keeps a prefix cache (keys and values of prompts it has seen, reused
    for a prompt that starts the same): "none", "switch" (on as shipped; load(cache_prefixes=
    False) turns it off, as `prefix_cache_switch` says), "no switch" (kept, no way to turn
    it off) or "unknown" (a server someone else runs). The bench rung times with it off where
    it can, and the detector says what it saw."""
    prefix_cache_switch: ClassVar[str] = ""
    cache_prefixes: bool = True
    """What load() was asked: keep the engine's prefix cache as shipped (True) or turn it off."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        engine_id = registered_id(f"{cls.__module__}:{cls.__qualname__}")
        if engine_id is None:
            return  # a base or a subclass of a registered adapter: it keeps its parent's id
        if ENGINES[engine_id].kind != cls.kind:
            msg = f"{cls.__qualname__} is registered as a {ENGINES[engine_id].kind} engine, not {cls.kind}"
            raise TypeError(msg)
        cls.id = engine_id

    @classmethod
    def check_device(cls, device: str) -> None:
        """Refuse a device the registry does not declare for the engine, naming the valid ones."""
        devices = ENGINES[cls.id].devices if cls.id in ENGINES else ("cpu",)
        if device not in devices:
            raise InvalidParameterError(f"{cls.id}: device {device!r} is not one of {devices}")

    @classmethod
    def check_dtype(cls, dtype: str) -> str:
        """Refuse a dtype the registry does not declare for the engine, naming the valid ones."""
        dtypes = ENGINES[cls.id].dtypes if cls.id in ENGINES else DTYPES
        if dtype not in dtypes:
            raise InvalidParameterError(f"{cls.id}: dtype {dtype!r} is not one of {dtypes}")
        return dtype

    @classmethod
    def default_dtype(cls, device: str) -> str:
        return ENGINES[cls.id].default_dtype(device) if cls.id in ENGINES else "float32"

    def require(self, capability: str) -> None:
        """Raise UnsupportedCapabilityError unless the adapter declares `capability`."""
        if not getattr(self.capabilities, capability):
            raise UnsupportedCapabilityError(self.id, capability)

    def check_loaded(self) -> None:
        """Raise EngineNotLoadedError unless load() has succeeded (and close() has not run)."""
        if not self._is_loaded:
            raise EngineNotLoadedError(f"{self.id}: call load() before using the engine")

    def load(self, model_dir: Path, *, device: str = "cpu", dtype: str | None = None,
             quantization: str | None = None, cache_prefixes: bool = True) -> None:
        """Load the model from a local folder (Hugging Face layout). Never downloads.

        `dtype`: what the engine computes in, one its registry entry offers; None: the cell's
        ($INFERMATRIX_DTYPE), else the device's default (`EngineEntry.default_dtype`: float32 on
        the CPU, bfloat16 on CUDA where offered).
        `quantization`: one the registry says the adapter offers ("q4_0", "int8", ...), which
        `_load` reads as self.quantization; None: the cell's ($INFERMATRIX_QUANTIZATION), else
        "none" (the unquantized weights). `cache_prefixes=False`: the engine's prefix cache off,
        where it has a switch (`prefix_cache`); `_load` reads it as self.cache_prefixes."""
        self.check_device(device)
        self.dtype = self.check_dtype(dtype or os.environ.get(DTYPE_ENV) or self.default_dtype(device))
        self.cache_prefixes = cache_prefixes
        self.quantization = self.check_quantization(
            quantization if quantization is not None else os.environ.get(QUANT_ENV) or "none")
        self.weights = LoadedWeights()  # nothing left from an earlier load
        self._load(Path(model_dir), device, self.dtype)
        self._is_loaded = True

    @classmethod
    def check_quantization(cls, quantization: str) -> str:
        """Refuse an unknown quantization, or one the engine does not offer, naming the valid."""
        if quantization not in QUANTIZATIONS:
            raise InvalidParameterError(unknown("quantization", quantization, QUANTIZATIONS))
        offered = ENGINES[cls.id].quantizations if cls.id in ENGINES else ("none",)
        if quantization not in offered:
            raise InvalidParameterError(f"{cls.id} does not offer quantization {quantization!r}; "
                                        f"it offers {', '.join(offered)}")
        return quantization

    def close(self) -> None:
        """Free the model. The adapter may be loaded again afterwards."""
        if self._is_loaded:
            self._close()
        self._is_loaded = False

    @abc.abstractmethod
    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        """Load from `model_dir` on `device` (already checked) in `dtype` ("float32", ...)."""

    def _close(self) -> None:
        """Free what _load made."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Generator(Engine):
    """A causal language model engine.

    An adapter implements `_load`, `_tokenize` and `_generate` (completion of token ids,
    the primitive), and where it declares the capability, `_stream`, `_chat_ids` and
    `_logits`. The public methods below check everything once and call them.
    """

    kind = "generation"

    parity_top_k: ClassVar[int] = 5
    """Greedy parity with the reference (transformers): where the ids first diverge, each side's
    token must be among the other's `parity_top_k` most likely tokens."""

    logprob_tolerance: ClassVar[float] = 1e-3
    """Log-probabilities (nats) may differ from the reference's by at most this (property logprobs)."""

    tokenizer_is_reference: ClassVar[bool] = False
    """tokenize() is the fixture's tokenizer.json itself, not the engine's (a server with no
    tokenize endpoint): the tokenizer properties have nothing of the engine's to hold."""

    # --- what an adapter implements ---------------------------------------------------------

    @abc.abstractmethod
    def _tokenize(self, text: str) -> list[int]:
        """Token ids the engine feeds the model for `text`, special tokens included."""

    @abc.abstractmethod
    def _generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        """Complete each row of ids (fed as they are, no BOS added); one Completion per row.

        Rows are non-empty, params.max_new_tokens >= 1 and every parameter set is one the
        adapter declares (checked by the caller)."""

    def _stream(self, prompt_ids: list[int], params: SamplingParams) -> Iterator[StreamDelta]:
        """Deltas of one completion of `prompt_ids`; joined, they equal _generate()'s."""
        raise UnsupportedCapabilityError(self.id, "streaming")

    def _chat_ids(self, messages: list[ChatMessage]) -> list[int]:
        """The ids of `messages` under the model's chat template, with the generation prompt."""
        raise UnsupportedCapabilityError(self.id, "chat")

    def _chat(self, messages: list[ChatMessage], params: SamplingParams) -> Completion:
        """Complete `messages` (params checked, max_new_tokens >= 1): their template's ids
        (_chat_ids), generated. An adapter whose API takes messages overrides this instead."""
        return self._generate(check_prompt_ids([self._chat_ids(messages)]), params)[0]

    def _logits(self, prompt_ids: list[list[int]]) -> np.ndarray:
        """float32 (len(prompt_ids), vocab) logits at each row's last token, one forward pass."""
        raise UnsupportedCapabilityError(self.id, "logits")

    def _set_adapter(self, adapter_dir: Path | None) -> None:
        """Apply the LoRA adapter in `adapter_dir` (peft's format) to every later call, or none."""
        raise UnsupportedCapabilityError(self.id, "lora")

    # --- the contract callers use ------------------------------------------------------------

    @property
    def eos_token_id(self) -> int | None:
        """The model's end-of-sequence id, if it has one."""
        return None

    def tokenize(self, text: str) -> list[int]:
        """Token ids the engine feeds the model for `text`, special tokens included."""
        self.check_loaded()
        return self._tokenize(text)

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        """Complete each prompt; returns one Completion per prompt, in order.

        Raises InvalidParameterError on an empty list, a non-string prompt or a prompt that
        encodes to no tokens."""
        check_prompts(prompts)
        return self._generate_checked([self.tokenize(p) for p in prompts], params)

    def generate_from_ids(self, prompt_ids: Sequence[Sequence[int]],
                          params: SamplingParams) -> list[Completion]:
        """generate() with prompts given as token ids (fed as they are, no BOS added)."""
        self.require("token_input")
        return self._generate_checked(prompt_ids, params)

    def chat(self, messages: Sequence[ChatMessage], params: SamplingParams) -> Completion:
        """Apply the model's chat template (with the generation prompt) and complete it."""
        self.require("chat")
        self._check_params(params)
        if params.max_new_tokens == 0:
            return Completion("", (), tuple(self._chat_ids(list(messages))), "length")
        return self._chat(list(messages), params)

    def stream(self, prompt: str, params: SamplingParams) -> Iterator[StreamDelta]:
        """Yield deltas of one completion; their texts and ids, joined, equal generate()'s."""
        self.require("streaming")
        check_prompts([prompt])
        yield from self._stream_checked(self.tokenize(prompt), params)

    def stream_from_ids(self, prompt_ids: Sequence[int],
                        params: SamplingParams) -> Iterator[StreamDelta]:
        """stream() with the prompt given as token ids (fed as they are, no BOS added)."""
        self.require("streaming")
        self.require("token_input")
        yield from self._stream_checked(prompt_ids, params)

    def _stream_checked(self, prompt_ids: Sequence[int], params: SamplingParams
                        ) -> Iterator[StreamDelta]:
        ids = self._checked(check_prompt_ids([prompt_ids]), params)[0]
        if params.max_new_tokens > 0:
            yield from self._stream(ids, params)

    def next_token_logits(self, prompts: Sequence[str]) -> np.ndarray:
        """Low-level forward pass: float32 (len(prompts), vocab) logits at each prompt's last token."""
        check_prompts(prompts)
        return self.next_token_logits_from_ids([self.tokenize(p) for p in prompts])

    def next_token_logits_from_ids(self, prompt_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """next_token_logits() with prompts given as token ids (fed as they are)."""
        self.require("logits")
        self.check_loaded()
        return self._logits(check_prompt_ids(prompt_ids))

    def _prompt_log_probs(self, prompt_ids: list[int]) -> np.ndarray:
        """float (len(prompt_ids), vocab) log-probabilities at every position of one prompt."""
        raise UnsupportedCapabilityError(self.id, "prompt_log_probs")

    def prompt_log_probs(self, prompt_ids: Sequence[int]) -> np.ndarray:
        """Teacher-forced, one forward pass: row j is the distribution of the id after
        prompt_ids[:j + 1], as log-probabilities (ids an engine does not give are -inf)."""
        self.require("prompt_log_probs")
        self.check_loaded()
        return self._prompt_log_probs(check_prompt_ids([prompt_ids])[0])

    def set_adapter(self, adapter_dir: Path | None) -> None:
        """Apply a LoRA adapter (a folder in peft's format: adapter_config.json and
        adapter_model.safetensors) at run time, unmerged, to every later call; None removes it."""
        self.require("lora")
        self.check_loaded()
        if adapter_dir is not None and not (Path(adapter_dir) / "adapter_config.json").is_file():
            raise InvalidParameterError(f"{self.id}: {adapter_dir} is not a peft adapter folder "
                                        "(no adapter_config.json in it)")
        self._set_adapter(None if adapter_dir is None else Path(adapter_dir))

    def _generate_checked(self, prompt_ids: Sequence[Sequence[int]],
                          params: SamplingParams) -> list[Completion]:
        rows = self._checked(check_prompt_ids(prompt_ids), params)
        if params.max_new_tokens == 0:
            return [Completion("", (), tuple(ids), "length") for ids in rows]
        return self._generate(rows, params)

    def _checked(self, rows: list[list[int]], params: SamplingParams) -> list[list[int]]:
        """`rows`, once the engine is loaded and declares every parameter `params` sets."""
        self._check_params(params)
        return rows

    def _check_params(self, params: SamplingParams) -> None:
        """Raise unless the engine is loaded and declares every parameter `params` sets."""
        self.check_loaded()
        for name, capability in PARAM_CAPABILITIES:
            if getattr(params, name) != SamplingParams.__dataclass_fields__[name].default:
                self.require(capability)


class Embedder(Engine):
    """A sentence embedding engine: an adapter implements `_load`, `_embed` and `_dimension`."""

    kind = "embedding"

    parity_tolerance: ClassVar[float] = 1e-5
    """Cosine with the reference (sentence-transformers, torch) must be >= 1 - this."""

    def embed(self, texts: Sequence[str], *, normalize: bool = True) -> np.ndarray:
        """Embed texts: float32 array of shape (len(texts), dimension).

        With normalize=True every row has unit L2 norm.
        Raises InvalidParameterError on an empty list or a non-string item.
        """
        check_prompts(texts)
        self.check_loaded()
        return self._embed(list(texts), normalize)

    @property
    def dimension(self) -> int:
        """Length of one embedding vector."""
        self.check_loaded()
        return self._dimension()

    @abc.abstractmethod
    def _embed(self, texts: list[str], normalize: bool) -> np.ndarray:
        """float32 (len(texts), dimension) for checked, non-empty `texts`; unit rows if `normalize`."""

    @abc.abstractmethod
    def _dimension(self) -> int:
        """Length of one embedding vector of the loaded model."""
