"""Selections, axes per engine, extra cells, excludes and known incompatibilities."""

from __future__ import annotations

import copy
import tomllib

import pytest

from compat.errors import MatrixError
from compat.matrix import MATRIX_PATH, load, override_slug, parse, slug

BASE = tomllib.loads(MATRIX_PATH.read_text(encoding="utf-8"))


def data() -> dict:
    return copy.deepcopy(BASE)


def test_selections_and_sizes() -> None:
    matrix = load()
    default = {c.id for c in matrix.selected("default")}
    assert {"transformers-numpy2", "infinity_emb-numpy1", "embed-numpy2"} <= default
    assert len(matrix.selected("full")) >= 30
    assert all(c.device == "cpu" for c in matrix.selected("default"))


def test_axes_apply_only_to_their_engines() -> None:
    full = load().selected("full")
    assert any(c.id == "infinity_emb-numpy1-optimum1.23-transformers4" for c in full)
    assert not any(c.engine.id == "transformers" and "optimum" in dict(c.axes) for c in full)
    assert {c.device for c in full if c.engine.id == "vllm"} == {"cuda"}


def test_extra_cell_ids_say_what_they_hold() -> None:
    ids = {c.id for c in load().cells}
    assert "infinity_emb-numpy2-lift-numpy" in ids
    assert "embed-numpy1-optimum1.23-pyarrowlt20-no-torchvision" in ids
    assert slug("infinity-emb==0.0.58") == "infinity-emb0.0.58"
    assert override_slug("torchvision; sys_platform == 'never'") == "no-torchvision"


def test_extra_cell_carries_pins_and_overrides() -> None:
    cell = load().cell("infinity_emb-numpy2-lift-numpy")
    assert cell.overrides == ("numpy>=2",)
    assert "numpy>=2" in cell.requested and "pytest>=8" not in cell.requested


def test_exclude_removes_matching_cells() -> None:
    d = data()
    d["exclude"] = [{"engine": "sentence_transformers", "numpy": "2"}]
    ids = {c.id for c in parse(d).cells}
    assert "sentence_transformers-numpy1" in ids
    assert not any(i.startswith("sentence_transformers-numpy2") for i in ids)


@pytest.mark.parametrize(("mutate", "pattern"), [
    (lambda d: d.__setitem__("exclude", [{"numpi": "2"}]), r"Unknown key in \[\[exclude\]\] 'numpi'"),
    (lambda d: d.__setitem__("exclude", [{"numpy": "3"}]), r"value of 'numpy'.*'3'.*Available: 1, 2"),
    (lambda d: d["cells"].append({"engine": "embed", "axes": {"numpy": "9"}}),
     r"Unknown value of axis 'numpy' '9'"),
    (lambda d: d["cells"].append({"engine": "embedd"}), r"'embedd'. Did you mean 'embed'"),
    (lambda d: d["known"].append({"cells": ["nope-*"], "rung": "import", "reason": "x"}),
     r"cell pattern in \[\[known\]\] \(matches no cell\) 'nope-\*'"),
    (lambda d: d["known"].append({"cells": ["embed-*"], "rung": "imports", "reason": "x"}),
     r"Unknown rung in \[\[known\]\] 'imports'. Did you mean 'import'"),
    (lambda d: d["selections"]["default"].__setitem__("axes", ["optimun"]),
     r"'optimun'. Did you mean 'optimum'"),
])
def test_bad_matrix_input_names_the_value(mutate, pattern: str) -> None:
    d = data()
    mutate(d)
    with pytest.raises(MatrixError, match=pattern):
        parse(d)


def test_selector_that_matches_nothing() -> None:
    with pytest.raises(MatrixError, match=r"matches no cell of selection 'full'.*'vllm-\*-rocm'"):
        load().select(["infinity_emb-*", "vllm-*-rocm"])
    assert len(load().select(["infinity_emb-numpy2-*"])) == 7


def test_known_matching() -> None:
    matrix = load()
    sig = "ResolutionError: all versions of embed depend on numpy>=1.20.0,<2; you require embed"
    assert matrix.known_for("embed-numpy2", "resolve", sig) is not None
    assert matrix.known_for("embed-numpy2", "import", sig) is None
    assert matrix.known_for("embed-numpy1", "resolve", sig) is None
