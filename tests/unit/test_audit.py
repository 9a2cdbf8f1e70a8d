"""The audit (pages/audit.py): each check catches a results file doctored the way a real report
once went wrong, and passes the same record undoctored."""

from __future__ import annotations

import copy
import json

import pytest

from bench.loadgen import Load, Run, Sample
from bench.serving import measure
from core.records import to_json
from core.results import SCHEMA_VERSION, CellResult, Rung
from pages.audit import audit, main
from tests.conftest import REPO

COMMITTED = REPO / "reports" / "results.json"


@pytest.fixture(scope="module")
def cells() -> dict[str, dict]:
    return {c["cell"]["id"]: c for c in json.loads(COMMITTED.read_text(encoding="utf-8"))["cells"]}


def bench_of(cell: dict) -> dict:
    return next(r for r in cell["rungs"] if r["name"] == "bench")["detail"]


def metric(detail: dict, name: str) -> dict:
    return next(m for m in detail["metrics"] if m["name"] == name)


def checks(cell: dict) -> list[str]:
    return [f"{f.check}: {f.what}" for f in audit([CellResult.from_dict(cell)])]


@pytest.fixture
def clean(cells) -> dict:
    """A generation cell's record as a run wrote it: a bench with its roofline (read probe,
    compute peak), every derived figure consistent."""
    cell = json.loads(CellResult.from_dict(copy.deepcopy(cells["llama_cpp-numpy2"])).to_json())
    assert cell["schema"] == SCHEMA_VERSION and checks(cell) == []  # doctored as runs write now
    return cell


def test_a_prefill_figure_that_is_not_prompt_over_ttft_is_caught(clean) -> None:
    metric(bench_of(clean), "prefill_tokens_per_s")["samples"][3] *= 1.5
    assert [c for c in checks(clean) if c.startswith("derived: prefill tok/s")]


def test_a_decode_sample_kept_from_a_round_whose_ttft_outlasted_its_answer_is_caught(clean) -> None:
    """Audit finding 4: ctranslate2·numpy2's 3.1e10 tok/s, TTFT 28.97 ms against end-to-end
    28.33 ms, the difference clamped to 1e-9 s."""
    detail = bench_of(clean)
    metric(detail, "ttft_s")["samples"][2] = 0.02897
    metric(detail, "e2e_s")["samples"][2] = 0.02833
    metric(detail, "decode_tokens_per_s")["samples"][2] = 31 / 1e-9
    metric(detail, "tpot_s")["samples"][2] = 1e-9 / 31
    found = checks(clean)
    assert any("decode tok/s" in c and "was kept" in c for c in found), found


def test_tpot_that_is_not_the_inverse_of_decode_is_caught(clean) -> None:
    metric(bench_of(clean), "tpot_s")["samples"][0] *= 2
    assert [c for c in checks(clean) if c.startswith("derived: TPOT")]


def test_mbu_of_another_bandwidth_than_the_probes_best_is_caught(clean) -> None:
    """MBU's rows are derived from the samples (nothing stored to disagree); what a record
    still states is the bandwidth it divides by, held to the probe's best reading."""
    bench_of(clean)["roofline"]["bandwidth_gb_s"] *= 0.8
    assert [c for c in checks(clean) if c.startswith("roofline: MBU divides by")]


def test_mbu_of_a_copys_bandwidth_is_caught(clean) -> None:
    """Audit finding 2: a copy's bandwidth in a column defined as a read's."""
    del metric(bench_of(clean), "memory_bandwidth_gb_s")["params"]["access"]
    assert [c for c in checks(clean) if "copy's bandwidth" in c]


