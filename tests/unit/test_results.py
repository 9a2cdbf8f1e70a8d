"""core/results.py: the schema round-trips, is versioned, and is written atomically."""

from __future__ import annotations

import json

import pytest

from core.results import (
    SCHEMA_VERSION,
    CellResult,
    ErrorInfo,
    Rung,
    SchemaError,
    load_results,
    write_atomic,
)
from tests.conftest import REPO


def sample() -> CellResult:
    error = ErrorInfo.from_message("ModuleNotFoundError", "No module named 'foo.bar'", "Traceback…")
    return CellResult(
        cell={"id": "x-numpy2", "engine": "x", "kind": "embedding", "env": "numpy2"},
        machine={"cpu": "test"}, started_at="2026-11-23T00:00:00+00:00",
        rungs=[Rung("resolve", "pass", 1.0, detail={"versions": {"numpy": "2.4.6"}}),
               Rung("install", "pass", 2.0),
               Rung("import", "fail", 0.5, error=error),
               Rung("load", "not_reached", reason="import failed")],
    )


def test_round_trip() -> None:
    result = sample()
    back = CellResult.from_dict(json.loads(result.to_json()))
    assert back == result
    assert back.first_failure.name == "import"
    assert back.first_failure.error.signature == "ModuleNotFoundError: foo.bar"


def test_other_schema_version_is_refused() -> None:
    data = json.loads(sample().to_json()) | {"schema": 99}
    with pytest.raises(SchemaError, match="result schema 99 is not 1"):
        CellResult.from_dict(data)


def test_write_atomic_leaves_old_file_on_failure(tmp_path) -> None:
    path = tmp_path / "cell.json"
    write_atomic(path, "old")
    with pytest.raises(TypeError):
        write_atomic(path, object())  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["cell.json"]


def test_unreadable_files_are_named_not_fatal(tmp_path) -> None:
    write_atomic(tmp_path / "good.json", sample().to_json())
    (tmp_path / "half.json").write_text('{"cell": {"id": ')
    results, problems = load_results(sorted(tmp_path.glob("*.json")))
    assert [r.cell.id for r in results] == ["x-numpy2"]
    assert len(problems) == 1 and problems[0].startswith("half.json")


def test_signature_names_the_root_cause_of_a_wrapped_error() -> None:
    try:
        try:
            raise RuntimeError("operator torchvision::nms does not exist")
        except RuntimeError as inner:
            raise ModuleNotFoundError("Could not import module 'CodeCarbonCallback'") from inner
    except ModuleNotFoundError as exc:
        info = ErrorInfo.from_exception(exc)
    assert info.signature == "RuntimeError: operator torchvision::nms does not exist"
    assert "raised as ModuleNotFoundError" in info.message
    assert "CodeCarbonCallback" in info.text


def test_schema_1_files_are_still_read() -> None:
    """A result file of schema 1 (top-level lock and versions, untyped details) reads as
    schema 3: the lock moves into the resolve rung's record, every detail is typed."""
    data = json.loads((REPO / "tests" / "unit" / "data" / "schema1-cell.json").read_text())
    assert data["schema"] == 1
    result = CellResult.from_dict(data)
    assert result.schema == SCHEMA_VERSION and result.versions == data["versions"]
    assert result.lock == data["lock"] and result.cell.id == data["cell"]["id"]
    assert result.rung("conformance").detail.properties["greedy_parity"].status == "pass"
    assert result.rung("bench").detail.find("decode_tokens_per_s").stats.median > 0
    assert CellResult.from_dict(json.loads(result.to_json())) == result


def test_the_ladder_climbs_the_rungs_the_schema_names_in_its_order() -> None:
    from compat.rungs import LADDER
    from core.details import DETAILS
    from core.results import RUNGS

    assert tuple(step.name for step in LADDER) == RUNGS
    # every rung's record is typed, and the records that are no rung of the ladder: the load
    # benchmark's (nox -s serve-bench, kept as a result with that one rung) and what an
    # endpoint said of itself (nox -s endpoint)
    assert set(DETAILS) == {*RUNGS, "serve_bench", "endpoint"}


