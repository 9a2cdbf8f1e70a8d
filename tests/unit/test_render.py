"""pages/render.py on result records of every shape a run can produce."""

from __future__ import annotations

import re

import pytest

from bench.stats import summarize
from compat.bisect import save_record
from core.details import BisectProbe, BisectRecord, Boundary, Fallback, ResolveDetail
from core.results import CellResult, ErrorInfo, Rung, write_atomic
from pages.render import render
from tests.unit.builders import (
    RUNG_NAMES,
    cell,
    failing_at,
    gen_metric,
    metric,
    passing,
    shape_bench,
)


def every_verdict() -> list[CellResult]:
    """A failure shared by two cells, a pass, a noisy pass, an install failure, a CUDA cell."""
    missing = ErrorInfo.from_message("ModuleNotFoundError", "No module named 'optimum.bt'",
                                     "Traceback (most recent call last):\n  boom")
    install = ErrorInfo.from_message("InstallError", "Failed to build `foo==1.0`", "uv said no")
    bench = {"fixture": "all-minilm-l6-v2", "peak_rss_mib": 512.0,
             "metrics": [metric([100.0, 101.0, 99.0, 100.5, 100.2])]}
    noisy = {"fixture": "all-minilm-l6-v2", "peak_rss_mib": 512.0,
             "metrics": [metric([50.0, 100.0, 150.0, 60.0, 140.0])]}
    return [
        cell("emb_a", "numpy1", "embedding", failing_at("import", missing)),
        cell("emb_b", "numpy1", "embedding", failing_at("import", missing)),
        cell("emb_a", "numpy2", "embedding", passing(bench)),
        cell("emb_b", "numpy2", "embedding", passing(noisy)),
        cell("gen", "numpy2", "generation", failing_at("install", install)),
        cell("gen", "numpy2-cuda", "generation",
             [Rung("resolve", "pass", 1.0)] + [Rung(n, "not_run", reason="needs CUDA")
                                               for n in RUNG_NAMES[1:]]),
    ]


def test_report_shows_every_verdict_with_shared_footnotes(tmp_path) -> None:
    results = every_verdict()
    for r in results:
        write_atomic(tmp_path / "results" / f"{r.cell.id}.json", r.to_json())
    (tmp_path / "results" / "broken.json").write_text("{")
    render([tmp_path / "results"], tmp_path / "out")
    compat = (tmp_path / "out" / "COMPATIBILITY.md").read_text()
    tput = (tmp_path / "out" / "THROUGHPUT.md").read_text()

    assert "Legend: ✅ pass" in compat and "Machine: Test CPU, 2 cores" in compat
    refs = re.findall(r"❌ import \[\^(\d+)\]", compat)
    assert len(refs) == 2 and refs[0] == refs[1]  # one footnote shared by both cells
    assert (f"[^{refs[0]}]: **import** `ModuleNotFoundError: optimum.bt` — No module named "
            "'optimum.bt' — cells: emb_a-numpy1, emb_b-numpy1") in compat
    assert re.search(r"❌ install \[\^\d+\]", compat)
    assert "no result" not in compat  # columns are per engine family
    assert "➖ install: needs CUDA" in compat
    assert "broken.json" in compat  # unreadable files are named, not fatal
    conformance = (tmp_path / "out" / "CONFORMANCE.md").read_text()
    assert "Conformance, property by property: [CONFORMANCE.md](CONFORMANCE.md)." in compat
    rows = [ln for ln in conformance.splitlines() if ln.startswith("| `emb_")]
    assert len(rows) == 4  # every embedding cell has a row, reached conformance or not
    assert all(cell.strip() for row in rows for cell in row.strip("|").split("|"))
    assert re.search(r"\[\^\d+\]: \*\*known_value\*\* `known_value: no published value`",
                     conformance)
    assert "not reached: import failed (see COMPATIBILITY.md)" in conformance
    assert "numpy 2.4.6" in compat
    assert "100.2 sent/s (CV 1%)" in tput
    rows = [ln for ln in tput.splitlines() if ln.startswith("| `")]
    assert "Shape: batch 32 (fixture all-minilm-l6-v2); one table per run." in tput
    assert [("⚠️ noisy" in row) for row in rows] == [False, True]  # emb_a steady, emb_b noisy
    assert "Cells without figures (see COMPATIBILITY.md): " in tput


