"""compat/matrix.py: expansion, ids, and errors that name the bad value."""

from __future__ import annotations

import copy
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compat.errors import MatrixError
from compat.matrix import MATRIX_PATH, load, parse

BASE = tomllib.loads(MATRIX_PATH.read_text(encoding="utf-8"))


def variant(**changes) -> dict:
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *path, last = dotted.split(".")
        node = data
        for key in path:
            node = node[key]
        node[last] = value
    return data


def test_default_selection_has_readable_cells() -> None:
    ids = [cell.id for cell in load().selected("default")]
    assert ids[:4] == ["transformers-numpy1", "transformers-numpy2",
                       "sentence_transformers-numpy1", "sentence_transformers-numpy2"]


def test_cell_requirements_hold_engine_axis_device_and_harness() -> None:
    cell = load().cell("transformers-numpy1")
    assert "transformers" in cell.requirements
    assert "numpy>=1.26,<2" in cell.requirements
    assert "torch==2.13.0+cpu" in cell.requirements
    assert "pytest>=8" in cell.requirements


def test_unknown_engine_names_it_and_suggests() -> None:
    data = variant(**{"selections.default.engines": ["transformer"]})
    with pytest.raises(MatrixError, match=r"'transformer'.*Did you mean 'transformers'"):
        parse(data)


def test_engine_table_for_an_unregistered_engine() -> None:
    data = variant()
    data["engines"]["vlm"] = {"kind": "generation", "requires": ["x"], "fixtures": ["tiny-llama"]}
    with pytest.raises(MatrixError, match=r"Unknown engine 'vlm'.*Available: .*transformers"):
        parse(data)


def test_unknown_axis_in_selection() -> None:
    with pytest.raises(MatrixError,
                       match=r"Unknown axis in \[selections.full\].axes 'nympy'.*'numpy'"):
        parse(variant(**{"selections.full.axes": ["nympy"]}))


def test_unknown_device() -> None:
    with pytest.raises(MatrixError, match=r"'tpu'.*Available: cpu, cuda"):
        parse(variant(**{"selections.default.devices": ["tpu"]}))


def test_unknown_engine_key_lists_valid_keys() -> None:
    data = variant()
    data["engines"]["transformers"]["require"] = ["x"]
    with pytest.raises(MatrixError, match=r"unknown key\(s\) \['require'\]. Valid: "):
        parse(data)


def test_unknown_cell_lookup() -> None:
    with pytest.raises(MatrixError, match=r"Did you mean 'transformers-numpy2'"):
        load().cell("transformers-numpy3")


def test_bad_toml_is_a_matrix_error(tmp_path) -> None:
    path = tmp_path / "matrix.toml"
    path.write_text("[matrix\n")
    with pytest.raises(MatrixError, match="not valid TOML"):
        load(path)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.from_regex(r"[a-z0-9]{1,4}", fullmatch=True), min_size=1, max_size=4,
                unique=True))
def test_cell_ids_are_unique_for_any_axis_values(labels: list[str]) -> None:
    data = variant(**{"axes.numpy.values": {label: f"numpy=={i}" for i, label in
                                            enumerate(labels)}})
    data["cells"], data["known"] = [], []
    cells = parse(data).selected("default")
    assert len({c.id for c in cells}) == len(cells) == 4 * len(labels)