def test_schema_2_files_are_still_read() -> None:
    """A schema-2 result (llama_cpp-numpy2 as a run wrote it then) reads as the current
    schema: climbed_to is a field, the api rung says it does not apply, figures are typed."""
    from core.details import LoraFigures, QualityFigures

    data = json.loads((REPO / "tests" / "unit" / "data" / "schema2-cell.json").read_text())
    assert data["schema"] == 2 and data["inputs"]["climbed_to"] == "bench"
    result = CellResult.from_dict(data)
    assert result.schema == SCHEMA_VERSION and result.climbed_to == "bench"
    assert "climbed_to" not in result.inputs
    assert result.rung("api").not_applicable
    props = result.rung("conformance").detail.properties
    quality = props["quantization_quality"].figures["small-llama"].quality
    lora = props["lora_adapter"].figures["small-llama"].lora
    assert isinstance(quality, QualityFigures) and quality.weights_bytes == 13654944
    assert isinstance(lora, LoraFigures) and lora.effect_kl_mean > 0.5
    again = CellResult.from_dict(json.loads(result.to_json()))
    assert again == result


def test_schema_3_files_are_read_without_their_stored_copies() -> None:
    """Schema 3 stored the roofline's rows (copies of the decode and prefill medians) and the
    weights' byte count twice. Read now, the rows are derived from the samples and equal what
    was stored, the byte count lives in the weights alone, and MBU divides by the read probe's
    best reading."""
    data = json.loads((REPO / "tests" / "unit" / "data" / "h200-real-shape-transformers.json")
                      .read_text(encoding="utf-8"))
    raw = next(r for r in data["rungs"] if r["name"] == "bench")["detail"]
    assert data["schema"] == 3 and raw["roofline"]["decode_batch1"]
    result = CellResult.from_dict(data)
    detail = result.bench
    assert result.schema == SCHEMA_VERSION
    rescale = raw["roofline"]["bandwidth_gb_s"] / detail.roofline.bandwidth_gb_s  # to the best
    for stored, derived in zip(raw["roofline"]["decode_batch1"], detail.decode_bounds, strict=True):
        assert derived.decode_tokens_per_s == pytest.approx(stored["decode_tokens_per_s"])
        assert derived.fraction == pytest.approx(stored["fraction"] * rescale)
    for stored, derived in zip(raw["roofline"]["prefill_batch1"], detail.prefill_bounds, strict=True):
        assert derived.fraction == pytest.approx(stored["fraction"])
    assert detail.weights.bytes == raw["roofline"]["engine_weights_bytes"]
    written = json.loads(result.to_json())
    roof = next(r for r in written["rungs"] if r["name"] == "bench")["detail"]["roofline"]
    assert not {"decode_batch1", "prefill_batch1", "engine_weights_bytes"} & set(roof)
    assert CellResult.from_dict(written) == result


def test_a_schema_3_roofline_of_a_median_bandwidth_reads_as_the_best() -> None:
    """Three committed records of 2026-12-04/05 divided MBU by the probe's median; read as
    schema 4 they divide by its best reading, what the page's header says."""
    data = json.loads((REPO / "tests" / "unit" / "data" / "h200-real-shape-transformers.json")
                      .read_text(encoding="utf-8"))
    detail = next(r for r in data["rungs"] if r["name"] == "bench")["detail"]
    probe = next(m for m in detail["metrics"] if m["name"] == "memory_bandwidth_gb_s"
                 and m["params"].get("device", "cpu") == detail["roofline"]["device"])
    detail["roofline"]["bandwidth_gb_s"] = sorted(probe["samples"])[len(probe["samples"]) // 2]
    assert CellResult.from_dict(data).bench.roofline.bandwidth_gb_s == max(probe["samples"])
