"""Quantization as an axis: the values each engine offers, bad values named, llama.cpp's
quantizer on real fixtures (a K-quant that silently falls back is caught), and the report."""

from __future__ import annotations

import pytest

from bench.metrics import record
from compat.matrix import load, parse
from core.details import PropertyFigures, PropertyResult, TextFigures
from core.errors import MatrixError
from core.results import CellResult, Rung
from engines.base import Generator, InvalidParameterError
from pages.quantization import pareto, quantization_page, rows_of
from pages.verdicts import in_order
from tests.conftest import matrix_data


def test_the_quant_axis_makes_cells_only_for_what_each_engine_offers() -> None:
    ids = [c.id for c in load().selected("quant")]
    assert "llama_cpp-quantq4_k_m" in ids and "ctranslate2-quantint8" in ids
    assert "ctranslate2-quantq4_0" not in ids and "llama_cpp-quantint8" not in ids
    data = matrix_data()
    data["cells"] = [{"engine": "ctranslate2", "axes": {"quant": "q4_0"}}]
    with pytest.raises(MatrixError, match=r"Unknown value of axis 'quant' for ctranslate2 'q4_0'.*"
                                          r"Available: int8, int8_float32, none"):
        parse(data)


def test_an_engine_refuses_a_quantization_it_does_not_offer() -> None:
    class Fake(Generator):  # not registered: borrows llama_cpp's entry for what it offers
        id = "llama_cpp"

        def _load(self, model_dir, device, dtype): ...
        def _tokenize(self, text): return []
        def _generate(self, prompt_ids, params): return []

    assert Fake.check_quantization("q4_k_m") == "q4_k_m"
    with pytest.raises(InvalidParameterError, match=r"llama_cpp does not offer quantization "
                                                    r"'int8'; it offers none, f16, q8_0, q4_0"):
        Fake.check_quantization("int8")
    with pytest.raises(InvalidParameterError, match=r"Unknown quantization 'q3'.*Available: awq, f16"):
        Fake.check_quantization("q3")


def quant_cell(engine: str, quant: str, figures: dict | None, decode: float,
               run: str = "20261207T230000") -> CellResult:
    """A quantization cell's result; `run`: the id of the run that benched it (one run for all,
    unless a test says otherwise)."""
    prop = {"status": "pass", "message": "", "cases": {"small-llama": "pass"},
            "figures": {"small-llama": {"quality": figures}} if figures else {}}
    bench = {"fixture": "small-llama", "peak_rss_mib": 300.0, "run": run, "metrics": [
        {"name": "decode_tokens_per_s", "unit": "tok/s", "better": "higher", "params": {},
         "samples": [decode] * 5, "stats": {"n": 5, "median": decode, "p90": decode,
                                            "p99": decode, "min": decode, "max": decode,
                                            "mean": decode, "stdev": 0.0, "cv": 0.0}}]}
    rungs = [Rung("resolve", "pass"), Rung("conformance", "pass",
                                           detail={"properties": {"quantization_quality": prop}}),
             Rung("bench", "pass", detail=bench)]
    return CellResult(cell={"id": f"{engine}-quant{quant}", "engine": engine,
                            "kind": "generation", "env": f"quant{quant}",
                            "axes": {"quant": quant}},
                      machine={"cpu": "Test CPU", "cores": 2}, started_at="2026-11-30", rungs=rungs)


def test_the_quantization_page_puts_each_format_beside_its_unquantized_cell() -> None:
    def figures(kl: float, size: int) -> dict:
        return {"kl_mean": kl, "kl_p99": 10 * kl, "top1": 0.95, "rms_dp": 0.01,
                "positions": 96, "quantization": "x", "weights_bytes": size}

    results = [quant_cell("llama_cpp", "none", figures(1e-5, 4 << 20), 3000.0),
               quant_cell("llama_cpp", "q4_0", figures(0.02, 1 << 20), 6000.0)]
    page = quantization_page(results, [], plotted=True)
    row = next(line for line in page.splitlines() if "`q4_0`" in line)
    assert [c.strip() for c in row.strip("|").split("|")] == [
        "`llama_cpp`", "`q4_0`", "✅", "2.00e-02", "2.00e-01", "95.0%", "1.00e-02", "–", "–",
        "6,000", "2.00× [2.00, 2.00] (5 / 5 rounds)", "–", "–", "300", "1.00 MiB (25%)"]
    assert "![Quality loss against speed" in page
    # one comparison, one run: a quantized cell of another run is not set against its baseline
    other = quant_cell("llama_cpp", "q4_0", figures(0.02, 1 << 20), 6000.0, run="20261206T100000")
    page = quantization_page([results[0], other], [], plotted=True)
    row = next(line for line in page.splitlines() if "`q4_0`" in line)
    assert ("– (not set against its baseline: measured in different runs, 20261206T100000 and "
            "20261207T230000)") in row
    # pairs timed inside the quantized cell's own run beside the two cells' ratio, with their
    # count; under 10 pairs no interval is claimed
    for quantized, shown in (([200.0, 220.0, 180.0] * 3 + [200.0], "2.00× [1.80, 2.20] (10 pairs)"),
                             ([200.0, 220.0, 180.0], "too few pairs (3 pairs)")):
        paired = quant_cell("llama_cpp", "q4_0", figures(0.02, 1 << 20), 6000.0)
        paired.bench.metrics += [
            record("paired_decode_tokens_per_s", samples, side=side, batch=1, input_tokens=16,
                   float="float32, unquantized, in its own process")
            for side, samples in (("quantized", quantized), ("float", [100.0] * len(quantized)))]
        row = next(line for line in quantization_page([results[0], paired], [], plotted=False)
                   .splitlines() if "`q4_0`" in line)
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[10:12] == ["2.00× [2.00, 2.00] (5 / 5 rounds)", shown]


