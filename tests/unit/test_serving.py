"""Server cells without a server: the api rung's place in the ladder, the options that reach it,
the registry's transports, and the SERVING.md page on result records of every shape."""

from __future__ import annotations

import re

import pytest

from compat.cell import CellRun, Options
from compat.cli import UsageError, cell_options, property_names
from compat.ladder import not_climbed
from compat.matrix import load
from compat.rungs import STEPS
from compat.rungs.conformance import api
from core.bench_details import PrefixCache, ServeBenchDetail
from core.properties import PROPERTIES
from core.results import CellInfo, CellResult, Rung, machine_info, save
from engines import EngineEntry
from pages.render import render
from tests.unit.builders import cell, passing


def run_of(cell_id: str, tmp_path, **options) -> CellRun:
    return CellRun(cell=load().cell(cell_id), venv=tmp_path / "venv", options=Options(**options),
                   log=lambda _: None)


def test_the_api_rung_is_for_servers_only(tmp_path) -> None:
    rung = api(run_of("transformers-numpy2", tmp_path))
    assert (rung.status, rung.reason) == ("not_run", "in-process engine: no HTTP API")
    asked = api(run_of("transformers_server-base", tmp_path, properties=("greedy_parity",)))
    assert (asked.status, asked.reason) == ("not_run", "no api property asked")


def test_a_servers_api_is_checked_even_when_engine_properties_failed(tmp_path) -> None:
    run = run_of("transformers_server-base", tmp_path)
    assert not_climbed(run, STEPS["api"], "conformance", past_last=False) is None
    bench = not_climbed(run, STEPS["bench"], "conformance", past_last=False)
    assert (bench.status, bench.reason) == ("not_reached", "conformance failed")
    load_failed = not_climbed(run, STEPS["api"], "load", past_last=False)
    assert load_failed.status == "not_reached"


def test_api_properties_are_valid_for_servers_only() -> None:
    assert set(PROPERTIES["api"]) <= set(property_names("generation", "http"))
    assert not set(PROPERTIES["api"]) & set(property_names("generation"))
    assert cell_options(["--property", "sse_framing"], "generation", "http").properties == \
        ("sse_framing",)
    with pytest.raises(UsageError, match=r"'sse_framing'.*greedy_parity"):
        cell_options(["--property", "sse_framing"], "generation")


def test_a_transport_is_checked_by_name() -> None:
    with pytest.raises(ValueError, match=r"transport of m:C.*'grpc'.*http"):
        EngineEntry("m:C", "generation", transport="grpc")


def api_detail() -> dict:
    prop = {"status": "pass", "message": "", "cases": {"tiny": "pass"}}
    return {"properties": {
        "models_endpoint": prop,
        "sse_framing": {"status": "fail", "cases": {"tiny": "fail"},
                        "message": "[tiny] AssertionError: the stream does not end with data: [DONE]"
                                   "\nassert False"},
        "bad_input": {"status": "fail", "cases": {"tiny-unknown_model": "fail",
                                                  "tiny-malformed_json": "fail",
                                                  "tiny-wrong_type": "pass"},
                      "message": "[tiny-unknown_model] AssertionError: unknown_model: HTTP 200"},
        "n_choices": {"status": "deviation", "cases": {"tiny": "fail"}, "message": "[tiny] n=2",
                      "deviation": {"reason": "`n` is accepted and ignored", "link": ""}},
        "base64_encoding": {"status": "skip", "cases": {"tiny": "skip"},
                            "message": "[tiny] a property of embedding servers; x serves generation"},
        "wire_parity": {"status": "pass", "cases": {"tiny": "pass"}, "message": "",
                        "notes": {"tiny": "3/3 prompts the same text as transformers in process"}},
    }}


def test_serving_page_shows_each_departure(tmp_path) -> None:
    rungs = passing()
    rungs[3].detail = {"fixtures": {"tiny": {"path": "/f", "load_s": 4.2, "first_call_s": 0.1}}}
    rungs.insert(5, Rung("api", "fail", 30.0, detail=api_detail()))
    server = cell("transformers_server", "base", "generation", rungs)
    in_process = cell("transformers", "numpy2", "generation",
                      [*passing()[:5], Rung("api", "not_run", reason="in-process engine: no HTTP API"),
                       passing()[5]])
    results = tmp_path / "results"
    results.mkdir()
    for result in (server, in_process):
        (results / f"{result.cell.id}.json").write_text(result.to_json())
    render([results], tmp_path / "out")
    page = (tmp_path / "out" / "SERVING.md").read_text()
    assert "`transformers_server` · base" in page and "`transformers` ·" not in page
    assert "| `sse_framing` " in page and "base64_encoding" not in page  # the other kind's
    assert "stream_usage" not in page  # not in any record
    note = next(line for line in page.splitlines() if line.startswith("[^") and "sse_framing" in line)
    assert "the stream does not end with data: [DONE]" in note and "assert False" not in note
    assert "(failing: tiny-malformed_json, tiny-unknown_model)" in page
    assert "⚠️" in page and "`n` is accepted and ignored" in page
    assert "| 4.2 s " in page and "tiny: 3/3 prompts the same text as transformers in process" in page
    assert "[SERVING.md](SERVING.md)" in (tmp_path / "out" / "COMPATIBILITY.md").read_text()


