"""The load client against the calibration server (bench/calibration.py), whose every event time
is known: the client must report TTFT, ITL and throughput within a stated tolerance of the
truth at low and at high concurrency, expose client queueing, and flag a run it could not keep."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import statistics
import subprocess
import sys
import time

import httpx
import pytest

from bench.loadgen import Load, LoadError, Run, Sample, run_load, schedule
from bench.metrics import record
from bench.serving import SloError, measure, parse_slos
from core.bench_details import Knee, LoadRun
from core.records import read
from engines.http.server import free_port
from tests.conftest import REPO

TTFT, ITL, TOKENS = 0.1, 0.05, 12
E2E = TTFT + (TOKENS - 1) * ITL
# Stated tolerances, on medians: 5% of the truth, or an absolute bound where that is larger (a
# timer wakes late by a millisecond or two on a shared 2-core VM, where client and server share
# the cores): TTFT 100 ms ± 5 ms, ITL 50 ms ± 2.5 ms; throughput within 5%.
TTFT_TOL = max(0.05 * TTFT, 0.003)
ITL_TOL = max(0.05 * ITL, 0.002)
RATE_TOL = 0.05


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """The server's URL, and the file where it logs when each request arrived and each event
    was written."""
    port, log = free_port(), tmp_path_factory.mktemp("calibration") / "writes.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "bench.calibration", "--port", str(port),
                             "--ttft", str(TTFT), "--itl", str(ITL), "--tokens", str(TOKENS),
                             "--log", str(log)], cwd=REPO, env={"PYTHONPATH": str(REPO)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/v1/models")
            break
        except httpx.TransportError:
            time.sleep(0.1)
    yield url + "/v1/completions", log
    proc.kill()
    proc.wait()


def server_truth(log) -> tuple[float, float, float]:
    """Median TTFT, ITL and end-to-end (arrival to the last token's write) as the server itself
    wrote them (then the log is emptied)."""
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    log.write_text("")
    ttft = [r["writes"][0] - r["arrived"] for r in rows]
    itl = [b - a for r in rows for a, b in itertools.pairwise(r["writes"])]
    e2e = [r["writes"][-1] - r["arrived"] for r in rows]
    return statistics.median(ttft), statistics.median(itl), statistics.median(e2e)


def body(_i: int) -> dict:
    return {"model": "calibration", "prompt": "x", "max_tokens": TOKENS,
            "stream_options": {"include_usage": True}}


SHORT = 3
SHORT_E2E = TTFT + (SHORT - 1) * ITL


def short_body(_i: int) -> dict:
    return {**body(_i), "max_tokens": SHORT}


def median(result: LoadRun, name: str) -> float:
    return result.median(name)


@pytest.mark.timing
@pytest.mark.parametrize("users", [1, 16])
def test_the_client_measures_the_truth(calibration, users: int) -> None:
    """Against the times the server wrote (and, at one user, against its nominal schedule)."""
    url, log = calibration
    log.write_text("")
    run = asyncio.run(run_load(url, body, Load("closed", concurrency=users, duration_s=2,
                                               warmup_s=0.3, min_requests=6)))
    result = measure(run, count_tokens=lambda text: text.count(" t"))
    assert result.errors == 0 and result.valid, result.invalid_because
    ttft, itl, e2e_truth = server_truth(log)
    assert abs(median(result, "serve_ttft_s") - ttft) <= TTFT_TOL
    assert abs(median(result, "serve_itl_s") - itl) <= ITL_TOL
    if users == 1:  # a quiet server keeps its schedule
        assert abs(ttft - TTFT) <= TTFT_TOL and abs(itl - ITL) <= ITL_TOL
    e2e = median(result, "serve_e2e_s")  # against the server's own, not one rebuilt from medians
    assert abs(e2e - e2e_truth) <= TTFT_TOL + ITL_TOL
    assert median(result, "serve_dispatch_delay_s") < 1e-3  # a closed loop sends when it schedules
    expected = users / e2e  # each user sends back to back
    # whole requests end inside the window, and the users' requests end together: one round
    # more or less is users/window of the rate (output tokens, counted per event, are finer)
    slack = RATE_TOL * expected + users / result.window_s
    assert abs(median(result, "serve_requests_per_s") - expected) <= slack
    assert abs(median(result, "serve_output_tokens_per_s") - expected * TOKENS) <= \
        RATE_TOL * expected * TOKENS
    tokens = result.tokens
    assert tokens.mismatched == 0 and tokens.events_per_token == 1.0


@pytest.mark.timing
def test_queueing_in_the_client_is_not_hidden(calibration) -> None:
    """An open loop at 20 req/s through one slot, each request taking SHORT_E2E: requests wait in
    the client, latency from the scheduled time shows it, and the run is marked invalid."""
    run = asyncio.run(run_load(calibration[0], short_body,
                               Load("constant", concurrency=1, rate=20, duration_s=1, warmup_s=0,
                                    min_requests=20)))
    result = measure(run, slos={"e2e": 2 * SHORT_E2E})
    assert median(result, "serve_dispatch_delay_s") > 3 * SHORT_E2E
    assert median(result, "serve_e2e_scheduled_s") > median(result, "serve_e2e_s") + 3 * SHORT_E2E
    assert not result.valid and "achieved" in result.invalid_because[0]
    # from its send each request is fast, but it waited in the client first: the SLO counts from
    # the scheduled send, so the queued ones miss it
    assert all(e <= 2 * SHORT_E2E for e in result.samples("serve_e2e_s"))
    assert result.slo_attainment < 0.5 and median(result, "serve_goodput_per_s") < 10


@pytest.mark.timing
def test_goodput_counts_only_requests_that_meet_every_slo(calibration) -> None:
    run = asyncio.run(run_load(calibration[0], body, Load("closed", concurrency=2, duration_s=1.5,
                                                       warmup_s=0.2, min_requests=6)))
    strict = measure(run, slos={"ttft": TTFT / 2})
    loose = measure(run, slos={"ttft": 10 * TTFT, "e2e": 10 * E2E})
    assert strict.slo_attainment == 0 and median(strict, "serve_goodput_per_s") == 0
    assert loose.slo_attainment == 1 and median(loose, "serve_goodput_per_s") > 0


def test_an_open_schedule_is_fixed_before_the_run() -> None:
    poisson = Load("poisson", rate=50, duration_s=20, warmup_s=0, seed=7)
    first, again = schedule(poisson), schedule(poisson)
    assert first == again and len(first) == 1000
    gaps = [b - a for a, b in itertools.pairwise(first)]
    assert abs(statistics.fmean(gaps) - 1 / 50) < 0.1 / 50
    assert schedule(Load("constant", rate=4, duration_s=1, warmup_s=0, min_requests=2)) == \
        [0, 0.25, 0.5, 0.75]


def test_bad_loads_and_slos_are_named() -> None:
    with pytest.raises(LoadError, match=r"'bursty'.*closed"):
        Load("bursty")
    with pytest.raises(LoadError, match="needs a rate > 0"):
        Load("poisson")
    with pytest.raises(SloError, match=r"unknown SLO 'latency'.*ttft, tpot, e2e"):
        parse_slos("latency=1")
    with pytest.raises(SloError, match=r"unit 'min'.*s, ms"):
        parse_slos("e2e=2min")
    assert parse_slos("ttft=0.5, tpot=50ms,e2e=2s") == {"ttft": 0.5, "tpot": 0.05, "e2e": 2.0}
    with pytest.raises(LoadError, match=r"duration_s 0\.5 is too short"):
        Load("closed", concurrency=1, duration_s=0.5)


def closed_run(users: int, tokens_per_s: float) -> LoadRun:
    rate = record("serve_output_tokens_per_s", [tokens_per_s], load=f"{users} users")
    return read(LoadRun, {
        "load": dataclasses.asdict(Load("closed", concurrency=users)), "metrics": [rate],
        "requests": 1, "errors": 0, "errors_by_kind": {}, "error_examples": [], "window_s": 1.0,
        "slos": {}, "slo_attainment": 0.0, "tokens": {"usage_reported": 0, "requests": 1},
        "achieved_rate": 1.0, "target_rate": 0.0, "loop_lag_p99_s": 0.0, "client_cpu": 0.0,
        "valid": True})


def test_the_knee_is_where_more_users_stop_adding_throughput() -> None:
    from incell.serve_bench import knee

    runs = [closed_run(1, 100), closed_run(2, 190), closed_run(4, 300), closed_run(8, 320),
            closed_run(16, 318)]
    assert knee(runs) == Knee(users=4, output_tokens_per_s=300, next_users=8,
                              next_output_tokens_per_s=320, why="less than 10% more throughput")
    assert knee(runs[:3]) is None  # still growing at the end of the sweep


@pytest.mark.parametrize(("argv", "message"), [
    (["--users", "0"], "every value must be > 0"),
    (["--rate", "fast"], "is not a comma-separated list of floats"),
    (["--duration", "0.2"], "duration_s 0.2 is too short"),
    (["--slo", "ttft=1h"], "unit 'h'"),
    (["--engine", "transformers"], "'transformers' is not a generation server; valid: vllm_server"),
])
def test_serve_bench_refuses_bad_input_before_starting_a_server(argv, message, capsys) -> None:
    from incell.serve_bench import main

    with pytest.raises(SystemExit) as stop:
        main(["--engine", "vllm_server", "--out", "unused.json", *argv])
    assert message in f"{stop.value.code} {capsys.readouterr().err}"


def perfect_run(load: Load) -> Run:
    """An open loop against a server that answers every request at once (2 ms, two events),
    sent exactly on `load`'s schedule: the window as run_load sets it."""
    start = 0.0
    samples = [Sample(scheduled=t, sent=t, end=t + 0.002, events=[t + 0.001, t + 0.002],
                      tokens=[1, 1], text=" a b", usage_tokens=2) for t in schedule(load)]
    window = (start + load.warmup_s, max(start + load.warmup_s + load.duration_s,
                                         samples[-1].scheduled + 1e-9))
    return Run(load, samples, window, window[1], 0.01, [0.0])


@pytest.mark.parametrize("rate", [1.0, 2.0, 5.0, 10.0])
def test_a_perfect_server_is_valid_whatever_its_schedules_own_rate(rate: float) -> None:
    """Seed 0's Poisson schedule runs slower than nominal over serve-bench's default window: held
    to the nominal rate, a server that answers every request at once was marked invalid."""
    load = Load("poisson", rate=rate, duration_s=10, warmup_s=2, seed=0)
    result = measure(perfect_run(load))
    assert result.valid, result.invalid_because
    assert result.errors == 0 and result.achieved_rate >= 0.95 * result.target_rate


def test_the_schedule_of_seed_0_is_not_its_nominal_rate() -> None:
    """What the test above guards against is real: over the default window seed 0's schedule
    runs more than 5% slower than nominal at each of these rates, so a run held to the nominal
    rate is called invalid whatever the server does."""
    for rate in (1.0, 2.0, 5.0, 10.0):
        result = measure(perfect_run(Load("poisson", rate=rate, duration_s=10, warmup_s=2)))
        assert result.target_rate < 0.95 * rate, (rate, result.target_rate)


def departing(**knobs):
    """Requests asking the calibration server for one departure (bench/calibration.py)."""
    return lambda i: {**body(i), "calibration": knobs}


def closed(users: int = 2, duration: float = 1.0) -> Load:
    return Load("closed", concurrency=users, duration_s=duration, warmup_s=0.2, min_requests=6)


def count_t(text: str) -> int:
    return text.count(" t")  # the calibration server's every token is " t"


def test_tokens_come_from_the_text_not_from_events(calibration) -> None:
    """No usage, no ids, two tokens an event: counted per event, tok/s would be half and TPOT
    double. Re-tokenizing each whole text gives the truth; with no way to count, no tok/s."""
    run = asyncio.run(run_load(calibration[0], departing(tokens_per_event=2, ids=False,
                                                         usage=False), closed()))
    result = measure(run, count_tokens=count_t)
    assert result.errors == 0 and result.valid, result.invalid_because
    assert result.tokens.source == "client" and result.tokens.events_per_token == 0.5
    ended = median(result, "serve_requests_per_s")
    assert abs(median(result, "serve_output_tokens_per_s") - ended * TOKENS) <= \
        RATE_TOL * ended * TOKENS + TOKENS / result.window_s
    # two tokens every ITL: the true TPOT is half the event gap
    assert abs(median(result, "serve_tpot_s") - (TOKENS // 2 - 1) * ITL / (TOKENS - 1)) <= ITL_TOL
    blind = measure(run)
    assert blind.tokens.unknown == blind.tokens.requests > 0 and blind.tokens.source == ""
    assert blind.median("serve_output_tokens_per_s") is None and not blind.samples("serve_tpot_s")


def test_a_whole_stream_with_no_server_count_is_the_count_asked(calibration) -> None:
    """Audit finding 10: llama_cpp.server sends no usage and the client's re-tokenizing merged 32
    sampled tokens into 23.7. With EOS off and finish_reason "length" the stream gave exactly
    the count asked, and that is the count, named as such."""
    run = asyncio.run(run_load(calibration[0], departing(ids=False, usage=False), closed()))
    under = measure(run, count_tokens=lambda text: 3, expected_tokens=TOKENS)
    assert under.errors == 0 and under.tokens.source == "asked", under.errors_by_kind
    right = measure(run, count_tokens=count_t)
    assert under.median("serve_output_tokens_per_s") == right.median("serve_output_tokens_per_s")
    assert under.samples("serve_tpot_s") == right.samples("serve_tpot_s")


@pytest.mark.parametrize("count", [lambda text: TOKENS, lambda text: 3, None])
def test_a_short_stream_with_no_server_count_fails_whatever_the_client_counts(calibration,
                                                                             count) -> None:
    """Audit finding 16: behind a proxy that drops usage, streams cut after a few tokens passed
    as good requests. With no usage, no ids and no finish_reason "length", a stream is short of
    the tokens asked by any count the client can make: a failed request, the run no valid point."""
    run = asyncio.run(run_load(calibration[0], departing(stop_after=3, ids=False, usage=False),
                               closed()))
    result = measure(run, count_tokens=count, expected_tokens=TOKENS)
    assert result.errors == result.requests > 0 and list(result.errors_by_kind) == ["Truncated"]
    assert "no finish_reason" in result.error_examples[0] and not result.valid
    assert result.median("serve_goodput_per_s") == 0 and not result.samples("serve_ttft_s")


def test_an_empty_chunk_sent_at_once_does_not_start_the_ttft_clock(calibration) -> None:
    """Audit finding 17: a proxy sent an empty chunk at once and the first content 200 ms later,
    and TTFT read 4 ms. An event with no text, no ids and no logprobs is no token."""
    run = asyncio.run(run_load(calibration[0], departing(empty_first=True), closed(users=1)))
    result = measure(run, count_tokens=count_t, expected_tokens=TOKENS)
    assert result.errors == 0
    assert abs(result.median("serve_ttft_s") - TTFT) <= 4 * TTFT_TOL
    assert result.tokens.events_per_token == 1.0


def test_goodput_never_exceeds_the_requests_that_ended() -> None:
    """Audit finding 10: at 2 users goodput read 0.10/s where req/s read 0.00, the one counting
    requests scheduled in the window, the other requests that ended in it. Both count the one
    set of the window's requests now: here each was sent inside it and ended after it, and
    each user's span runs from its send to its end (2 requests over 4.95 s on average)."""
    load = Load("closed", concurrency=2, duration_s=1.0, warmup_s=0.0, min_requests=2)
    samples = [Sample(scheduled=t, sent=t, end=5.0, events=[0.5, 4.9], tokens=[1, 1],
                      usage_tokens=2, finish_reason="length", user=u)
               for u, t in enumerate((0.0, 0.1))]
    result = measure(Run(load, samples, (0.0, 1.0), 5.0, 0.01, [0.0]), slos={"ttft": 1.0})
    assert result.slo_attainment == 1.0
    assert result.median("serve_requests_per_s") == result.median("serve_goodput_per_s") == \
        pytest.approx(2 / 4.95)


@pytest.mark.parametrize(("knobs", "kind"), [
    ({"cut_after": 3}, "ClientPayloadError"),
    ({"error_after": 3}, "InStreamError"),
    ({"stop_after": 3}, "Truncated"),
])
def test_a_failed_stream_is_an_error_never_a_figure(calibration, knobs, kind) -> None:
    """A dropped connection, an error event inside the stream, a clean end short of the tokens
    asked (EOS off): each an error of its kind, in no latency or throughput figure, and a load
    level with more than 1% of them is no valid point, whatever the client did."""
    run = asyncio.run(run_load(calibration[0], departing(**knobs), closed()))
    result = measure(run, count_tokens=count_t, expected_tokens=TOKENS)
    assert result.errors == result.requests > 0
    assert list(result.errors_by_kind) == [kind], result.errors_by_kind
    assert not result.samples("serve_ttft_s") and result.median("serve_output_tokens_per_s") is None
    assert result.median("serve_goodput_per_s") == 0
    assert not result.valid
    assert result.invalid_because[0].startswith(f"{result.errors} of {result.requests} streams "
                                                f"failed ({result.errors} {kind}")


def test_the_knee_comes_before_a_step_whose_streams_fail() -> None:
    from incell.serve_bench import knee

    runs = [closed_run(1, 100), closed_run(2, 190), closed_run(4, 380)]
    runs[2].requests, runs[2].errors = 40, 30  # more throughput, from streams that failed
    found = knee(runs)
    assert (found.users, found.next_users) == (2, 4) and found.why == "30 of 40 streams failed"


def test_an_empty_chunk_is_a_token_only_where_the_server_says_so() -> None:
    """An empty completions chunk is a token only with its ids or logprobs (a real shape's ids
    past its tokenizer decode to nothing, and vLLM sends their ids); a chat delta carrying only
    the role, an empty chunk with neither, and the empty finishing chunk are not."""
    from bench.loadgen import read_event

    sample, pieces = Sample(scheduled=0.0), []
    read_event({"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]}, 0.1,
               sample, pieces)
    read_event({"choices": [{"text": "", "finish_reason": None}]}, 0.15, sample, pieces)
    assert sample.events == []
    for i, choice in enumerate([{"text": "", "token_ids": [7]}, {"text": "a"},
                                {"text": "", "logprobs": {"tokens": [""]}}]):
        read_event({"choices": [{**choice, "finish_reason": None}]}, 0.2 + i, sample, pieces)
    read_event({"choices": [{"text": "", "finish_reason": "length"}],
                "usage": {"completion_tokens": 3}}, 3.0, sample, pieces)
    assert sample.events == [0.2, 1.2, 2.2] and sample.usage_tokens == 3
    assert "".join(pieces) == "a" and sample.finish_reason == "length"


def test_the_chat_mode_sends_real_text_of_seeded_lengths() -> None:
    """serve-bench --chat: user turns of the committed real text, each opened by its number (no
    two alike), lengths uniform over [input/2, 3·input/2] tokens, the same on every run; EOS off
    and the output length fixed."""
    import argparse
    import types

    from incell.serve_bench import chat_lengths, chat_maker

    words: list[str] = []

    def encode(text: str, add_special_tokens: bool) -> types.SimpleNamespace:
        assert not add_special_tokens  # the chat template adds the model's own
        words.extend(text.split())  # a word a token: lengths read as words
        return types.SimpleNamespace(ids=list(range(len(words) - len(text.split()), len(words))))

    engine = types.SimpleNamespace(
        _tokenizer=types.SimpleNamespace(encode=encode),
        _body=lambda p: {"model": "m", "max_tokens": p.max_new_tokens, "ignore_eos": p.ignore_eos},
        _text=lambda ids: " ".join(words[i] for i in ids))
    args = argparse.Namespace(input_tokens=64, output_tokens=32)
    make, again = chat_maker(engine, args), chat_maker(engine, args)
    bodies = [make(i) for i in range(40)]
    assert bodies == [again(i) for i in range(40)]
    texts = [b["messages"][0]["content"] for b in bodies]
    low, high = chat_lengths(args)
    assert (low, high) == (32, 96) and all(low <= len(t.split()) <= high for t in texts)
    assert len({len(t.split()) for t in texts}) > 10 and len(set(texts)) == 40
    from fixtures.corpora import real_text

    corpus = {w for sample in real_text() for w in sample.text.split()}
    assert texts[7].startswith("Passage 7. ") and set(texts[7].split()[2:]) <= corpus
    assert all(b["max_tokens"] == 32 and b["ignore_eos"] and b["messages"][0]["role"] == "user"
               for b in bodies)
