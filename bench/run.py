"""The starter benchmark, run inside a cell by the ladder's bench rung.

    python -m bench.run --engine transformers --fixture tiny-llama --out bench.json

Generation (batch 1, EOS ignored so every round makes the same tokens):
  - time to first token (TTFT): wall time of generate(max_new_tokens=1);
  - decode tokens/s: (N - 1) / (T_N - T_1), where T_N is the wall time of
    generate(max_new_tokens=N): the tokens after the first over the time after
    the first, from two calls on the same prompt.
Embedding: sentences/s = batch size / wall time of one embed() call, batch 32.
Every figure: warm-up rounds first (not kept), then >= 5 timed rounds whose raw
samples are written next to their statistics.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.stats import summarize
from compat.cli import positive
from engines import load_engine_class
from engines.base import Embedder, Generator, SamplingParams
from fixtures.catalog import locate

PROMPT = ("Engineers measure what they build. They write down the numbers, the machine, "
          "the versions and the date, and then")
SENTENCES = (
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog near the river bank in the morning.",
    "Tokens per second, time to first token and memory in use.",
    "She opened the window and the cold air of the north came into the room.",
)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def metric(name: str, unit: str, better: str, samples: list[float], **params) -> dict:
    return {"name": name, "unit": unit, "better": better, "params": params,
            "samples": samples, "stats": summarize(samples)}


def bench_generation(engine: Generator, *, new_tokens: int, warmup: int, rounds: int) -> list[dict]:
    first = SamplingParams(max_new_tokens=1, ignore_eos=True)
    full = SamplingParams(max_new_tokens=new_tokens, ignore_eos=True)
    prompt_tokens = len(engine.tokenize(PROMPT))
    ttft, decode = [], []
    for i in range(warmup + rounds):
        t1, _ = timed(lambda: engine.generate([PROMPT], first))
        tn, out = timed(lambda: engine.generate([PROMPT], full))
        made = len(out[0].token_ids)
        if made != new_tokens:
            raise RuntimeError(f"engine made {made} tokens, asked for exactly {new_tokens}")
        if i >= warmup:
            ttft.append(t1)
            decode.append((made - 1) / max(tn - t1, 1e-9))
    params = {"batch": 1, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens}
    return [
        metric("decode_tokens_per_s", "tok/s", "higher", decode, **params),
        metric("ttft_s", "s", "lower", ttft, **params),
    ]


def bench_embedding(engine: Embedder, *, batch: int, warmup: int, rounds: int) -> list[dict]:
    texts = [SENTENCES[i % len(SENTENCES)] for i in range(batch)]
    rates = []
    for i in range(warmup + rounds):
        seconds, out = timed(lambda: engine.embed(texts))
        if len(out) != batch:
            raise RuntimeError(f"engine returned {len(out)} rows for {batch} texts")
        if i >= warmup:
            rates.append(batch / seconds)
    return [metric("sentences_per_s", "sent/s", "higher", rates, batch=batch)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", required=True)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=positive, default=15, help="timed rounds (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument("--new-tokens", type=positive, default=64)
    parser.add_argument("--batch", type=positive, default=32, help="embedding batch size")
    args = parser.parse_args(argv)
    if args.rounds < 5:
        parser.error(f"--rounds must be at least 5, got {args.rounds}")

    engine = load_engine_class(args.engine)()
    engine.load(locate(args.fixture), device=args.device)
    if isinstance(engine, Generator):
        metrics = bench_generation(engine, new_tokens=args.new_tokens, warmup=args.warmup,
                                   rounds=args.rounds)
    else:
        metrics = bench_embedding(engine, batch=args.batch, warmup=args.warmup, rounds=args.rounds)
    engine.close()
    record = {
        "fixture": args.fixture,
        "metrics": metrics,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "rounds": args.rounds,
        "warmup": args.warmup,
    }
    args.out.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
