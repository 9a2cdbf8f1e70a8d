"""bench/compare.py: noise-aware comparison with a saved run, and refusal of bad baselines."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from bench.compare import BaselineError, compare, load_baseline, main
from bench.metrics import record as metric_record
from bench.stats import summarize
from core.bench_details import ServeBenchDetail
from core.results import CellInfo, CellResult, Machine, Rung, save
from tests.unit.test_loadgen import closed_run


def run(samples: dict[str, list[float]], cpu: str = "CPU A", numpy: str = "2.4.6") -> CellResult:
    metrics = [{"name": name, "unit": "tok/s" if name.endswith("per_s") else "s",
                "better": "higher" if name.endswith("per_s") else "lower", "params": {},
                "samples": s, "stats": summarize(s)} for name, s in samples.items()]
    rungs = [Rung("resolve", "pass", 1.0, detail={"versions": {"numpy": numpy}}),
             Rung("bench", "pass", 1.0, detail={"metrics": metrics, "fixture": "f",
                                                "peak_rss_mib": 1.0})]
    return CellResult(cell={"id": "x-numpy2", "engine": "x", "kind": "generation", "env": "numpy2",
                            "key_packages": ["numpy"]},
                      machine={"cpu": cpu}, started_at="", rungs=rungs)


STEADY = [100.0, 101.0, 99.0, 100.5, 99.5]


def verdicts(old: CellResult, new: CellResult) -> dict[str, str]:
    changes, _ = compare([old], [new])
    return {c.metric: c.verdict for c in changes}


def test_direction_and_noise() -> None:
    old = run({"decode_tokens_per_s": STEADY, "ttft_s": [1.0, 1.01, 0.99, 1.0, 1.02]})
    faster = run({"decode_tokens_per_s": [x * 1.2 for x in STEADY],
                  "ttft_s": [1.5, 1.51, 1.49, 1.5, 1.52]})
    assert verdicts(old, faster) == {"decode_tokens_per_s": "better", "ttft_s": "worse"}
    nudged = run({"decode_tokens_per_s": [x + 0.5 for x in STEADY],
                  "ttft_s": [1.0, 1.01, 0.99, 1.0, 1.02]})
    assert set(verdicts(old, nudged).values()) == {"within noise"}


def test_a_noisy_run_widens_the_band() -> None:
    old = run({"decode_tokens_per_s": STEADY})
    noisy = run({"decode_tokens_per_s": [60.0, 150.0, 95.0, 140.0, 70.0]})
    assert verdicts(old, noisy) == {"decode_tokens_per_s": "within noise"}


def test_other_machine_and_versions_are_warned_about() -> None:
    _, warnings = compare([run({"ttft_s": [1.0] * 5})],
                          [run({"ttft_s": [1.0] * 5}, cpu="CPU B", numpy="1.26.4")])
    assert any("another machine (CPU A vs CPU B)" in w for w in warnings)
    assert any("numpy 2.4.6 → 1.26.4" in w for w in warnings)


def test_bad_baselines_are_refused(tmp_path) -> None:
    with pytest.raises(BaselineError, match="does not exist"):
        load_baseline(tmp_path / "missing.json")
    (tmp_path / "corrupt.json").write_text('{"cells": [')
    with pytest.raises(BaselineError, match=r"not valid JSON.*refusing to compare"):
        load_baseline(tmp_path / "corrupt.json")
    old = asdict(run({"ttft_s": [1.0] * 5})) | {"schema": 0}
    (tmp_path / "old.json").write_text(json.dumps({"cells": [old]}))
    with pytest.raises(BaselineError, match="result schema 0 is not 1"):
        load_baseline(tmp_path / "old.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(BaselineError, match=r"not a merged results\.json"):
        load_baseline(tmp_path / "list.json")


def test_main_exit_codes(tmp_path, capsys) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    (tmp_path / "old" / "x.json").write_text(run({"decode_tokens_per_s": STEADY}).to_json())
    slower = run({"decode_tokens_per_s": [x * 0.5 for x in STEADY]})
    (tmp_path / "new" / "x.json").write_text(slower.to_json())
    out = tmp_path / "cmp.md"
    assert main([str(tmp_path / "old"), str(tmp_path / "new"), "--out", str(out)]) == 1
    assert "| worse " in out.read_text()
    assert main([str(tmp_path / "nope.json"), str(tmp_path / "new")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_serving_records_compare_metric_by_load(tmp_path) -> None:
    from bench.compare import compare_serving, serving_records

    def record(ttft: list[float], rate: float) -> CellResult:
        run = closed_run(4, rate)
        run.metrics.append(metric_record("serve_ttft_s", ttft, load="4 users"))
        detail = ServeBenchDetail(engine="vllm_server", server="vllm serve", fixture="small-llama",
                                  startup_s=1.0, input_tokens=128, output_tokens=32, runs=[run])
        cell = CellInfo(id="vllm_server-base", engine="vllm_server", kind="generation", env="base")
        return CellResult(cell=cell, machine=Machine(cpu="X"), started_at="now",
                          rungs=[Rung("serve_bench", "pass", detail=detail)])

    for folder, rec in (("old", record([0.10, 0.11, 0.10, 0.12], 300)),
                        ("new", record([0.20, 0.21, 0.22, 0.20], 310))):
        save(rec, tmp_path / folder)
    changes, warnings = compare_serving(serving_records(tmp_path / "old"),
                                        serving_records(tmp_path / "new"))
    verdicts = {c.metric: c.verdict for c in changes}
    assert verdicts == {"serve_ttft_s (4 users)": "worse",
                        "serve_output_tokens_per_s (4 users)": "no noise band (one sample a run)"}
    assert not warnings

