"""The load benchmark of one server, run inside its cell (`nox -s serve-bench` does):

    python -m incell.serve_bench --engine vllm_server --fixture small-llama --out FILE
        [--users 1,2,4] [--rate 2 --mode poisson] [--input-tokens 128 --output-tokens 32]
        [--duration 60 --warmup 2 --min-requests 20 --per-user 10] [--slo ttft=1,tpot=0.1]

It starts the server through its adapter (engines/http/client.py), sends streamed completions of
exactly --input-tokens prompt tokens (each request of the whole sweep a prompt never sent
before, incell/prompts.py, so no prefix cache helps) and --output-tokens new tokens with EOS
off, under each load in turn: a closed-loop sweep of users, doubling to saturation, whose knee
is the first step that adds less than KNEE_GAIN of output throughput, or past which streams
fail (the sweep stops one step past it); and the open-loop rates asked for. Then it stops the
server. A stream short of --output-tokens is an error (bench/serving.py). A closed-loop point is
a steady state with the defaults (a 60 s window holding 10 requests a user, warm-up and drain
outside it); a shorter one is measured alike and marked as not one.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
from pathlib import Path

from bench.loadgen import STEADY_PER_USER, STEADY_WINDOW_S, Load, LoadError, run_load
from bench.serving import DEFAULT_SLOS, MAX_ERROR_SHARE, SloError, measure, parse_slos
from core.bench_details import Knee, LoadRun, PrefixCache, ServeBenchDetail
from core.results import Rung, write_rung
from engines import ENGINES, load_engine_class
from engines.base import SamplingParams
from fixtures.catalog import locate
from incell.prompts import FreshPrompts

KNEE_GAIN = 0.10
MAX_USERS = 64


PREPARED = 2048
"""Prompts tokenized before the first load runs, so the client's loop does not tokenize."""


def body_maker(engine, args):
    """Each request of the whole sweep, whatever its load, a prompt the server never saw
    (incell/prompts.py): no prefix cache helps any of them."""
    base = engine._body(SamplingParams(max_new_tokens=args.output_tokens, ignore_eos=True))
    base["stream_options"] = {"include_usage": True}
    pool = FreshPrompts(lambda text: engine._tokenizer.encode(text, add_special_tokens=False).ids)
    ready = pool.batch(PREPARED, args.input_tokens)
    sent = itertools.count()

    def make(_i: int) -> dict:
        k = next(sent)
        ids = ready[k] if k < len(ready) else pool.ids(k, args.input_tokens)
        return {**base, "prompt": engine._prompt(ids)}

    return make


CHAT_SEED = 0
"""The chat mode's prompts: the same seed, the same passages and lengths on every run."""


