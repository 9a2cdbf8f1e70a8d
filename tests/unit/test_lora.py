"""The LoRA property's judgement (greedy ids but at near ties) and its table in the report."""

from __future__ import annotations

import numpy as np

from core.details import ConformanceDetail, LoraFigures, PropertyFigures, PropertyResult
from core.results import CellResult, Rung
from incell.conformance.lora import NEAR_TIE, STEPS, id_problems
from pages.quantization import lora_rows


def test_greedy_ids_may_leave_the_merged_reference_at_a_near_tie_only() -> None:
    logprobs = np.log(np.full((2 * STEPS, 4), 0.25))
    logprobs[STEPS + 2] = np.log([0.5, 0.5 * np.exp(-NEAR_TIE / 2), 0.2, 0.1])
    logprobs[3] = np.log([0.7, 0.1, 0.1, 0.1])
    expected = [[0] * STEPS, [0] * STEPS]
    near_tie = [[0] * STEPS, [0, 0, 1, 3, 3, 3, 3, 3]]  # then anything: ids after it follow it
    assert id_problems(near_tie, expected, logprobs) == []
    clear = [[0, 0, 0, 2, 0, 0, 0, 0], [0] * STEPS]
    assert id_problems(clear, expected, logprobs) == [
        "prompt 0: greedy id 2 at position 3 where the merged reference takes 0 (1.95 nats more "
        "likely)"]


def lora_cell(cell_id: str, engine: str, prop: PropertyResult) -> CellResult:
    detail = ConformanceDetail(properties={"lora_adapter": prop})
    return CellResult(cell={"id": cell_id, "engine": engine, "kind": "generation", "env": "numpy2",
                            "axes": {"numpy": "2"}}, machine={"cpu": "Test CPU", "cores": 2},
                      started_at="2026-11-30", rungs=[Rung("conformance", "pass", detail=detail)])


def test_the_lora_table_has_one_row_per_engine_with_its_figures_or_its_reason() -> None:
    applied = PropertyResult("pass", cases={"small-llama": "pass", "tiny-gpt2": "skip"},
                             figures={"small-llama": PropertyFigures(lora=LoraFigures(
                                 positions=24, kl_mean=2e-6, top1=1.0, effect_kl_mean=0.19))})
    via_logprobs = PropertyResult("fail", "[small-llama] AssertionError: log-probabilities far",
                                  cases={"small-llama": "fail"},
                                  figures={"small-llama": PropertyFigures(lora=LoraFigures(
                                      positions=24, logprob_max_diff=0.3, effect_kl_mean=0.19))})
    declined = PropertyResult("skip", "[small-llama] ctranslate2 declares no lora support: merged "
                              "before conversion", cases={"small-llama": "skip"})
    rows = lora_rows([lora_cell("ctranslate2-numpy2", "ctranslate2", declined),
                      lora_cell("llama_cpp-numpy1", "llama_cpp", declined),
                      lora_cell("llama_cpp-numpy2", "llama_cpp", applied),
                      lora_cell("vllm-numpy2", "vllm", via_logprobs)])
    assert rows == [
        ["`ctranslate2`", "`ctranslate2-numpy2`", "➖ merged before conversion", "–", "–", "–"],
        ["`llama_cpp`", "`llama_cpp-numpy2`", "✅", "small-llama", "KL 2.00e-06 (top-1 100.0%)",
         "0.190"],
        ["`vllm`", "`vllm-numpy2`", "❌ AssertionError: log-probabilities far", "small-llama",
         "Δ log-prob ≤ 3.0e-01", "0.190"]]
