"""An understood failure climbs on: a [[known]] entry with a property (compat/matrix.toml) lets
the conformance rung pass over that property's failure, which every page then shows ⛔ known
with its upstream reference, and the cell's speed rows carry the mark."""

from __future__ import annotations

import json

import pytest

from compat.matrix import load, parse
from compat.rungs.conformance import judge
from compat.specs import Known
from core.details import ConformanceDetail, PropertyResult
from core.errors import MatrixError
from core.results import CellResult, Rung, write_atomic
from pages.render import render
from tests.conftest import matrix_data
from tests.unit.builders import cell, gen_metric, passing

WHITESPACE = ("[smollm2-135m-instruct] AssertionError: whitespace (runs of spaces and newlines): "
              "item 0: first divergence at position 21: openvino_genai=216 tokenizer.json=256")
DECLARED = Known(cells=("openvino_genai-*",), rung="conformance", property="tokenizer_real_text",
                 signature="*whitespace (runs of spaces and newlines)*",
                 reason="openvino-tokenizers rewrites the whitespace rule", link="https://up/208")


def outcome(**props: PropertyResult) -> Rung:
    return Rung("conformance", "pass", detail=ConformanceDetail(properties=dict(props)))


def test_a_declared_property_failure_passes_the_rung_and_is_recorded_known() -> None:
    rung = judge(outcome(tokenizer_real_text=PropertyResult("fail", WHITESPACE),
                         greedy_parity=PropertyResult("pass")), (DECLARED,))
    assert rung.status == "pass"
    assert rung.reason == "known failures (compat/matrix.toml): tokenizer_real_text"
    prop = rung.detail.properties["tokenizer_real_text"]
    assert prop.status == "known" and prop.known.link == "https://up/208"
    assert prop.message == WHITESPACE  # the failure's own words are kept


def test_an_undeclared_failure_still_fails_and_a_signature_that_does_not_match_is_not_known() -> None:
    other = "[smollm2-135m-instruct] AssertionError: special tokens split: item 3"
    rung = judge(outcome(tokenizer_real_text=PropertyResult("fail", other),
                         stop_strings=PropertyResult("fail", "[tiny] cut late")), (DECLARED,))
    assert rung.status == "fail"
    assert rung.error.signature == "ConformanceFailure: stop_strings, tokenizer_real_text"
    assert rung.detail.properties["tokenizer_real_text"].status == "fail"
    # declared, but another property fails too: the rung fails naming only the undeclared one
    rung = judge(outcome(tokenizer_real_text=PropertyResult("fail", WHITESPACE),
                         stop_strings=PropertyResult("fail", "[tiny] cut late")), (DECLARED,))
    assert rung.status == "fail" and rung.error.signature == "ConformanceFailure: stop_strings"
    assert rung.detail.properties["tokenizer_real_text"].status == "known"


def test_the_matrix_gives_each_cell_its_declared_properties_and_refuses_bad_entries() -> None:
    matrix = load()
    assert [k.property for k in matrix.cell("openvino_genai-numpy2").known_properties] == [
        "tokenizer_real_text"]
    assert [k.property for k in matrix.cell("mistralrs-numpy2").known_properties] == [
        "eos_and_stops"]
    assert matrix.cell("transformers-numpy2").known_properties == ()
    entry = {"cells": ["transformers-*"], "rung": "conformance", "property": "greedy_parityy",
             "reason": "r", "link": "https://x"}
    with pytest.raises(MatrixError, match=r"property in \[\[known\]\] \(rung conformance\) "
                                          r"'greedy_parityy'.*greedy_parity"):
        parse({**matrix_data(), "known": [entry]})
    with pytest.raises(MatrixError, match=r"rung 'load' is not one of \['conformance', 'api'\]"):
        parse({**matrix_data(), "known": [{**entry, "property": "greedy_parity", "rung": "load"}]})
    with pytest.raises(MatrixError, match=r"give the upstream reference \(link\)"):
        parse({**matrix_data(), "known": [{**entry, "property": "greedy_parity", "link": ""}]})


def test_a_property_known_is_not_a_rung_known() -> None:
    """The rung-level lookup the pages use for a failed rung ignores property entries: a cell
    whose conformance fails on something else is a plain failure, not ⛔."""
    assert not DECLARED.matches("openvino_genai-numpy2", "conformance",
                                "ConformanceFailure: tokenizer_real_text")


def test_pages_show_the_known_failure_and_mark_the_cells_speed_row(tmp_path) -> None:
    rungs = passing({"fixture": "small-llama", "metrics": [
        gen_metric("decode_tokens_per_s", "tok/s", 1, [90.0, 91.0, 92.0, 90.5, 91.5])]})
    rungs[4].detail = {"properties": {
        "tokenizer_real_text": {"status": "known", "message": WHITESPACE, "cases": {},
                                "known": {"reason": "the whitespace rule", "link": "https://up/208"}},
        "greedy_parity": {"status": "pass", "message": "", "cases": {}}}}
    rungs[4].reason = "known failures (compat/matrix.toml): tokenizer_real_text"
    write_atomic(tmp_path / "r" / "g.json", cell("gen", "numpy2", "generation", rungs).to_json())
    render([tmp_path / "r"], tmp_path / "out")
    conformance = (tmp_path / "out" / "CONFORMANCE.md").read_text()
    row = next(ln for ln in conformance.splitlines() if ln.startswith("| `gen`"))
    assert "⛔ [^" in row and "✅" in row
    assert ("tokenizer_real_text: known failure: AssertionError: whitespace (runs of spaces and "
            "newlines)") in conformance
    assert "the whitespace rule (https://up/208)" in conformance
    compatibility = (tmp_path / "out" / "COMPATIBILITY.md").read_text()
    assert "⛔ known: `tokenizer_real_text` (see CONFORMANCE.md)" in compatibility
    throughput = (tmp_path / "out" / "THROUGHPUT.md").read_text()
    speed = next(ln for ln in throughput.splitlines() if ln.startswith("| `gen`"))
    assert "`gen` ⛔ known: tokenizer_real_text" in speed and "91.0" in speed


def test_the_watch_says_a_cell_climbs_on_over_a_declared_failure() -> None:
    """Not "fixed": the failure is still there, declared understood."""
    from core.results import ErrorInfo
    from pages.watch import changes
    from tests.unit.builders import failing_at

    before = cell("gen", "numpy2", "generation", failing_at("conformance", ErrorInfo(
        "ConformanceFailure", "1 of 2 properties failed", "ConformanceFailure: eos_and_stops", "")))
    rungs = passing()
    rungs[4].detail = {"properties": {"eos_and_stops": {
        "status": "known", "message": "[m] stop 'France'", "cases": {},
        "known": {"reason": "r", "link": "https://x"}}}}
    after = CellResult.from_dict(json.loads(cell("gen", "numpy2", "generation", rungs).to_json()))
    lines = changes([before], [after], None)
    assert lines[0] == "**Declared understood in compat/matrix.toml** (1):"
    assert lines[2] == ("- `gen-numpy2` climbs on over declared failures: eos_and_stops (was: "
                        "fails at conformance: ConformanceFailure: eos_and_stops)")