def test_serving_page_shows_load_runs_with_validity_and_percentile_warnings(tmp_path) -> None:
    from bench.loadgen import Load, Run, Sample
    from bench.serving import measure

    # every third request sent 60 ms after its scheduled time (a client falling behind)
    sent = [0.1 * i + (0.06 if i % 3 == 0 else 0.0) for i in range(30)]
    samples = [Sample(scheduled=0.1 * i, sent=t, end=t + 0.3, events=[t + 0.05, t + 0.3],
                      tokens=[1, 1], text=" a b", usage_tokens=2) for i, t in enumerate(sent)]
    run = Run(Load("poisson", rate=20, concurrency=0, duration_s=3, warmup_s=0), samples,
              (0.0, 3.0), 3.0, 0.3,
              [0.001] * 10)
    closed = Run(Load("closed", concurrency=3), samples, (0.0, 3.0), 3.0, 0.3, [0.001])
    detail = ServeBenchDetail(
        engine="demo_server", server="demo serve", fixture="tiny", startup_s=1.5, input_tokens=16,
        output_tokens=2, runs=[measure(run, {"ttft": 1.0}, lambda text: len(text.split())),
                               measure(closed)],
        prefix_cache=PrefixCache("switch", "demo serve --no-prefix-cache"))
    results = tmp_path / "results"
    cell = CellInfo(id="demo_server-base", engine="demo_server", kind="generation", env="base")
    save(CellResult(cell=cell, machine=machine_info(), started_at="now",
                    rungs=[Rung("serve_bench", "pass", detail=detail)]), results / "serve-bench")
    render([results], tmp_path / "out")
    page = (tmp_path / "out" / "SERVING.md").read_text()
    assert "### `demo_server` (demo serve) on tiny" in page
    assert "no knee inside the sweep. Prefix cache off (`demo serve --no-prefix-cache`)." in page
    # 20 of the 30 requests its schedule put in the 3 s window were sent on time
    assert ("| 20/s poisson | ⚠️ invalid: achieved 6.67 req/s sent on time of the 10.00 its "
            "schedule asked in the window (20 nominal)") in page
    # 30 samples bound no p90 and above: marked; the p50 carries its interval
    assert "50 [50–50] / 50* / 50* / 50* (n=30)" in page
    # req/s, tok/s and goodput count the one set of 30 requests sent in the window, over the
    # window (their completions took no longer): 10.00/s, all of them met the SLO
    assert "0 of 30 differ" in page and "| 10.00   | 20          | 10.00 (100%) " in page
    assert "`serve_dispatch_delay_s` (s): send − scheduled send" in page
    # a closed loop of a 3 s window is measured alike and marked: no steady state
    assert re.search(r"\| 3 users +\| ⚠️ invalid: not a steady state: a window of 3 s, short of "
                     r"60 s +\| 10% +\|", page) and "![p50 and p99 TTFT" in page
    assert (tmp_path / "out" / "serving.png").exists()
    # a second results folder (another machine's, a CI job's): its load sweeps merged, not ignored
    other = CellInfo(id="other_server-base", engine="other_server", kind="generation", env="base")
    detail.engine, detail.server = "other_server", "other serve"
    save(CellResult(cell=other, machine=machine_info(), started_at="now",
                    rungs=[Rung("serve_bench", "pass", detail=detail)]),
         tmp_path / "ci-job" / "serve-bench")
    render([results, tmp_path / "ci-job"], tmp_path / "out")
    page = (tmp_path / "out" / "SERVING.md").read_text()
    assert "### `demo_server` (demo serve) on tiny" in page
    assert "### `other_server` (other serve) on tiny" in page


def test_an_api_departure_does_not_stop_the_bench(tmp_path) -> None:
    run = run_of("transformers_server-base", tmp_path)
    assert not_climbed(run, STEPS["bench"], "api", past_last=False) is None