def test_pareto_front() -> None:
    points = [("a", 100.0, 0.001), ("b", 200.0, 0.01), ("c", 150.0, 0.02), ("d", 200.0, 0.1)]
    assert pareto(points) == ["a", "b"]


def test_a_cuda_cell_is_its_own_row_saying_why_it_did_not_run() -> None:
    figures = {"kl_mean": 0.3, "kl_p99": 1.7, "top1": 0.75, "rms_dp": 0.2, "positions": 96,
               "quantization": "awq", "weights_bytes": 1 << 20}
    on_cuda = CellResult(cell={"id": "vllm-quantawq-cuda", "engine": "vllm", "kind": "generation",
                               "env": "quantawq", "axes": {"quant": "awq"}, "device": "cuda"},
                         machine={"cpu": "Test CPU", "cores": 2}, started_at="2026-11-30",
                         rungs=[Rung("resolve", "pass"),
                                Rung("install", "not_run", reason="needs CUDA")])
    rows = rows_of(in_order([on_cuda, quant_cell("vllm", "awq", figures, 300.0),
                             quant_cell("vllm", "none", {**figures, "weights_bytes": 4 << 20},
                                        200.0)]))
    assert [(r[1], r[2], r[10]) for r in rows] == [
        ("`none`", "✅", "baseline"),
        ("`awq`", "✅", "1.50× [1.50, 1.50] (5 / 5 rounds)"), ("`awq` (cuda)", "➖ needs CUDA", "–")]


def test_a_quality_check_that_did_not_run_never_reads_as_passed() -> None:
    """COMPATIBILITY's quantization table (audit finding 9): a cell whose every rung passed but
    whose quantization_quality was skipped (no logits, or a trained fixture only) says ➖ and why
    in the column against the float32 reference; one that ran says ✅."""
    from pages.compatibility import quantized_section
    from pages.markdown import Footnotes

    checked = quant_cell("llama_cpp", "q4_0", {"kl_mean": 0.02, "kl_p99": 0.2, "top1": 0.95,
                                               "rms_dp": 0.01, "positions": 96}, 6000.0)
    skipped = quant_cell("mistralrs", "q4_0", None, 100.0)
    prop = skipped.rung("conformance").detail.properties["quantization_quality"]
    prop.status, prop.message = "skip", "[small-llama] mistralrs declares no logits support"
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in quantized_section([checked, skipped], Footnotes(), None)[4].splitlines()[2:]}
    # the trained model's column: neither ran text_quality here
    assert rows["`llama_cpp`"][2:] == ["✅", "✅", "➖ not measured"]
    assert rows["`mistralrs`"][2] == "✅" and rows["`mistralrs`"][3].startswith("➖")
    assert "declares no logits support" in rows["`mistralrs`"][3]


def test_the_page_opens_with_the_trained_model_its_referee_and_the_answers_that_changed() -> None:
    """text_quality's figures: perplexity with its interval and its ratio to float32,
    llama-perplexity beside it (⚠️ only where ours is outside twice its ±), KL over the top ids,
    answers kept; a cell with no log-probabilities at every position says why."""
    text = {"quantization": "q4_k_m", "perplexity": 47.967, "perplexity_low": 38.7,
            "perplexity_high": 59.7, "reference_perplexity": 46.168, "positions": 2032,
            "windows": 16, "top1": 0.836, "kl_mean": 0.0389, "kl_mean_low": 0.0365,
            "kl_mean_high": 0.0419, "kl_p99": 0.225, "tool_perplexity": 47.864,
            "tool_perplexity_pm": 3.56, "tool_command": "llama-perplexity -c 256", "answers": 30,
            "answers_same": 29, "changed": [{"question": "What is the capital of France?",
                                             "reference": "The capital of France is Paris.",
                                             "engine": "L'Étoile (The Lion) is the capital"}]}
    cell = quant_cell("llama_cpp", "q4_k_m", None, 100.0)
    cell.rung("conformance").detail.properties["text_quality"] = PropertyResult(
        status="pass", cases={"smollm2-135m-instruct": "pass"},
        figures={"smollm2-135m-instruct": PropertyFigures(text=TextFigures(**text))})
    answers_only = quant_cell("mistralrs", "q4_0", None, 100.0)
    answers_only.rung("conformance").detail.properties["text_quality"] = PropertyResult(
        status="pass", figures={"smollm2-135m-instruct": PropertyFigures(text=TextFigures(
            quantization="q4_0", no_perplexity="mistralrs gives no log-probabilities at every "
            "position", answers=30, answers_same=30))})
    page = quantization_page([cell, answers_only], [], plotted=False)
    assert page.index("## The trained model on real text") < page.index("## Random weights")
    row = next(line for line in page.splitlines() if "`q4_k_m`" in line and "47.967" in line)
    assert [c.strip() for c in row.strip("|").split("|")] == [
        "`llama_cpp`", "`q4_k_m`", "✅", "47.967 [38.70, 59.70]", "1.0390×",
        "47.864 ± 3.56 (ours 1.0022×)", "3.89e-02 [3.6e-02, 4.2e-02]", "2.25e-01", "83.6%",
        "29/30"]
    assert "➖ mistralrs gives no log-probabilities at every position" in page
    assert "“The capital of France is Paris.” → “L'Étoile (The Lion) is the capital”" in page
