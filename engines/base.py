"""The engine contracts: what every adapter offers, with shapes and units.

Two small abstract classes, `Generator` and `Embedder`. An adapter declares
its `Capabilities`; a conformance property that needs a capability the engine
declares unsupported is skipped with that reason.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from compat.errors import InfermatrixError

FinishReason = Literal["length", "eos", "stop"]
MAX_LOGPROBS = 20
"""The most alternatives SamplingParams.logprobs may ask for (vLLM's default cap)."""


class InvalidParameterError(InfermatrixError, ValueError):
    """A generation or embedding parameter is out of range or unknown."""


class UnsupportedCapabilityError(InfermatrixError, NotImplementedError):
    """An engine was asked for something it declared it does not offer."""

    def __init__(self, engine: str, capability: str) -> None:
        super().__init__(f"Engine {engine!r} does not support {capability!r} (see its Capabilities).")
        self.engine = engine
        self.capability = capability


@dataclass(frozen=True)
class Capabilities:
    """What an adapter offers. Conformance properties needing a missing one are skipped."""

    streaming: bool = False
    """stream() yields text deltas as tokens are produced."""
    chat: bool = False
    """chat() applies the model's chat template."""
    seeded_sampling: bool = False
    """temperature > 0 with a seed is reproducible."""
    stop_strings: bool = False
    """SamplingParams.stop is honoured."""
    stop_string_kept: bool = True
    """Whether a matched stop string stays at the end of the returned text."""
    logprobs: bool = False
    """SamplingParams.logprobs is honoured: Completion.logprobs per generated token."""
    logits: bool = False
    """next_token_logits() gives the low-level forward pass's last-position logits."""
    token_input: bool = False
    """generate_from_ids() takes prompts as token ids (continuation)."""
    min_new_tokens: bool = False
    """SamplingParams.min_new_tokens is honoured."""
    stop_token_ids: bool = False
    """SamplingParams.stop_token_ids ends a row at any of those ids."""
    batching: bool = True
    """generate()/embed() take several inputs in one call."""
    devices: tuple[str, ...] = ("cpu",)
    """Devices the adapter can load on."""
    whitespace_insensitive: bool = True
    """Embedding: leading/trailing/repeated whitespace does not change the vector."""
    empty_string: Literal["embed", "error"] = "embed"
    """Embedding: "" embeds like any text, or raises InvalidParameterError."""


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


def cut_at_stop(ids: Sequence[int], stops: Sequence[str],
                decode) -> tuple[list[int], bool]:
    """The shortest prefix of `ids` whose text contains a stop string (kept), and whether one hit.

    For engines without native stop strings: cutting after the fact equals stopping
    early, because later tokens never change earlier ones.
    """
    ids = list(ids)
    if stops:
        for cut in range(1, len(ids) + 1):
            if any(s in decode(ids[:cut]) for s in stops):
                return ids[:cut], True
    return ids, False


def text_deltas(token_ids: Iterator[int], decode) -> Iterator[StreamDelta]:
    """StreamDeltas from a stream of ids: text is held back while it ends in a partial character."""
    ids: list[int] = []
    sent_text, sent_ids = "", 0
    for token in token_ids:
        ids.append(int(token))
        text = decode(ids)
        if text.endswith("\ufffd") or not text.startswith(sent_text):
            continue  # an incomplete UTF-8 sequence: wait for the next token
        yield StreamDelta(text[len(sent_text):], tuple(ids[sent_ids:]))
        sent_text, sent_ids = text, len(ids)
    if sent_ids < len(ids):
        text = decode(ids)
        yield StreamDelta(text[len(sent_text):] if text.startswith(sent_text) else text,
                          tuple(ids[sent_ids:]))


def stop_stream(deltas: Iterator[StreamDelta], stops: Sequence[str],
                decode) -> Iterator[StreamDelta]:
    """Pass deltas on until the text contains a stop string; the last delta ends with it."""
    ids: list[int] = []
    text = ""
    for delta in deltas:
        if stops:
            cut, hit = cut_at_stop([*ids, *delta.token_ids], stops, decode)
            if hit:
                yield StreamDelta(decode(cut)[len(text):], tuple(cut[len(ids):]))
                return
        ids.extend(delta.token_ids)
        text += delta.text
        yield delta


def top_logprobs(logits, chosen: int, n: int) -> dict[int, float]:
    """{id: log-probability} of the chosen token and the n most likely, from one step's raw logits."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    shifted = logits - logits.max()
    logp = shifted - np.log(np.exp(shifted).sum())
    top = np.argsort(-logp, kind="stable")[:n]
    return {int(t): float(logp[t]) for t in (*top, chosen)}


def as_rows(vectors: Sequence[np.ndarray], *, normalize: bool) -> np.ndarray:
    """Stack per-text vectors into float32 (n, dim); unit L2 rows if `normalize`."""
    array = np.asarray(np.stack(vectors), dtype=np.float32)
    if normalize:
        array /= np.linalg.norm(array, axis=1, keepdims=True)
    return array


class Engine(abc.ABC):
    """What both contracts share: an id, capabilities, load and close."""

    id: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    deviations: ClassVar[dict[str, Deviation]] = {}
    """Conformance property name -> why this engine departs from it (shown as ⚠️ deviation)."""
    unsupported: ClassVar[dict[str, str]] = {}
    """Capability the adapter declares False -> why (shown where the property is skipped)."""

    @classmethod
    def check_device(cls, device: str) -> None:
        """Refuse a device the adapter does not declare, naming the valid ones."""
        if device not in cls.capabilities.devices:
            msg = f"{cls.id}: device {device!r} is not one of {cls.capabilities.devices}"
            raise InvalidParameterError(msg)

    def require(self, capability: str) -> None:
        """Raise UnsupportedCapabilityError unless the adapter declares `capability`."""
        if not getattr(self.capabilities, capability):
            raise UnsupportedCapabilityError(self.id, capability)

    @abc.abstractmethod
    def load(self, model_dir: Path, *, device: str = "cpu", dtype: str = "float32") -> None:
        """Load the model from a local folder (Hugging Face layout). Never downloads."""

    def close(self) -> None:
        """Free the model. The adapter may be loaded again afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Generator(Engine):
    """A causal language model engine."""

    @abc.abstractmethod
    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[Completion]:
        """Complete each prompt; returns one Completion per prompt, in order.

        Raises InvalidParameterError on an empty list or a non-string prompt.
        """

    @abc.abstractmethod
    def stream(self, prompt: str, params: SamplingParams) -> Iterator[StreamDelta]:
        """Yield deltas of one completion; their texts and ids, joined, equal generate()'s."""

    @abc.abstractmethod
    def chat(self, messages: Sequence[ChatMessage], params: SamplingParams) -> Completion:
        """Apply the model's chat template (with the generation prompt) and complete it."""

    @abc.abstractmethod
    def tokenize(self, text: str) -> list[int]:
        """Token ids the engine feeds the model for `text`, special tokens included."""

    @property
    def eos_token_id(self) -> int | None:
        """The model's end-of-sequence id, if it has one."""
        return None

    parity_top_k: ClassVar[int] = 5
    """Greedy parity with the reference (transformers): where the ids first diverge, each side's
    token must be among the other's `parity_top_k` most likely tokens."""

    logprob_tolerance: ClassVar[float] = 1e-3
    """Log-probabilities (nats) may differ from the reference's by at most this (property logprobs)."""

    def next_token_logits(self, prompts: Sequence[str]) -> np.ndarray:
        """Low-level forward pass: float32 (len(prompts), vocab) logits at each prompt's last token."""
        check_prompts(prompts)
        return self.next_token_logits_from_ids([self.tokenize(p) for p in prompts])

    def next_token_logits_from_ids(self, prompt_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """next_token_logits() with prompts given as token ids (fed as they are)."""
        raise UnsupportedCapabilityError(self.id, "logits")

    def generate_from_ids(self, prompt_ids: Sequence[Sequence[int]],
                          params: SamplingParams) -> list[Completion]:
        """generate() with prompts given as token ids (fed as they are, no BOS added)."""
        raise UnsupportedCapabilityError(self.id, "token_input")


class Embedder(Engine):
    """A sentence embedding engine."""

    parity_tolerance: ClassVar[float] = 1e-5
    """Cosine with the reference (sentence-transformers, torch) must be >= 1 - this."""

    @abc.abstractmethod
    def embed(self, texts: Sequence[str], *, normalize: bool = True) -> np.ndarray:
        """Embed texts: float32 array of shape (len(texts), dimension).

        With normalize=True every row has unit L2 norm.
        Raises InvalidParameterError on an empty list or a non-string item.
        """

    @property
    @abc.abstractmethod
    def dimension(self) -> int:
        """Length of one embedding vector."""

