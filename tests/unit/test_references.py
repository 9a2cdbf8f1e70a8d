"""fixtures/references.py: the parity references committed as data, current for every fixture the
generation cells run, and taken from there instead of computed."""

from __future__ import annotations

import gzip
import json

from fixtures.parity import reference_path
from fixtures.references import COMMITTED, HERE, committed_path, take_committed


def test_every_committed_reference_is_current_and_none_is_stale() -> None:
    """A fixture or the reference's code that changed renames the reference (its key): the
    committed copy must then be written again (`python -m fixtures.ensure --commit-references`)."""
    current = {committed_path(name).name for name in COMMITTED}
    held = {path.name for path in HERE.glob("*.json.gz")}
    assert held == current, (f"stale: {sorted(held - current)}; missing: {sorted(current - held)}; "
                             "run python -m fixtures.ensure --commit-references")


def test_a_committed_reference_is_taken_into_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("INFERMATRIX_CACHE", str(tmp_path))
    name = "tiny-llama"
    assert not reference_path(name).exists()
    assert take_committed(name)
    taken = json.loads(reference_path(name).read_text(encoding="utf-8"))
    assert taken == json.loads(gzip.decompress(committed_path(name).read_bytes()))
    assert taken["reference"] and len(taken["prompts"]) >= 6
