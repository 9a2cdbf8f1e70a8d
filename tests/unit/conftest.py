"""Shared helpers for the suite's own tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo_env() -> dict[str, str]:
    """Environment for subprocesses that import the project."""
    return {**os.environ, "PYTHONPATH": str(REPO)}
