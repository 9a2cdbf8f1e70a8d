"""Shared helpers for the suite's own tests."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def matrix_data() -> dict:
    """A fresh dict of compat/matrix.toml, for tests that change a piece of it."""
    return tomllib.loads((REPO / "compat" / "matrix.toml").read_text(encoding="utf-8"))


@pytest.fixture
def repo_env() -> dict[str, str]:
    """Environment for subprocesses that import the project."""
    return {**os.environ, "PYTHONPATH": str(REPO)}