def test_latency_falling_as_load_rises_is_said_with_its_intervals() -> None:
    """Two closed-loop points whose p50 intervals lie apart, the higher load faster: the page
    says so, with the figures, and names a batch's step time as a cause only where the server
    batches (its req/s grew with users); the same latencies at both loads say nothing."""
    from bench.loadgen import Load, Run, Sample
    from bench.serving import measure
    from pages.loadgen import falling

    def point(users: int, gap: float, requests: int = 40) -> object:
        starts = [4.0 / requests * i for i in range(requests)]
        samples = [Sample(scheduled=t, sent=t, end=t + 0.05 + gap + 0.001 * (i % 5),
                          events=[t + 0.05, t + 0.05 + gap + 0.001 * (i % 5)], tokens=[1, 1],
                          text=" a b", usage_tokens=2) for i, t in enumerate(starts)]
        return measure(Run(Load("closed", concurrency=users), samples, (0.0, 4.0), 4.0, 0.3, [0.001]))

    def detail(*runs) -> ServeBenchDetail:
        return ServeBenchDetail(engine="demo_server", server="demo serve", fixture="tiny-shape",
                                startup_s=1.0, input_tokens=16, output_tokens=2, runs=list(runs))

    lines = falling(detail(point(1, 0.25), point(2, 0.15, requests=80)))
    assert lines and lines[0].startswith("⚠️ Latency falls as load rises, the p50 intervals apart")
    assert "ITL p50 252 ms [251–253] at 1 users, 152 ms [151–153] at 2" in lines[0]
    assert "--fixture tiny-shape --batches 1,2,3,4" in lines[0]
    one_at_a_time = falling(detail(point(1, 0.25), point(2, 0.15)))[0]
    assert ("This server does not batch (its best req/s 10.00, at 1 users, against 10.00 at 1)"
            in one_at_a_time)
    assert "--batches" not in one_at_a_time
    assert falling(detail(point(1, 0.25), point(2, 0.25))) == []


def test_a_point_that_breaks_littles_law_is_not_a_valid_point() -> None:
    """N users hold at most N requests in flight: in a record older than the steady-state
    judgement, req/s × mean end-to-end past N means the window counted requests it did not hold
    whole, and the page says so."""
    from bench.loadgen import Load, Run, Sample
    from bench.serving import measure
    from pages.loadgen import run_row, unsteady

    def point(users: int) -> object:  # 40 requests of 0.3 s in a 4 s window, judged as before
        starts = [0.1 * i for i in range(40)]
        samples = [Sample(scheduled=t, sent=t, end=t + 0.3, events=[t + 0.05, t + 0.3],
                          tokens=[1, 1], text=" a b", usage_tokens=2) for t in starts]
        found = measure(Run(Load("closed", concurrency=users), samples, (0.0, 4.0), 4.0, 0.3, [0.001]))
        found.steady, found.unsteady_because = None, []  # as a record of before 2026-12-07 reads
        return found

    one = point(1)
    assert unsteady(one).startswith("not a steady state: req/s × mean end-to-end = 3.")
    assert unsteady(one).endswith("> 1 users (Little's law)")
    assert run_row(one)[1].startswith("⚠️ invalid: not a steady state")
    assert unsteady(point(4)) == ""


def lockstep(users: int, e2e: float, window: float, warmup: float = 2.0) -> object:
    """A closed loop against a batching server: every user's request takes `e2e`, all of them
    sent together at 0 and ending together (the issue's vllm serve point: 4 users, 2.3 s)."""
    from bench.loadgen import Load, Run, Sample

    samples = [Sample(scheduled=k * e2e, sent=k * e2e, end=(k + 1) * e2e,
                      events=[k * e2e + 0.1, (k + 1) * e2e], tokens=[16, 16], text=" a b",
                      usage_tokens=32, user=u)
               for u in range(users) for k in range(int((warmup + window) / e2e) + 2)]
    load = Load("closed", concurrency=users, duration_s=window, warmup_s=warmup)
    return Run(load, samples, (warmup, warmup + window), warmup + window + e2e, 0.3, [0.001])


def test_one_set_of_requests_makes_every_figure_of_a_point() -> None:
    """Counting the requests that ended in a 10 s window (warm-up requests among them) against
    the end-to-end of those sent in it gave 4.69 in flight at 4 users. One set, each user's own
    span: Little's law holds exactly whatever the window's edges cut, req/s × tokens a request
    is out tok/s, and a 10 s point is marked as no steady state while a 60 s one is one."""
    from bench.serving import measure
    from pages.loadgen import run_row, unsteady

    for window in (10.0, 60.0):
        result = measure(lockstep(4, 2.3, window))
        rate = result.median("serve_requests_per_s")
        e2e = result.samples("serve_e2e_s")
        assert rate * sum(e2e) / len(e2e) == pytest.approx(4.0)
        assert rate * 32 == pytest.approx(result.median("serve_output_tokens_per_s"))
    short, steady = measure(lockstep(4, 2.3, 10.0)), measure(lockstep(4, 2.3, 60.0))
    assert short.steady is False and short.unsteady_because == [
        "a window of 10 s, short of 60 s", "5.0 requests a user, short of 10"]
    assert unsteady(short).startswith("not a steady state: a window of 10 s")
    assert run_row(short)[1].startswith("⚠️ invalid: not a steady state")
    assert steady.steady is True and unsteady(steady) == "" and steady.unsteady_because == []
    assert steady.load.per_user == 10