def test_a_decode_sample_past_the_bandwidth_is_caught(clean) -> None:
    """Weights too big for the cache (here: a cache of one byte) read at more than the probe's
    best reading allows."""
    detail = bench_of(clean)
    roof = detail["roofline"]
    roof["last_level_cache_bytes"] = 1
    decode = metric(detail, "decode_tokens_per_s")
    best = max(metric(detail, "memory_bandwidth_gb_s")["samples"]) * 1e9
    bound = best / roof["weight_bytes_per_token"]
    # every sample well inside the bound first (the committed fixture fits in the cache, so its
    # figures may pass a DRAM bound), the derived figures kept consistent
    for name, value in (("decode_tokens_per_s", 0.5 * bound), ("tpot_s", 2 / bound)):
        record = metric(detail, name)
        record["samples"] = [value] * len(record["samples"])
        record["stats"].update({k: value for k in ("median", "p90", "p99", "min", "max", "mean")})
    assert checks(clean) == []
    decode["samples"][0] = 1.01 * bound
    metric(detail, "tpot_s")["samples"][0] = 1 / decode["samples"][0]
    found = [c for c in checks(clean) if c.startswith("limits:")]
    assert found and "past the bandwidth bound" in found[0]


def test_a_prefill_sample_past_the_matmul_peak_is_caught(clean) -> None:
    """Audit finding 12: prefill 1.5× the float32 peak (it computed in bf16)."""
    detail = bench_of(clean)
    roof = detail["roofline"]
    flops = roof["flops_per_token"] = 8_000_000.0  # what incell/throughput/run.py writes now
    assert checks(clean) == []
    peak = max(metric(detail, "compute_tflops")["samples"]) * 1e12
    ttft, prefill = metric(detail, "ttft_s"), metric(detail, "prefill_tokens_per_s")
    prefill["samples"][1] = 1.5 * peak / flops
    ttft["samples"][1] = 128 / prefill["samples"][1]
    found = [c for c in checks(clean) if c.startswith("limits:")]
    assert found and "float32 matmul peak" in found[0]
    # an engine computes logits at the last prompt position only (vLLM, llama.cpp): what a
    # prompt token must cost leaves the output projection out, and 1.2x the full count is not
    # past the peak when the head is a third of the weights
    roof["least_flops_per_token"] = flops * 2 / 3
    prefill["samples"][1] = 1.2 * peak / flops
    ttft["samples"][1] = 128 / prefill["samples"][1]
    assert checks(clean) == []
    prefill["samples"][1] = 1.6 * peak / flops
    ttft["samples"][1] = 128 / prefill["samples"][1]
    assert [c for c in checks(clean) if c.startswith("limits:")]


def test_a_pass_whose_note_says_none_held_is_caught(clean) -> None:
    """Audit finding 8: wire_parity ✅ beside "0/3 prompts the same text"."""
    rung = next(r for r in clean["rungs"] if r["name"] == "conformance")
    name, prop = next((n, p) for n, p in rung["detail"]["properties"].items()
                      if p["status"] == "pass")
    prop["notes"] = {"tiny-llama": "0/3 prompts the same text as llama_cpp in process"}
    assert checks(clean) == [f"checks_ran: {name} passes while its note on tiny-llama says "
                             "'0/3 prompts the same text as llama_cpp in process'"]


def test_a_pass_whose_every_case_was_skipped_is_caught(clean) -> None:
    """A doctored record: one property reads passed while every one of its cases was skipped
    (it got 0 findings before). A ✅ needs a case that ran."""
    rung = next(r for r in clean["rungs"] if r["name"] == "conformance")
    name, prop = next((n, p) for n, p in rung["detail"]["properties"].items()
                      if p["status"] == "pass" and len(p["cases"]) > 1)
    prop["cases"] = {case: "skip" for case in prop["cases"]}
    assert checks(clean) == [f"checks_ran: {name} passes while every one of its "
                             f"{len(prop['cases'])} case(s) was skipped"]
    prop["cases"][next(iter(prop["cases"]))] = "pass"  # one case ran: the ✅ stands
    assert checks(clean) == []


