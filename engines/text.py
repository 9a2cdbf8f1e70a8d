"""Helpers adapters share: the Hugging Face tokenizer side, stop strings cut after the fact, stream
deltas from ids, log-probabilities from raw logits, embedding rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from engines.params import ChatMessage, Completion, SamplingParams, StreamDelta


class HfTokenizer:
    """The tokenizer side of a Generator that drives the fixture's Hugging Face tokenizer
    (`self._tok`, set by its _load): ids, EOS and the chat template come from it."""

    _tok = None

    @property
    def eos_token_id(self) -> int | None:
        return self._tok.eos_token_id if self._tok is not None else None

    def _tokenize(self, text: str) -> list[int]:
        return list(self._tok(text).input_ids)

    def _chat_ids(self, messages: list[ChatMessage]) -> list[int]:
        turns = [{"role": m.role, "content": m.content} for m in messages]
        return list(self._tok.apply_chat_template(turns, add_generation_prompt=True, tokenize=True,
                                                  return_dict=False))


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


def finish_row(prompt_ids: Sequence[int], generated: Sequence[int], params: SamplingParams, decode,
               steps=None) -> Completion:
    """A row its engine generated without stop strings (EOS and stop ids already end it): cut
    after the token that completes a stop string, its finish reason, and its log-probabilities
    from each step's raw logits (`steps`, read when params.logprobs asks for them)."""
    ids, hit = cut_at_stop(generated, params.stop, decode)
    reason = "stop" if hit else "length" if len(generated) >= params.max_new_tokens else "eos"
    logprobs = None if params.logprobs is None else tuple(
        top_logprobs(np.asarray(step), token, params.logprobs) for step, token in zip(steps, ids))
    return Completion(decode(ids), tuple(ids), tuple(prompt_ids), reason, logprobs)


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


def log_softmax(logits) -> np.ndarray:
    """Row-wise log-softmax in float64."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def top_logprobs(logits, chosen: int, n: int) -> dict[int, float]:
    """{id: log-probability} of the chosen token and the n most likely, from one step's raw logits."""
    logp = log_softmax(np.asarray(logits).reshape(-1))
    top = np.argsort(-logp, kind="stable")[:n]
    return {int(t): float(logp[t]) for t in (*top, chosen)}


def as_rows(vectors: Sequence[np.ndarray], *, normalize: bool) -> np.ndarray:
    """Stack per-text vectors into float32 (n, dim); unit L2 rows if `normalize`."""
    array = np.asarray(np.stack(vectors), dtype=np.float32)
    if normalize:
        array /= np.linalg.norm(array, axis=1, keepdims=True)
    return array