def declared_and_overridden() -> list[CellResult]:
    """A known failure, a fallback, an undeclared failure, a lifted pin, a removed package and a
    declared incompatibility that now passes."""
    known_sig = ("ResolutionError: all versions of embed depend on numpy>=1.20.0,<2; "
                 "you require embed and numpy>=2")
    fallback = Rung("resolve", "pass", 1.0, reason="resolved only by falling back from "
                    "infinity-emb 0.0.78 to 0.0.45",
                    error=ErrorInfo("Fallback", "fell back", "Fallback: infinity-emb 0.0.78 → "
                                    "0.0.45", "infinity-emb: Because infinity-emb>=0.0.46 "
                                    "depends on numpy<2 and you require numpy>=2"))
    lifted = cell("infinity_emb", "numpy2-lift-numpy", "embedding", passing(),
                  overrides=["numpy>=2"], why="Lifts the pin")
    removed = cell("embed", "numpy1-optimum1.23-pyarrowlt20-no-torchvision", "embedding", passing(),
                   overrides=["torchvision; sys_platform == 'never'"])
    now_passing = cell("embed", "numpy1", "embedding", passing())  # declared known at import
    return [
        cell("embed", "numpy2", "embedding",
             failing_at("resolve", ErrorInfo("ResolutionError", "No solution", known_sig, "..."))),
        cell("infinity_emb", "numpy2", "embedding", [fallback, *passing()[1:]]),
        cell("sentence_transformers", "numpy1", "embedding",
             failing_at("load", ErrorInfo.from_message("OSError", "disk full"))),
        lifted, removed, now_passing,
    ]


def test_known_fallbacks_lifted_pins_and_callouts(tmp_path) -> None:
    from compat.matrix import load as load_matrix

    matrix = load_matrix()
    results = declared_and_overridden()
    for r in results:
        write_atomic(tmp_path / "results" / f"{r.cell.id}.json", r.to_json())
    probes = [BisectProbe(v, v == "0.0.45") for v in ("0.0.78", "0.0.45", "0.0.46")]
    save_record(BisectRecord(
        cell="infinity_emb-numpy2", package="infinity-emb", good_start="0.0.45",
        releases_considered=34, max_probes=9, boundary=Boundary("regression", True, "0.0.45", "0.0.46"),
        failing_rung="resolve", signature="ResolutionError: x", probes=probes, machine={}),
        tmp_path / "results")
    render([tmp_path / "results"], tmp_path / "out", matrix=matrix)
    text = (tmp_path / "out" / "COMPATIBILITY.md").read_text()

    assert re.search(r"⛔ resolve \[\^\d+\]", text)
    assert "known: every embed release pins an infinity-emb" in text
    assert re.search(r"⚠️ fell back \[\^\d+\]", text)
    assert "`Fallback: infinity-emb 0.0.78 → 0.0.45` — infinity-emb: Because" in text
    assert "**1 failure(s) not declared" in text
    assert "- `sentence_transformers-numpy1` fails at **load**: `OSError: disk full`" in text
    assert "- `embed-numpy1` now passes **import**, declared known incompatible" in text
    assert "⚠️ the numpy pin looks unnecessary: every rung passes" in text
    assert "⚠️ passes without torchvision" in text
    assert "## Bisections" in text and "works up to 0.0.45, fails from **0.0.46**" in text
    assert "3 / 9 over 34 releases" in text