def chat_lengths(args) -> tuple[int, int]:
    """The chat mode's input lengths: uniform over [input/2, 3·input/2] tokens (seeded)."""
    return max(1, args.input_tokens // 2), args.input_tokens * 3 // 2


def chat_maker(engine, args):
    """--chat: each request a user turn of real text (fixtures/real_text), a passage starting at
    a seeded word and cut to a seeded length in tokens, opened by its own number so that no two
    requests share more than the chat template's own prefix; EOS off, --output-tokens each."""
    from fixtures.corpora import real_text

    base = engine._body(SamplingParams(max_new_tokens=args.output_tokens, ignore_eos=True))
    base["stream_options"] = {"include_usage": True}
    words = " ".join(sample.text for sample in real_text()).split()
    low, high = chat_lengths(args)

    def content(i: int) -> str:
        draw = random.Random(f"{CHAT_SEED}-{i}")
        length, start = draw.randint(low, high), draw.randrange(len(words))
        passage = " ".join((words + words)[start:start + 2 * high])
        ids = engine._tokenizer.encode(f"Passage {i}. {passage}", add_special_tokens=False).ids
        return engine._text(ids[:length])

    ready = [content(i) for i in range(PREPARED // 4)]  # made before the clock runs

    def make(i: int) -> dict:
        text = ready[i] if i < len(ready) else content(i)
        return {**base, "messages": [{"role": "user", "content": text}]}

    return make


def closed_loads(args, runs: list[LoadRun]):
    """The closed-loop sweep: the users asked for, or doubling from 1 until a step shows the
    knee (or MAX_USERS); `runs` is read as they are measured."""
    users = args.users or [2**i for i in range(MAX_USERS.bit_length())]
    for n in users:
        if not args.users and knee(runs) is not None:
            return
        yield Load("closed", concurrency=n, **window(args))


def open_loads(args) -> list[Load]:
    return [Load(args.mode, rate=r, concurrency=args.cap, **window(args)) for r in args.rate]


def window(args) -> dict:
    """What every load of the run shares: its window, warm-up and minimum request count."""
    return {"duration_s": args.duration, "warmup_s": args.warmup,
            "min_requests": args.min_requests, "per_user": args.per_user}


def knee(runs: list[LoadRun]) -> Knee | None:
    """The closed-loop step past which more users add less than KNEE_GAIN of throughput, or
    past which more than MAX_ERROR_SHARE of the streams fail (that step is no valid point, so
    the knee comes before it)."""
    closed = sorted((r for r in runs if r.load.mode == "closed"), key=lambda r: r.load.concurrency)
    for before, after in itertools.pairwise(closed):
        if before.failed_share > MAX_ERROR_SHARE:
            return None  # the sweep failed from its first steps: no knee to tell
        rate = [r.median("serve_output_tokens_per_s") or 0.0 for r in (before, after)]
        failing = after.failed_share > MAX_ERROR_SHARE
        if failing or rate[1] < (1 + KNEE_GAIN) * rate[0]:
            why = (f"{after.errors} of {after.requests} streams failed" if failing
                   else f"less than {KNEE_GAIN:.0%} more throughput")
            return Knee(users=before.load.concurrency, output_tokens_per_s=rate[0],
                        next_users=after.load.concurrency, next_output_tokens_per_s=rate[1],
                        why=why)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:  # every load checked before the server starts
        check_loads(args)
    except LoadError as exc:
        raise SystemExit(f"python -m incell.serve_bench: {exc}") from None
    servers = [e for e, entry in ENGINES.items() if entry.transport == "http" and
               entry.kind == "generation"]
    if args.engine not in servers:
        raise SystemExit(f"python -m incell.serve_bench: --engine {args.engine!r} is not a generation "
                         f"server; valid: {', '.join(servers)}")
    engine = load_engine_class(args.engine)()
    engine.load(locate(args.fixture), cache_prefixes=False)
    try:
        detail = sweep(engine, args)
    finally:
        engine.close()
    write_rung(Path(args.out), Rung("serve_bench", "pass", detail=detail))
    return 0


def check_loads(args) -> None:
    """Every load of the run checked before any request: a LoadError names the bad value."""
    Load("closed", concurrency=1, **window(args))
    open_loads(args)


def sweep(engine, args, headers: dict[str, str] | None = None, eos_off: bool = True) -> ServeBenchDetail:
    """The closed-loop sweep and the open-loop rates against the loaded server adapter. With
    `eos_off` False (a server that takes no ignore_eos), a stream may end at EOS: short of
    --output-tokens is then no error."""
    chat = args.chat
    make_body = (chat_maker if chat else body_maker)(engine, args)
    url = engine.client.url("/chat/completions" if chat else "/completions")
    count = (lambda text: len(engine._ids(text))) if not engine.ids_from_server else None
    runs: list[LoadRun] = []
    for load in itertools.chain(closed_loads(args, runs), open_loads(args)):
        print(f"load: {load.label}", flush=True)
        runs.append(measure(asyncio.run(run_load(url, make_body, load, headers,
                                                 engine.reuses_connections)), args.slo, count,
                            expected_tokens=args.output_tokens if eos_off else None))
        print(f"  {runs[-1].median('serve_output_tokens_per_s') or 0:.1f} tok/s, p50 TTFT "
              f"{(runs[-1].median('serve_ttft_s') or 0) * 1e3:.0f} ms, valid {runs[-1].valid}",
              flush=True)
    return ServeBenchDetail(engine=args.engine, server=engine.server_name, fixture=args.fixture,
                            startup_s=engine.startup_s, input_tokens=args.input_tokens,
                            output_tokens=args.output_tokens, runs=runs, knee=knee(runs),
                            eos_off=eos_off, api="chat" if chat else "completions",
                            prompts=(f"user turns of real text (fixtures/real_text, seed "
                                     f"{CHAT_SEED}), {chat_lengths(args)[0]} to "
                                     f"{chat_lengths(args)[1]} tokens each (uniform) before the "
                                     "chat template") if chat else "",
                            prefix_cache=PrefixCache(engine.prefix_cache,
                                                     engine.prefix_cache_switch))


def slo_arg(text: str) -> dict[str, float]:
    try:
        return parse_slos(text)
    except SloError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m incell.serve_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", required=True, help="a server's engine id (transport http)")
    parser.add_argument("--fixture", default="small-llama")
    parser.add_argument("--out", required=True)
    add_load_options(parser)
    return parser.parse_args(argv)


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """The load sweep's options (serve-bench's, and the endpoint session's)."""
    parser.add_argument("--chat", action="store_true",
                        help="/v1/chat/completions with user turns of real text, input lengths "
                             "uniform over [input/2, 3·input/2] tokens (seeded); the tokenizer "
                             "needs a chat template (smollm2-135m-instruct)")
    def numbers(cast):
        def parse_list(text: str) -> list:
            try:
                values = [cast(x) for x in text.split(",") if x]
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                                 f"{cast.__name__}s") from None
            if not values or min(values) <= 0:
                raise argparse.ArgumentTypeError(f"{text!r}: every value must be > 0")
            return values
        return parse_list

    parser.add_argument("--users", type=numbers(int), default=[],
                        help=f"closed-loop sweep (default: 1, 2, 4, ... until the knee, at most "
                             f"{MAX_USERS})")
    parser.add_argument("--rate", type=numbers(float), default=[],
                        help="open-loop rates, requests/s (e.g. 1,2,4)")
    parser.add_argument("--mode", choices=("poisson", "constant"), default="poisson")
    parser.add_argument("--cap", type=int, default=0, help="open loop: most requests in flight")
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--duration", type=float, default=STEADY_WINDOW_S,
                        help=f"window, seconds (default {STEADY_WINDOW_S:g}: a shorter point is "
                             "no steady state, and is marked so)")
    parser.add_argument("--warmup", type=float, default=Load.warmup_s, help="seconds not counted")
    parser.add_argument("--min-requests", type=int, default=Load.min_requests)
    parser.add_argument("--per-user", type=int, default=STEADY_PER_USER,
                        help="closed loop: the window grows until it holds this many requests a user")
    parser.add_argument("--slo", type=slo_arg, default=parse_slos(DEFAULT_SLOS),
                        help=f"goodput SLOs: ttft, tpot, e2e in s or ms (default {DEFAULT_SLOS})")


if __name__ == "__main__":
    raise SystemExit(main())
