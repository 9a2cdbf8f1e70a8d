"""compat/bisect.py: the search finds the boundary within ceil(log2 N) + 2 probes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compat.bisect import bisect, boundary, search
from compat.matrix import load
from core.errors import MatrixError


@given(n=st.integers(2, 300), data=st.data(), fixed=st.booleans())
def test_search_finds_the_boundary_within_budget(n: int, data, fixed: bool) -> None:
    """Either way round: a regression (old releases work) or a fix (new releases work)."""
    releases = [f"1.{i}" for i in range(n)]
    boundary = data.draw(st.integers(1, n - 1))  # releases[:boundary] behave like the start
    probes = []

    def works(version: str) -> bool:
        probes.append(version)
        return (releases.index(version) < boundary) != fixed

    answer = search(releases, works)
    assert answer.direction == ("fix" if fixed else "regression")
    assert answer.start_works == (not fixed)
    assert (answer.before, answer.after) == (releases[boundary - 1], releases[boundary])
    assert len(probes) <= math.ceil(math.log2(n)) + 2


def test_search_when_the_start_and_the_newest_agree() -> None:
    answer = search(["1", "2", "3"], lambda v: True)
    assert (answer.direction, answer.start_works, answer.after) == ("none", True, None)
    assert boundary(answer) == "every probe works"
    answer = search(["1", "2", "3"], lambda v: False)
    assert not answer.start_works and "give an older --good" in answer.note


def test_bisect_over_a_package_the_cell_does_not_hold(tmp_path) -> None:
    cell = load().cell("sentence_transformers-numpy2")
    with pytest.raises(MatrixError, match=r"Unknown package in cell 'sentence_transformers-numpy2' "
                                          r"'infinity-emb'.*Available: .*sentence-transformers"):
        bisect(cell, "infinity-emb", venv=tmp_path / "venv", results_dir=tmp_path)
