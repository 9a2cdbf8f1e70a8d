"""The values every engine call takes and returns: sampling parameters, completions, stream
deltas, chat messages, declared capabilities, and the typed errors for bad input."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.errors import InfermatrixError

FinishReason = Literal["length", "eos", "stop"]
MAX_LOGPROBS = 20
"""The most alternatives SamplingParams.logprobs may ask for (vLLM's default cap)."""


class InvalidParameterError(InfermatrixError, ValueError):
    """A generation or embedding parameter is out of range or unknown."""


class EngineNotLoadedError(InfermatrixError, RuntimeError):
    """An engine was used before load() (or after close())."""


class UnsupportedCapabilityError(InfermatrixError, NotImplementedError):
    """An engine was asked for something it declared it does not offer."""

    def __init__(self, engine: str, capability: str) -> None:
        super().__init__(f"Engine {engine!r} does not support {capability!r} (see its Capabilities).")
        self.engine = engine
        self.capability = capability


@dataclass(frozen=True)
class LoadedWeights:
    """What an engine loaded, where its adapter knows it: one value, set once by `_load`
    (Engine.weights), read by the quantization report, the roofline and the engine's own tools."""

    bytes: int | None = None
    """The size on disk of the weights the engine loaded (the quantization report shows it)."""
    read_bytes: int | None = None
    """Bytes one batch-1 decode step reads of them (engines/formats/weights_read.py), where the
    adapter can read them from its files; else the roofline scales the fixture's float32 count."""
    note: str = ""
    """One line on the format where the adapter knows more than a size: the tensor types a
    quantizer wrote, the matrices that fell back, the bits per weight."""
    file: Path | None = None
    """The one file the weights came from, where the engine loads one (a GGUF): the engine's
    own tools can run on the same file."""
    unquantized_file: Path | None = None
    """Where `file` is a quantization the engine made: the unquantized file it was made from
    (the engine's own quality tool compares the two)."""


@dataclass(frozen=True)
class Deviation:
    """A known, explained departure from a conformance property, declared beside the adapter."""

    reason: str
    link: str = ""


@dataclass(frozen=True)
class SamplingParams:
    """Generation parameters shared by every engine. temperature 0 means greedy."""

    max_new_tokens: int = 16
    """Upper bound on generated tokens (exactly this many when ignore_eos)."""
    temperature: float = 0.0
    """0 selects greedy decoding; > 0 samples."""
    top_p: float = 1.0
    """Nucleus sampling mass, in (0, 1]."""
    top_k: int = 0
    """Keep the k most likely tokens; 0 disables."""
    seed: int | None = None
    """Seed for sampling; same seed and inputs give the same output."""
    stop: tuple[str, ...] = ()
    """Stop strings; generation ends when the text contains one."""
    ignore_eos: bool = False
    """Keep generating past EOS, so exactly max_new_tokens come back."""
    min_new_tokens: int = 0
    """No EOS or stop token before this many tokens."""
    stop_token_ids: tuple[int, ...] = ()
    """Token ids that end a row like EOS (an int is read as one id)."""
    logprobs: int | None = None
    """None: no log-probabilities. N >= 0: with every generated token, its own log-probability
    and the N most likely (vLLM's convention): log-softmax of the model's raw logits, before
    temperature, top-k/top-p or any processor. generate(), generate_from_ids() and chat() return
    them; stream() does not."""

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 0:
            msg = f"max_new_tokens must be an int >= 0, got {self.max_new_tokens!r}"
            raise InvalidParameterError(msg)
        if not math.isfinite(self.temperature) or self.temperature < 0:
            msg = f"temperature must be a finite float >= 0, got {self.temperature!r}"
            raise InvalidParameterError(msg)
        if not 0 < self.top_p <= 1:
            raise InvalidParameterError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise InvalidParameterError(f"top_k must be an int >= 0, got {self.top_k!r}")
        if not isinstance(self.min_new_tokens, int) or not 0 <= self.min_new_tokens <= self.max_new_tokens:
            msg = (f"min_new_tokens must be an int in [0, max_new_tokens={self.max_new_tokens}], "
                   f"got {self.min_new_tokens!r}")
            raise InvalidParameterError(msg)
        if self.logprobs is not None and (
                isinstance(self.logprobs, bool) or not isinstance(self.logprobs, int)
                or not 0 <= self.logprobs <= MAX_LOGPROBS):
            msg = f"logprobs must be None or an int in [0, {MAX_LOGPROBS}], got {self.logprobs!r}"
            raise InvalidParameterError(msg)
        if isinstance(self.stop, str):  # a bare string would be read as characters
            object.__setattr__(self, "stop", (self.stop,))
        if isinstance(self.stop_token_ids, int):  # the "int form" of an EOS id
            object.__setattr__(self, "stop_token_ids", (self.stop_token_ids,))
        object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids))

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> SamplingParams:
        """Build from a dict, refusing unknown keys by name."""
        valid = set(cls.__dataclass_fields__)
        bad = sorted(set(params) - valid)
        if bad:
            raise InvalidParameterError(f"Unknown parameter(s) {bad}. Valid: {sorted(valid)}")
        return cls(**params)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class Completion:
    """One generated continuation."""

    text: str
    """The generated text only (prompt excluded)."""
    token_ids: tuple[int, ...]
    """The generated token ids, from the engine's own tokenizer."""
    prompt_token_ids: tuple[int, ...]
    """The prompt's token ids as the engine fed them to the model."""
    finish_reason: FinishReason
    """"length" (hit max_new_tokens), "eos" or "stop" (a stop string)."""
    logprobs: tuple[dict[int, float], ...] | None = None
    """With SamplingParams.logprobs: one {token id: log-probability} per generated token, holding
    that token and the N most likely; None when none were asked for."""
    prompt_tokens: int | None = None
    """The engine's own count of the prompt's tokens where it gives no prompt ids back (an HTTP
    chat API's usage.prompt_tokens); None where prompt_token_ids say it all."""
    generated_tokens: int | None = None
    """The engine's own count of the tokens it generated where token_ids are its text encoded
    again (mistral.rs's usage.completion_tokens); None where token_ids are its own."""


@dataclass(frozen=True)
class StreamDelta:
    """One piece of a streamed completion."""

    text: str
    """New text since the previous delta (may be empty)."""
    token_ids: tuple[int, ...]
    """Token ids produced since the previous delta; joined they equal the Completion's ids."""


@dataclass(frozen=True)
class ChatMessage:
    """One chat turn."""

    role: str
    content: str


def check_prompts(prompts: Sequence[str]) -> None:
    """Typed errors for the inputs every engine must refuse the same way."""
    if isinstance(prompts, str):
        raise InvalidParameterError("prompts must be a list of strings, got a single str")
    if len(prompts) == 0:
        raise InvalidParameterError("prompts is empty; pass at least one prompt")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            msg = f"prompts[{i}] must be a str, got {type(prompt).__name__}: {prompt!r}"
            raise InvalidParameterError(msg)


def check_prompt_ids(prompt_ids: Sequence[Sequence[int]]) -> list[list[int]]:
    """Prompts as lists of ids; typed errors for an empty batch or a prompt with no tokens."""
    rows = [list(ids) for ids in prompt_ids]
    if not rows:
        raise InvalidParameterError("prompt_ids is empty; pass at least one prompt")
    for i, ids in enumerate(rows):
        if not ids:
            raise InvalidParameterError(f"prompt {i} encodes to no tokens; give a non-empty prompt")
    return rows