def test_conformance_page_shows_deviations_and_failing_examples(tmp_path) -> None:
    rungs = passing()
    rungs[4].detail = {"properties": {
        "whitespace_contract": {"status": "deviation", "message": "[m] tabs differ", "cases": {},
                                "deviation": {"reason": "tabs are words here", "link": "https://x"}},
        "batch_size_invariance": {"status": "fail", "cases": {},
                                  "message": "[m] item 0: max |alone - in batch| = 0.01 | "
                                             "Falsifying example: texts=['a', 'b']"},
        "unit_norm": {"status": "pass", "message": "", "cases": {}}}}
    write_atomic(tmp_path / "r" / "e.json", cell("emb", "numpy2", "embedding", rungs).to_json())
    render([tmp_path / "r"], tmp_path / "out")
    page = (tmp_path / "out" / "CONFORMANCE.md").read_text()
    row = next(ln for ln in page.splitlines() if ln.startswith("| `emb`"))
    assert "❌ [^" in row and "⚠️ [^" in row and "✅" in row
    assert "declared deviation: tabs are words here (https://x)" in page
    assert "Falsifying example: texts=['a', 'b']" in page


def test_throughput_plot_is_drawn_and_linked(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    bench = {"fixture": "all-minilm-l6-v2", "peak_rss_mib": 512.0,
             "metrics": [metric([100.0, 101.0, 99.0, 100.5, 100.2])]}
    write_atomic(tmp_path / "r" / "a.json", cell("emb", "numpy2", "embedding",
                                                passing(bench)).to_json())
    render([tmp_path / "r"], tmp_path / "out")
    png = tmp_path / "out" / "throughput.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![Medians with min-max whiskers" in (tmp_path / "out" / "THROUGHPUT.md").read_text()


def test_engines_page_lists_declarations_tolerance_and_measured_parity(tmp_path) -> None:
    rungs = passing()
    rungs[2].detail = {"class": "engines.ctranslate2.CTranslate2Generator", "import_s": 1.0,
                       "devices": ["cpu"],
                       "capabilities": {"streaming": True, "seeded_sampling": False,
                                        "logprobs": True},
                       "unsupported": {"seeded_sampling": "the seed reaches new threads only"},
                       "deviations": {}, "parity_top_k": 5, "logprob_tolerance": 0.001}
    rungs[4].detail = {"properties": {"greedy_parity": {
        "status": "pass", "message": "", "cases": {"tiny-llama": "pass"},
        "notes": {"tiny-llama": "6/6 prompts token-exact vs transformers==4.57.6"}}, "logprobs": {
        "status": "fail", "message": "[tiny-llama] prompt 0, position 3: token 7: -1.2 vs -1.5",
        "cases": {"tiny-llama": "fail"}}}}
    ok = cell("ctranslate2", "numpy2", "generation", rungs, fixtures=["tiny-llama"])
    broken = cell("ctranslate2", "numpy1", "generation",
                  failing_at("load", ErrorInfo.from_message("ConversionError", "converter said no")),
                  fixtures=["tiny-llama"])
    folder = tmp_path / "results"
    folder.mkdir()
    for r in (ok, broken):
        write_atomic(folder / f"{r.cell.id}.json", r.to_json())
    render([folder], tmp_path)
    page = (tmp_path / "ENGINES.md").read_text()
    assert "### `ctranslate2`" in page
    assert "| seeded_sampling | ➖ | the seed reaches new threads only |" in re.sub(r" +", " ", page)
    assert "top-5" in page
    assert "6/6 prompts token-exact vs transformers==4.57.6" in page
    assert "log-probabilities within 0.001 nats" in page
    row = next(line for line in page.splitlines() if "`ctranslate2-numpy2`" in line)
    assert "❌" in row and "prompt 0, position 3: token 7" in row, row
    assert "not reached: load failed" in page


def fell_back(engine: str, env: str, *fallbacks: tuple[str, str, str, str]) -> CellResult:
    """A cell whose resolve rung records these fallbacks (package, newest, resolved, why)."""
    detail = ResolveDetail(fallbacks=[Fallback(*f) for f in fallbacks])
    first = fallbacks[0]
    rung = Rung("resolve", "pass", 1.0, error=ErrorInfo(
        "Fallback", "fell back", f"Fallback: {first[0]} {first[1]} → {first[2]}",
        "\n\n".join(f"{f[0]}: {f[3]}" for f in fallbacks)), detail=detail)
    return cell(engine, env, "generation", [rung, *passing()[1:]], key_packages=[engine, "numpy"])


def test_one_footnote_per_distinct_reason_and_every_fallback_of_a_cell(tmp_path) -> None:
    """The same fallback for two reasons is two footnotes; a cell with two fallbacks points to
    both, the engine's own first."""
    numpy = ("numpy", "2.4.6", "2.3.5")
    results = [
        fell_back("vllm", "numpy2", (*numpy, "vllm 0.33 depends on numpy<2.4"),
                  ("vllm", "0.33.0", "0.32.0", "vllm 0.33.0 depends on certifi>=2027")),
        fell_back("onnxruntime", "numpy2", (*numpy, "onnxruntime depends on numpy<2.4")),
        fell_back("ctranslate2", "numpy2", (*numpy, "onnxruntime depends on numpy<2.4")),
    ]
    for r in results:
        write_atomic(tmp_path / "results" / f"{r.cell.id}.json", r.to_json())
    render([tmp_path / "results"], tmp_path / "out")
    text = (tmp_path / "out" / "COMPATIBILITY.md").read_text()
    notes = {m.group(1): m.group(2) for m in re.finditer(r"^\[\^(\d+)\]: (.*)$", text, re.M)}
    vllm = re.search(r"\| `vllm` +\| ⚠️ fell back \[\^(\d+)\]\[\^(\d+)\]", text)
    assert vllm, text
    assert "`Fallback: vllm 0.33.0 → 0.32.0` — vllm 0.33.0 depends on certifi" in notes[vllm[1]]
    assert "vllm 0.33 depends on numpy<2.4" in notes[vllm[2]]
    shared = [n for n in notes.values() if "onnxruntime → numpy<2.4" in n]  # the decisive chain
    assert len(shared) == 1 and "cells: ctranslate2-numpy2, onnxruntime-numpy2" in shared[0]
    assert not any("vllm 0.33 depends" in n and "onnxruntime-numpy2" in n for n in notes.values())


def test_the_run_ends_with_its_headline(tmp_path) -> None:
    """Verdicts counted by kind, the undeclared failures by name with their signatures, what
    changed since the last run, where the pages are: never a Python dict."""
    import io

    from rich.console import Console

    from pages.headline import headline, summary

    results = every_verdict()
    counts, failures = summary(results, None)
    assert dict(counts) == {"❌": 3, "✅": 2, "➖": 1}
    assert failures == [("emb_a-numpy1", "import: ModuleNotFoundError: optimum.bt"),
                        ("emb_b-numpy1", "import: ModuleNotFoundError: optimum.bt"),
                        ("gen-numpy2", "install: InstallError: Failed to build `foo==1.0`")]
    changed = {"since": "2026-11-30T00:00:00+00:00",
               "changes": ["**Broke** (1):", "", "- `emb_a-numpy1` broke: fails at import"]}
    (tmp_path / "COMPATIBILITY.md").write_text("x")
    out = io.StringIO()
    Console(file=out, width=120).print(headline(results, changed, tmp_path, None))
    text = out.getvalue()
    assert "6 cells: 2 ✅ pass  3 ❌ fail  1 ➖ not run" in text and "{" not in text
    assert "3 undeclared failure(s)" in text and "ModuleNotFoundError: optimum.bt" in text
    assert "Since the run of 2026-11-30T00:00:00+00:00: 1 change(s)" in text
    assert "emb_a-numpy1 broke: fails at import" in text and "COMPATIBILITY.md" in text


def test_the_real_shape_table_opens_throughput_sorted_with_its_pareto_front(tmp_path) -> None:
    """Rows sorted by batch-1 decode, a run that timed out shown with its minutes, MBU held to
    the measured bandwidth, the plot's front: no row both smaller and faster."""
    from pages.real_shape import pareto

    shape = tmp_path / "r" / "real-shape" / "smollm2-135m-shape"
    runs = {"llama_cpp-quantnone": shape_bench(34.0, 539_000_000),
            "llama_cpp-quantq4_k_m": shape_bench(60.0, 120_000_000, "Q4_K ×120 (fell back)"),
            "transformers-quantnone": shape_bench(15.0, 539_000_000)}
    for cid, bench in runs.items():
        engine, _, env = cid.partition("-")
        rungs = [Rung("resolve", "pass", 1.0), Rung("bench", "pass", 60.0, detail=bench)]
        write_atomic(shape / f"{cid}.json", cell(engine, env, "generation", rungs,
                                                  axes={"quant": env.removeprefix("quant")}).to_json())
    slow = ErrorInfo("Timeout", "bench ran past 600 s", "Timeout: bench > 600s", "")
    write_atomic(shape / "all-cores" / "vllm-quantnone.json", cell(
        "vllm", "quantnone", "generation",
        [Rung("resolve", "pass", 1.0), Rung("bench", "fail", 600.0, error=slow)],
        axes={"quant": "none"}).to_json())
    write_atomic(tmp_path / "r" / "a.json", cell("emb", "numpy2", "embedding", passing(
        {"fixture": "all-minilm-l6-v2", "metrics": [metric([100.0, 101.0, 99.0])]})).to_json())
    render([tmp_path / "r"], tmp_path / "out")
    text = (tmp_path / "out" / "THROUGHPUT.md").read_text()
    opening = text[text.index("## On a real shape"):text.index("## The matrix's cells")]
    rows = [line for line in opening.splitlines() if line.startswith("| `")]
    speed = rows[:4]
    assert [r.split("|")[2].strip() for r in speed] == ["Q4_K_M", "unquantized", "unquantized",
                                                         "unquantized"], speed
    assert "`llama_cpp`" in speed[0] and "`transformers`" in speed[2]
    assert "➖ timed out after 10 min" in speed[3] and "every core" in speed[3]
    assert "Fastest batch-1 decode: `llama_cpp` Q4_K_M, 60.0 tok/s" in opening
    assert "34.0" in speed[1] and "73.3%" in speed[1]  # 539 MB x 34 tok/s over 25 GB/s
    assert "Q4_K ×120 (fell back)" in opening and "gguf 1 s" in opening
    assert (tmp_path / "out" / "real-shape.png").read_bytes()[:4] == b"\x89PNG"
    assert pareto([(539.0, 34.0), (120.0, 60.0), (539.0, 15.0), (50.0, 10.0)]) == [3, 1]


def test_the_trained_models_rows_are_set_against_its_shapes_random_weights(tmp_path) -> None:
    """results/real-shape/smollm2-135m-instruct beside .../smollm2-135m-shape: its own section,
    said to be the trained model, and each engine's batch-1 decode as a ratio with its interval,
    "within noise" where it holds 1, "apart" where it does not; only rows of one run are set
    against each other (ONNX Runtime's rows come from two runs: no ratio)."""
    root = tmp_path / "r" / "real-shape"
    for shape, speeds, other in (
            ("smollm2-135m-shape", {"llama_cpp": 50.0, "transformers": 18.0}, "20261206T100000"),
            ("smollm2-135m-instruct", {"llama_cpp": 50.5, "transformers": 12.0}, "20261207T100000")):
        for engine, decode in {**speeds, "onnxruntime": 20.0}.items():
            bench = shape_bench(decode, 539_000_000)
            bench["run"] = other if engine == "onnxruntime" else "20261207T230000"
            bench["metrics"][0]["samples"] = [decode * f for f in (0.97, 0.99, 1.0, 1.01, 1.03)]
            write_atomic(root / shape / f"{engine}-quantnone.json", cell(
                engine, "quantnone", "generation",
                [Rung("resolve", "pass", 1.0), Rung("bench", "pass", 60.0, detail=bench)],
                axes={"quant": "none"}).to_json())
    render([tmp_path / "r"], tmp_path / "out")
    text = (tmp_path / "out" / "THROUGHPUT.md").read_text()
    assert "### smollm2-135m-instruct" in text and "SmolLM2-135M-Instruct, trained" in text
    start = text.index("#### smollm2-135m-instruct against smollm2-135m-shape")
    section = text[start:text.index("\n#", start + 1)]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| `")}
    assert rows["`llama_cpp`"][2:4] == ["50.5", "50.0"] and rows["`llama_cpp`"][5] == "within noise"
    assert rows["`transformers`"][4].startswith("0.67×") and rows["`transformers`"][5] == "apart"
    assert "`onnxruntime`" not in rows


def test_a_kl_the_tool_printed_as_zero_says_it_is_below_its_precision() -> None:
    """Audit finding 7: "KL mean 0 ± 0, top-1 99.8%" cannot be: llama-perplexity prints six
    decimals, so its 0 is below 5e-7, and the page says that instead."""
    from core.bench_details import ToolKL
    from pages.markdown import tool_kl

    assert tool_kl(ToolKL(kl_mean=0.0, kl_pm=0.0, top1_agreement=0.998, top1_pm=0.001)) == \
        "< 5e-07 ± < 5e-07"
    assert tool_kl(ToolKL(kl_mean=0.00286, kl_pm=0.00018, top1_agreement=0.97, top1_pm=0.01)) == \
        "0.00286 ± 0.00018"


def test_the_committed_results_render_into_every_page(tmp_path) -> None:
    """Real records of every shape a run made (the committed reports/results.json, every
    selection's cells) go through every page: a field a page reads that a record does not have
    fails here, not in a user's report."""
    import json

    from compat.matrix import load as load_matrix
    from core.records import to_json
    from pages.history import results_of
    from tests.conftest import REPO

    cells, problems = results_of(json.loads((REPO / "reports" / "results.json").read_text())["cells"])
    assert cells and not problems, problems
    for result in cells:
        write_atomic(tmp_path / "results" / f"{result.cell.id}.json",
                     json.dumps(to_json(result)))
    rendered = render([tmp_path / "results"], tmp_path / "out", matrix=load_matrix())
    assert len(rendered) == len(cells)
    for page in ("COMPATIBILITY.md", "CONFORMANCE.md", "ENGINES.md", "SERVING.md",
                 "QUANTIZATION.md", "THROUGHPUT.md"):
        assert (tmp_path / "out" / page).stat().st_size > 1000, page


def test_a_real_shape_table_holds_every_row_to_one_limit_and_flags_noise(tmp_path) -> None:
    """Two rows whose own probes read 40 and 30 GB/s at best: both MBUs divide by 40 (the table's
    one limit, named above it, drifting since the two differ by more than 15%), so the same bytes
    at the same speed read as the same MBU; a median whose rounds spread past 10% says so."""
    shape = tmp_path / "r" / "real-shape" / "smollm2-135m-shape"
    for cid, best, decode in (("llama_cpp-quantnone", 40.0, [20.0] * 5),
                              ("transformers-quantnone", 30.0, [20.0, 12.0, 28.0, 20.0, 21.0])):
        bench = shape_bench(20.0, 500_000_000)
        bench["metrics"][0] = gen_metric("decode_tokens_per_s", "tok/s", 1, decode)
        # streamed gaps: 20 ms apart, or bursts 5 µs apart (500 MB a token cannot come that fast)
        gaps = [0.02] * 20 if best == 40.0 else [5e-6, 0.02] * 10
        bench["metrics"].append({"name": "itl_s", "unit": "s", "better": "lower", "samples": gaps,
                                 "params": {"batch": 1, "input_tokens": 673, "new_tokens": 32},
                                 "stats": summarize(gaps)})
        bench["metrics"].append({"name": "memory_bandwidth_gb_s", "unit": "GB/s",
                                 "better": "higher", "samples": [best - 5, best],
                                 "params": {"access": "read", "device": "cpu", "mib": 256},
                                 "stats": summarize([best - 5, best])})
        engine, _, env = cid.partition("-")
        rungs = [Rung("resolve", "pass", 1.0), Rung("bench", "pass", 60.0, detail=bench)]
        write_atomic(shape / f"{cid}.json", cell(engine, env, "generation", rungs,
                                                  axes={"quant": "none"}).to_json())
    render([tmp_path / "r"], tmp_path / "out")
    text = (tmp_path / "out" / "THROUGHPUT.md").read_text()
    assert ("MBU divides every row by one limit, the best read-bandwidth reading of all the rows' "
            "probes: the host's DRAM, 40.0 GB/s ⚠️ drifting: the rows' own best readings ranged "
            "30.0–40.0 GB/s") in text
    rows = [line for line in text.splitlines() if line.startswith("| `")][:2]
    assert all("| 25.0% " in row for row in rows), rows  # 500 MB x 20 tok/s over 40 GB/s
    noisy = next(row for row in rows if "`transformers`" in row)
    assert "20.0 ⚠️ CV" in noisy and "20.0 ⚠️" not in rows[0]
    # ITL is per token, or named per delivery: 5 µs is shorter than 500 MB at 40 GB/s (12.5 ms)
    assert "per delivery, not per token" in noisy and "below the 12.5 ms a token's bytes take" in noisy
    steady = next(row for row in rows if "`llama_cpp`" in row)
    assert "| 20 ms / 20 ms " in steady and "per delivery" not in steady


def test_two_cells_of_one_configuration_are_one_row_showing_both_runs(tmp_path) -> None:
    """numpy2 and quantnone resolving the same versions measure one configuration: one row with
    each run's figure and date, never two rows that read as two engines (audit finding 3)."""
    for env, sps, day in (("numpy2", [300.0] * 5, "2026-12-07"), ("quantnone", [260.0] * 5, "2026-12-05")):
        result = cell("sentence_transformers_onnx", env, "embedding",
                      passing({"fixture": "all-minilm-l6-v2", "metrics": [metric(sps)]}),
                      **({"axes": {"quant": "none"}} if env == "quantnone" else {}))
        result.finished_at = f"{day}T00:00:00+00:00"
        write_atomic(tmp_path / "r" / f"{result.cell.id}.json", result.to_json())
    render([tmp_path / "r"], tmp_path / "out")
    rows = [line for line in (tmp_path / "out" / "THROUGHPUT.md").read_text().splitlines()
            if line.startswith("| `sentence_transformers_onnx`")]
    assert len(rows) == 1, rows
    assert "numpy2 (2026-12-07) · quantnone (2026-12-05): one configuration, 2 runs" in rows[0]
    assert "300.0 sent/s (CV 0%) · 260.0 sent/s (CV 0%)" in rows[0]


def test_itl_with_fewer_gaps_than_tokens_is_named_per_delivery(tmp_path) -> None:
    """5 streams of 32 tokens have 155 gaps between tokens; 100 gaps mean some deltas carried
    several tokens: the figure is per delivery, and says so with its counts."""
    for engine, gaps in (("llama_cpp", 100), ("transformers", 155)):
        itl = gen_metric("itl_s", "s", 1, [0.001] * gaps)
        bench = {"fixture": "small-llama", "rounds": 5,
                 "metrics": [gen_metric("decode_tokens_per_s", "tok/s", 1, [900.0] * 5), itl]}
        result = cell(engine, "numpy2", "generation", passing(bench))
        write_atomic(tmp_path / "r" / f"{result.cell.id}.json", result.to_json())
    render([tmp_path / "r"], tmp_path / "out")
    text = (tmp_path / "out" / "THROUGHPUT.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith("| `") and "numpy2" in line}
    assert "per delivery, not per token: 1 ms / 1 ms / 1 ms (100 gaps for 155 tokens)" in rows["`llama_cpp`"]
    assert "per delivery" not in rows["`transformers`"] and "1 ms / 1 ms / 1 ms" in rows["`transformers`"]