def test_a_text_quality_verdict_its_perplexity_contradicts_is_caught(cells) -> None:
    """Issue 44: QUANTIZATION's perplexity ratio against its bound and verdict. A doctored
    record: a Q4_0 cell's perplexity raised past 1.50x the reference's while it reads passed;
    then the verdict flipped to failed on the figure that passes; then a perplexity outside its
    own interval."""
    cell = copy.deepcopy(cells["llama_cpp-quantq4_0"])
    assert checks(cell) == []
    rung = next(r for r in cell["rungs"] if r["name"] == "conformance")
    prop = rung["detail"]["properties"]["text_quality"]
    text = next(iter(prop["figures"].values()))["text"]
    reference, measured = text["reference_perplexity"], text["perplexity"]
    text["perplexity"] = text["perplexity_high"] = reference * 1.6
    assert checks(cell) == [f"text_quality: {next(iter(prop['figures']))}: pass where the "
                            "perplexity is 1.6000x the reference's and the bound 1.5x (q4_0, "
                            "float32)"]
    text["perplexity"], prop["status"] = measured, "fail"
    assert [c for c in checks(cell) if "fail where the perplexity is" in c]
    prop["status"], text["perplexity"] = "pass", text["perplexity_low"] / 2
    assert [c for c in checks(cell) if "outside its interval" in c]


def serve_cell(clean: dict, samples: list[Sample]) -> dict:
    """`clean` carrying a serve_bench rung of one closed-loop run over `samples`."""
    from core.bench_details import ServeBenchDetail

    load = Load("closed", concurrency=2, duration_s=1.0, warmup_s=0.0, min_requests=2)
    run = measure(Run(load, samples, (0.0, 1.0), 1.0, 0.01, [0.0]), slos={"ttft": 1.0})
    detail = ServeBenchDetail(engine="llama_server", server="llama-server", fixture="x",
                              startup_s=1.0, input_tokens=8, output_tokens=2, runs=[run])
    rung = to_json(Rung("serve_bench", "pass", detail=detail))
    return {**clean, "rungs": [*clean["rungs"], rung]}


def test_goodput_above_the_request_rate_and_ttft_past_the_end_are_caught(clean) -> None:
    """Audit finding 10: goodput 0.10/s beside 0.00 req/s."""
    samples = [Sample(scheduled=t, sent=t, end=t + 0.3, events=[t + 0.1, t + 0.3], tokens=[1, 1],
                      usage_tokens=2, finish_reason="length") for t in (0.0, 0.1)]
    cell = serve_cell(clean, samples)
    assert checks(cell) == []
    run = next(r for r in cell["rungs"] if r["name"] == "serve_bench")["detail"]["runs"][0]
    goodput = next(m for m in run["metrics"] if m["name"] == "serve_goodput_per_s")
    goodput["samples"] = [goodput["samples"][0] + 0.1]
    ttft = next(m for m in run["metrics"] if m["name"] == "serve_ttft_s")
    ttft["samples"][0] = 5.0
    found = checks(cell)
    assert any("goodput" in c and "exceeds" in c for c in found), found
    assert any("TTFT is longer than its end-to-end" in c for c in found), found


def test_an_itl_that_is_not_per_token_is_caught(clean) -> None:
    """Issue 44: ITL timed gaps between deliveries (215–320 gaps for 310 tokens). Per token, a
    request's gaps sum to its end-to-end less its TTFT: the mean ITL is the mean TPOT."""
    samples = [Sample(scheduled=t, sent=t, end=t + 0.3, events=[t + 0.1, t + 0.3], tokens=[1, 1],
                      usage_tokens=2, finish_reason="length") for t in (0.0, 0.1)]
    cell = serve_cell(clean, samples)
    run = next(r for r in cell["rungs"] if r["name"] == "serve_bench")["detail"]["runs"][0]
    itl = next(m for m in run["metrics"] if m["name"] == "serve_itl_s")
    assert itl["samples"] and checks(cell) == []
    itl["samples"] = [s / 2 for s in itl["samples"]]
    assert [c for c in checks(cell) if "mean ITL is 0.500x the mean TPOT" in c]


