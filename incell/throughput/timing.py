"""How a generation round is timed (incell/throughput/test_throughput.py's test_generation): one
streamed call where the engine streams ids at batch 1, else two calls (on text where the engine
takes no ids). Each maker returns the round to time; a round returns a `Round`, its figures
named where they are born."""

from __future__ import annotations

import time
from typing import NamedTuple

from engines.base import SamplingParams


class Round(NamedTuple):
    """One timed generation round."""

    ttft_s: float
    """To the first token (the first delta with ids, or the one-token call)."""
    decode_s: float
    """From the first token to the last: 0 or less where the round cannot time decode (two calls
    whose first outlasted its second), and the round is dropped from decode."""
    decode_tokens: int
    """Tokens made after the first, over the batch's row (the engine's own ids)."""
    e2e_s: float
    engine_s: float
    """Seconds inside the engine's calls (the harness's own time is the rest of the round)."""
    prompt_tokens: int
    """Tokens fed to the first call: batch × length, or the engine's own count on text."""


def streamed_round(engine, prompts, prof, batch: int, length: int):
    """A round: one streamed call; TTFT to the first delta with ids, decode from there to the
    last over the tokens after the first delta's (the engine's own ids)."""
    n = prof.new_tokens
    params = SamplingParams(max_new_tokens=n, ignore_eos=True)
    ready = iter([prompts.batch(1, length)[0] for _ in range(prof.warmup + prof.rounds)])

    def one_round():
        prompt = next(ready)
        stamps, counts = [], []
        t0 = time.perf_counter()
        for delta in engine.stream_from_ids(prompt, params):
            if delta.token_ids:
                stamps.append(time.perf_counter())
                counts.append(len(delta.token_ids))
        ended = time.perf_counter()
        if sum(counts) != n:
            raise AssertionError(f"asked for exactly {n} tokens (EOS off), got {sum(counts)}")
        return Round(ttft_s=stamps[0] - t0, decode_s=stamps[-1] - stamps[0],
                     decode_tokens=n - counts[0], e2e_s=stamps[-1] - t0, engine_s=ended - t0,
                     prompt_tokens=length)

    return one_round


def two_calls_round(engine, prompts, prof, batch: int, length: int, *, text: bool = False):
    """A round: the first token alone on one fresh batch (TTFT), the whole answer on another;
    decode is the difference, over the n - 1 tokens after the first. With `text` (an engine that
    takes no ids: mistral.rs) each prompt is the longest text of whole words within `length` of
    the engine's tokens, and the tokens fed and made are the engine's own counts (its usage),
    never the text encoded again."""
    n = prof.new_tokens
    first, full = (SamplingParams(max_new_tokens=k, ignore_eos=True) for k in (1, n))
    make, call = (prompts.texts, engine.generate) if text else \
        (prompts.batch, engine.generate_from_ids)
    # tokenized before the clock runs
    ready = iter([(make(batch, length), make(batch, length))
                  for _ in range(prof.warmup + prof.rounds)])

    def one_round():
        cold, other = next(ready)
        t0 = time.perf_counter()
        fed = call(cold, first)
        t1 = time.perf_counter()
        out = call(other, full)
        t2 = time.perf_counter()
        made = [len(c.token_ids) if c.generated_tokens is None else c.generated_tokens for c in out]
        if made != [n] * batch:
            raise AssertionError(f"asked for exactly {n} tokens per row (EOS off), the engine "
                                 f"made {made}")
        tokens = sum(len(c.prompt_token_ids) if c.prompt_tokens is None else c.prompt_tokens
                     for c in fed) if text else batch * length
        return Round(ttft_s=t1 - t0, decode_s=(t2 - t1) - (t1 - t0), decode_tokens=n - 1,
                     e2e_s=t2 - t1, engine_s=t2 - t0, prompt_tokens=tokens)

    return one_round


def stream_counts_its_ids(engine, prompts, prof, length: int) -> tuple[bool, str]:
    """Whether the engine's stream carries every token's id: not where it declares its stream
    departs from generate() (llama-server holds back and drops a token that ends inside a UTF-8
    character), nor where one probe call (a fresh prompt, as a warm-up) comes short; its deltas
    cannot time decode then, and the two calls do. The reason goes in the record."""
    if not engine.capabilities.streaming:
        return False, "two calls (the engine does not stream)"
    if "streaming_equals_generate" in engine.deviations:  # a declared unfaithful stream
        return False, "two calls (its stream departs from generate(), a declared deviation)"
    n = prof.new_tokens
    params = SamplingParams(max_new_tokens=n, ignore_eos=True)
    got = sum(len(d.token_ids) for d in engine.stream_from_ids(prompts.batch(1, length)[0], params))
    if got == n:
        return True, "one streamed call"
    return False, f"two calls (its stream carried {got} of the {n} ids)"


def round_for(engine, prompts, prof, batch: int, length: int):
    """The round test_generation times at (batch, length), and its route in words for the
    record: one streamed call where the stream carries every id at batch 1, two calls on text
    where the engine takes no ids, else two calls."""
    streamed, route = (stream_counts_its_ids(engine, prompts, prof, length) if batch == 1
                       else (False, "two calls"))
    if not engine.capabilities.token_input:
        return (two_calls_round(engine, prompts, prof, batch, length, text=True),
                "two calls on text (the engine takes no ids; its usage counts)")
    maker = streamed_round if streamed else two_calls_round
    return maker(engine, prompts, prof, batch, length), route
