"""Result records as a run writes them, built small for the suite's own tests (the pages, the
watch, the live pages, the serving and GPU pages read them): one module every test imports."""

from __future__ import annotations

import dataclasses

from bench.stats import summarize
from core.details import ResolveDetail
from core.results import CellResult, ErrorInfo, Rung

RUNG_NAMES = ("resolve", "install", "import", "load", "conformance", "bench")


def cell(engine: str, env: str, kind: str, rungs: list[Rung], **info) -> CellResult:
    if rungs[0].status == "pass":  # what the resolve rung records
        rungs[0].detail = dataclasses.replace(rungs[0].detail or ResolveDetail(),
                                              versions={engine: "1.0", "numpy": "2.4.6"})
    return CellResult(
        cell={"id": f"{engine}-{env}", "engine": engine, "kind": kind, "env": env,
              "python": "3.11", "key_packages": [engine, "numpy"], **info},
        machine={"cpu": "Test CPU", "cores": 2}, started_at="2026-11-23T00:00:00+00:00",
        rungs=rungs)


def passing(bench_detail: dict | None = None) -> list[Rung]:
    rungs = [Rung(n, "pass", 1.0) for n in RUNG_NAMES]
    rungs[4].detail = {"properties": {"unit_norm": {"status": "pass", "message": "", "cases": {}},
                                      "known_value": {"status": "skip",
                                                      "message": "no published value",
                                                      "cases": {}}}}
    rungs[5].detail = bench_detail or {}
    return rungs


def failing_at(rung: str, error: ErrorInfo) -> list[Rung]:
    out, blocked = [], False
    for name in RUNG_NAMES:
        if blocked:
            out.append(Rung(name, "not_reached", reason=f"{rung} failed"))
        elif name == rung:
            out.append(Rung(name, "fail", 2.0, error=error))
            blocked = True
        else:
            out.append(Rung(name, "pass", 1.0))
    return out


def metric(samples: list[float]) -> dict:
    return {"name": "sentences_per_s", "unit": "sent/s", "better": "higher",
            "params": {"batch": 32}, "samples": samples, "stats": summarize(samples)}


def gen_metric(name: str, unit: str, batch: int, samples: list[float]) -> dict:
    return {"name": name, "unit": unit, "better": "higher" if unit.endswith("/s") else "lower",
            "params": {"batch": batch, "input_tokens": 512 if batch == 1 else 32, "new_tokens": 32},
            "samples": samples, "stats": summarize(samples)}


def shape_bench(decode: float, bytes_: int, note: str = "") -> dict:
    return {"fixture": "smollm2-135m-shape", "profile": "real", "peak_rss_mib": 900.0,
            "threads": {"cores_busy": {"batch1-in512": 1.9, "batch8-in32": 2.0}},
            "weights": {"bytes": bytes_, "note": note, "load_s": 2.5,
                        "conversions": [{"converter": "gguf", "seconds": 1.2, "bytes": bytes_}]},
            "roofline": {"weight_bytes_per_token": bytes_, "bandwidth_gb_s": 25.0,
                         "last_level_cache_bytes": 32 * 2**20},
            "metrics": [gen_metric("decode_tokens_per_s", "tok/s", 1, [decode] * 5),
                        gen_metric("decode_tokens_per_s", "tok/s", 8, [decode * 3] * 5),
                        gen_metric("prefill_tokens_per_s", "tok/s", 1, [300.0] * 5),
                        gen_metric("ttft_s", "s", 1, [1.5, 1.6, 1.5, 1.5, 1.7]),
                        gen_metric("tpot_s", "s", 1, [1 / decode] * 5)]}