def test_a_point_recorded_steady_is_held_to_littles_law_and_its_token_count(clean) -> None:
    """Issue 44's serving finding: 4.69 requests in flight at 4 users, and req/s × 32 tokens
    beside out tok/s 64.0 vs 57.4. A doctored steady point is caught on each."""
    samples = [Sample(scheduled=t, sent=t, end=t + 0.3, events=[t + 0.1, t + 0.3], tokens=[1, 1],
                      usage_tokens=2, finish_reason="length") for t in (0.0, 0.1)]
    cell = serve_cell(clean, samples)
    run = next(r for r in cell["rungs"] if r["name"] == "serve_bench")["detail"]["runs"][0]
    run["valid"], run["steady"] = True, True
    assert checks(cell) == []
    rate = next(m for m in run["metrics"] if m["name"] == "serve_requests_per_s")
    e2e = next(m for m in run["metrics"] if m["name"] == "serve_e2e_s")
    e2e["samples"] = [2.5 / rate["samples"][0]] * len(e2e["samples"])  # 2.5 in flight, 2 users
    out = next(m for m in run["metrics"] if m["name"] == "serve_output_tokens_per_s")
    out["samples"] = [out["samples"][0] * 0.9]
    found = checks(cell)
    assert any("req/s × mean end-to-end = 2.50 > 2 users" in c for c in found), found
    assert any("req/s × 2 tokens" in c and "where out tok/s" in c for c in found), found
    run["steady"] = None  # recorded before it was judged: the page marks it, the audit does not
    assert checks(cell) == []


def test_the_committed_reports_pass_the_audit(capsys) -> None:
    """Its first test failed the reports committed before it (MBU of a copy's bandwidth on the
    quantization cells, wire_parity ✅ at 0/3 texts the same); measured again, they pass."""
    assert main([str(COMMITTED)]) == 0, capsys.readouterr().out


def test_the_audit_names_a_path_that_is_not_there(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["no/such/results.json"])
    assert "'no/such/results.json' does not exist" in capsys.readouterr().err


def rendered_page(tmp_path, monkeypatch, samples: list[float]):
    """A real-shape row rendered into a page with its citations, from inside tmp_path (the
    citations name records relative to the working folder, as `nox -s report` writes them)."""
    from bench.stats import summarize
    from core.results import write_atomic
    from pages.render import render
    from tests.unit.builders import cell, passing, shape_bench

    monkeypatch.chdir(tmp_path)  # the layout of reports/: the records beside the pages
    bench = shape_bench(100.0, 100 * 2**20)
    bench["metrics"][0]["samples"] = samples
    bench["metrics"][0]["stats"] = summarize(samples)
    write_atomic(tmp_path / "out" / "records" / "real-shape" / "smollm2-135m-shape" /
                 "gen-numpy2.json", cell("gen", "numpy2", "generation", passing(bench)).to_json())
    render([tmp_path / "out" / "records"], tmp_path / "out")
    (tmp_path / "empty").mkdir()  # the pages' checks alone: the builder's record is not whole
    return tmp_path / "out" / "THROUGHPUT.md"


def test_the_audit_reads_the_pages_and_catches_a_figure_edited_by_hand(tmp_path, monkeypatch,
                                                                       capsys) -> None:
    page = rendered_page(tmp_path, monkeypatch, [99.0, 100.0, 101.0, 100.5, 99.5])
    sources = json.loads((tmp_path / "out" / "THROUGHPUT.sources.json").read_text())
    decode = next(f for f in sources["figures"] if f["metric"] == "decode_tokens_per_s")
    assert decode["text"] == "100.0" and decode["record"].startswith("records/real-shape/")
    assert main(["empty", "--pages", "out"]) == 0
    text = page.read_text()
    page.write_text(text.replace("| 100.0 ", "| 110.0 ", 1))  # a reader's figure, edited
    assert main(["empty", "--pages", "out"]) == 1
    out = capsys.readouterr().out
    assert "'100.0' (decode_tokens_per_s median of records/" in out
    assert "is not in the table cell its render printed it in (it reads '110.0')" in out


def test_the_audit_catches_a_record_whose_samples_no_longer_give_the_page(tmp_path, monkeypatch,
                                                                           capsys) -> None:
    rendered_page(tmp_path, monkeypatch, [99.0, 100.0, 101.0, 100.5, 99.5])
    path = tmp_path / "out" / "records" / "real-shape" / "smollm2-135m-shape" / "gen-numpy2.json"
    record = json.loads(path.read_text())
    record["rungs"][-1]["detail"]["metrics"][0]["samples"] = [90.0, 91.0, 92.0, 91.5, 90.5]
    path.write_text(json.dumps(record))
    assert main(["empty", "--pages", "out"]) == 1
    assert "printed '100.0' where the samples of records/real-shape" in capsys.readouterr().out


