"""pages/watch.py: the top of COMPATIBILITY.md says what changed since the previous run, found
when the run is taken into the records (pages/records.py) and rendered from its record."""

from __future__ import annotations

import dataclasses
import json

from core.results import ErrorInfo, write_atomic
from pages.records import take_in
from pages.render import render
from tests.unit.builders import cell, failing_at, passing

BROKEN = ErrorInfo.from_message("ModuleNotFoundError", "No module named 'optimum.bettertransformer'")


def run(results, folder, out):
    """A run's results/ taken into out/records, then the pages rendered from the records."""
    for r in results:
        write_atomic(folder / f"{r.cell.id}.json", r.to_json())
    take_in(folder, out / "records", matrix=None, history=out / "history.jsonl")
    render([out / "records"], out)
    return (out / "COMPATIBILITY.md").read_text(), json.loads((out / "results.json").read_text())


def with_version(result, package: str, version: str):
    resolve = result.rungs[0]
    resolve.detail = dataclasses.replace(resolve.detail,
                                         versions={**resolve.detail.versions, package: version})
    return result


def test_what_changed_between_two_runs_and_a_re_render_keeps_it(tmp_path) -> None:
    out = tmp_path / "reports"
    first = [cell("transformers", "numpy2", "generation", passing()),
             cell("infinity_emb", "numpy1", "embedding", failing_at("import", BROKEN)),
             cell("fastembed", "numpy2", "embedding", passing())]
    text, _ = run(first, tmp_path / "one", out)
    assert "## What changed\n\nNo previous run to compare with" in text

    later = [with_version(cell("transformers", "numpy2", "generation",
                               failing_at("load", ErrorInfo.from_message("OSError", "bad"))),
                          "numpy", "2.5.0"),
             cell("infinity_emb", "numpy1", "embedding", passing()),
             cell("embed", "numpy1", "embedding", passing())]
    for r in later:
        r.finished_at = "2026-11-24T00:00:00+00:00"
    text, merged = run(later, tmp_path / "two", out)
    assert "## What changed since the previous run (" in text
    assert "**Broke** (1):\n\n- `transformers-numpy2` broke: fails at load: OSError: bad" in text
    assert "- `infinity_emb-numpy1` was fixed (it fails at import: ModuleNotFoundError: " \
           "optimum.bettertransformer)" in text
    assert "- numpy 2.4.6 → **2.5.0** (`transformers-numpy2`)" in text
    assert "**New cells**: `embed-numpy1`" in text
    assert "`fastembed-numpy2`" in text  # its record is kept: a run that left it out changes nothing
    assert text.index("## What changed") < text.index("## Rungs per cell")

    again, merged_again = run(later, tmp_path / "two", out)  # the same results, taken in again
    assert merged_again["watch"] == merged["watch"]
    assert "was fixed" in again
    render([out / "records"], tmp_path / "again")  # rendering compares nothing: the same page
    assert (tmp_path / "again" / "COMPATIBILITY.md").read_text() == again
    history = (out / "history.jsonl").read_text().splitlines()
    assert len(history) == 6  # 3 cells, then 3 more lines for the later run; none for a re-take


def test_nothing_changed_says_so(tmp_path) -> None:
    out = tmp_path / "reports"
    results = [cell("transformers", "numpy2", "generation", passing())]
    run(results, tmp_path / "one", out)
    results[0].finished_at = "2026-11-25T00:00:00+00:00"  # a later run with the same verdicts
    text, _ = run(results, tmp_path / "one", out)
    assert "Nothing: every cell has the verdict and the versions it had." in text


def test_a_result_of_another_matrix_is_named_and_skipped(tmp_path) -> None:
    from compat.matrix import load

    results = [cell("transformers", "numpy2", "generation", passing()),
               cell("transformers", "numpy7", "generation", passing())]
    for r in results:
        write_atomic(tmp_path / "res" / f"{r.cell.id}.json", r.to_json())
    (tmp_path / "res" / "broken.json").write_text("{not json")
    (tmp_path / "res" / "old.json").write_text(json.dumps({"schema": 9}))
    merged = render([tmp_path / "res"], tmp_path / "out", matrix=load())
    assert [r.cell.id for r in merged] == ["transformers-numpy2"]
    text = (tmp_path / "out" / "COMPATIBILITY.md").read_text()
    assert "- transformers-numpy7.json: cell 'transformers-numpy7' is not in the matrix" in text
    assert "- broken.json: " in text and "- old.json: result schema 9 is not 1 or 2" in text