def test_the_audit_catches_a_noisy_median_shown_without_its_flag(tmp_path, monkeypatch,
                                                                 capsys) -> None:
    page = rendered_page(tmp_path, monkeypatch, [70.0, 100.0, 130.0, 85.0, 115.0])  # CV 24%
    text = page.read_text()
    assert "| 100.0 ⚠️ CV 24%" in text
    assert main(["empty", "--pages", "out"]) == 0
    page.write_text(text.replace("| 100.0 ⚠️ CV 24%", "| 100.0", 1))
    assert main(["empty", "--pages", "out"]) == 1
    assert "has CV 24% and no ⚠️ beside it" in capsys.readouterr().out


def test_the_audit_catches_a_table_that_sets_two_runs_side_by_side(tmp_path, monkeypatch,
                                                                    capsys) -> None:
    """One comparison, one run: the render splits its tables by run, so a table whose rows'
    records name two runs is a page that is not its records' (here one record's run id is
    doctored after the render)."""
    from core.results import write_atomic
    from pages.render import render
    from tests.unit.builders import cell, passing, shape_bench

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "out" / "records" / "real-shape" / "smollm2-135m-shape"
    for name, decode in (("gen", 100.0), ("other", 50.0)):
        bench = {**shape_bench(decode, 100 * 2**20), "run": "20261208T000000"}
        write_atomic(folder / f"{name}-numpy2.json",
                     cell(name, "numpy2", "generation", passing(bench)).to_json())
    render([tmp_path / "out" / "records"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    assert main(["empty", "--pages", "out"]) == 0
    record = json.loads((folder / "other-numpy2.json").read_text())
    record["rungs"][-1]["detail"]["run"] = "20261201T000000"
    (folder / "other-numpy2.json").write_text(json.dumps(record))
    assert main(["empty", "--pages", "out"]) == 1
    assert "one_run: the table at line" in capsys.readouterr().out


def test_the_audit_catches_a_column_of_fractions_of_two_limits(tmp_path, monkeypatch,
                                                                capsys) -> None:
    """One limit down a column: each MBU is cited with the bandwidth it divides by, recomputed,
    and a table whose rows divide by two bandwidths is caught (a render doctored to do so)."""
    from core.results import write_atomic
    from pages.render import render
    from tests.unit.builders import cell, passing, shape_bench

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "out" / "records" / "real-shape" / "smollm2-135m-shape"
    for name, decode in (("gen", 100.0), ("other", 50.0)):
        write_atomic(folder / f"{name}-numpy2.json", cell(name, "numpy2", "generation", passing(
            shape_bench(decode, 100 * 2**20))).to_json())
    render([tmp_path / "out" / "records"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    assert main(["empty", "--pages", "out"]) == 0
    path = tmp_path / "out" / "THROUGHPUT.sources.json"
    sources = json.loads(path.read_text())
    fractions = [f for f in sources["figures"] if "limit" in f]
    assert len(fractions) == 2 and fractions[0]["format"] == "pct"
    fractions[1]["limit"]["bytes_per_s"] *= 2  # the second row divided by another bandwidth
    fractions[1]["scale"] /= 2
    path.write_text(json.dumps(sources))
    assert main(["empty", "--pages", "out"]) == 1
    out = capsys.readouterr().out
    assert "one_limit: the table at line" in out and "divides its cpu rows by 2 limits" in out


def test_the_audit_reads_the_serving_page_too(tmp_path, monkeypatch, clean, capsys) -> None:
    """SERVING.md's req/s and out tok/s are cited per load run; one edited by hand is caught."""
    from core.results import write_atomic
    from pages.render import render

    monkeypatch.chdir(tmp_path)
    samples = [Sample(scheduled=t, sent=t, end=t + 0.3, events=[t + 0.1, t + 0.3], tokens=[1, 1],
                      usage_tokens=2, finish_reason="length") for t in (0.0, 0.1)]
    write_atomic(tmp_path / "out" / "records" / "serve-bench" / "llama_server-base.json",
                 json.dumps(serve_cell(clean, samples)))
    render([tmp_path / "out" / "records"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    cited = json.loads((tmp_path / "out" / "SERVING.sources.json").read_text())["figures"]
    rate = next(f for f in cited if f["metric"] == "serve_requests_per_s")
    assert rate["load_run"] == 0 and rate["record"] == "records/serve-bench/llama_server-base.json"
    assert main(["empty", "--pages", "out"]) == 0
    page = tmp_path / "out" / "SERVING.md"
    page.write_text(page.read_text().replace(f"| {rate['text']} ", "| 9.99 ", 1))
    assert main(["empty", "--pages", "out"]) == 1
    out = capsys.readouterr().out
    assert f"'{rate['text']}' (serve_requests_per_s median of records/serve-bench/" in out
    assert "is not in the table cell its render printed it in (it reads '9.99')" in out


def test_the_audit_recomputes_the_serving_pages_latency_percentiles(tmp_path, monkeypatch, clean,
                                                                    capsys) -> None:
    """Each TTFT, ITL and end-to-end percentile on SERVING.md is cited and recomputed: a record
    whose TTFT samples changed no longer gives the page's p99."""
    from core.results import write_atomic
    from pages.render import render

    monkeypatch.chdir(tmp_path)
    samples = [Sample(scheduled=t, sent=t, end=t + 0.3, events=[t + 0.1, t + 0.3], tokens=[1, 1],
                      usage_tokens=2, finish_reason="length") for t in (0.0, 0.1)]
    path = tmp_path / "out" / "records" / "serve-bench" / "llama_server-base.json"
    write_atomic(path, json.dumps(serve_cell(clean, samples)))
    render([tmp_path / "out" / "records"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    cited = json.loads((tmp_path / "out" / "SERVING.sources.json").read_text())["figures"]
    stats = {(f["metric"], f["stat"]) for f in cited}
    assert {("serve_ttft_s", "p50"), ("serve_ttft_s", "p99"), ("serve_e2e_s", "p95"),
            ("serve_dispatch_delay_s", "p99")} <= stats
    assert main(["empty", "--pages", "out"]) == 0
    record = json.loads(path.read_text())
    run = next(r for r in record["rungs"] if r["name"] == "serve_bench")["detail"]["runs"][0]
    next(m for m in run["metrics"] if m["name"] == "serve_ttft_s")["samples"][-1] = 0.25
    path.write_text(json.dumps(record))
    assert main(["empty", "--pages", "out"]) == 1
    assert "serve_ttft_s p99 printed '100' where the samples of records/serve-bench/" \
        in capsys.readouterr().out


def test_the_audit_reads_the_quantization_page(tmp_path, capsys) -> None:
    """QUANTIZATION.md's decode tok/s, TTFT and sentences/s are cited (with their CV flags): the
    committed page beside its records passes, and a decode figure edited by hand is caught."""
    reports = REPO / "reports"
    for name in ("QUANTIZATION.md", "QUANTIZATION.sources.json"):
        (tmp_path / name).write_text((reports / name).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "records").symlink_to(reports / "records")
    cited = json.loads((tmp_path / "QUANTIZATION.sources.json").read_text())["figures"]
    decode = next(f for f in cited if f["metric"] == "decode_tokens_per_s")
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--pages", str(tmp_path)]) == 0
    page = tmp_path / "QUANTIZATION.md"
    lines = page.read_text(encoding="utf-8").splitlines()
    cells = lines[decode["line"] - 1].split("|")
    cells[decode["cell"]] = cells[decode["cell"]].replace(decode["text"], "9,999", 1)
    lines[decode["line"] - 1] = "|".join(cells)
    page.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main([str(tmp_path / "empty"), "--pages", str(tmp_path)]) == 1
    assert f"{decode['text']!r} (decode_tokens_per_s median of records/" in capsys.readouterr().out

