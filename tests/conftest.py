"""Shared helpers for the suite's own tests."""

from __future__ import annotations

import fcntl
import os
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_CELLS = REPO / ".nox" / "test-cells"
"""The real cells' venvs the tests climb or use, kept for the next test run."""


def matrix_data() -> dict:
    """A fresh dict of compat/matrix.toml, for tests that change a piece of it."""
    return tomllib.loads((REPO / "compat" / "matrix.toml").read_text(encoding="utf-8"))


@pytest.fixture
def repo_env() -> dict[str, str]:
    """Environment for subprocesses that import the project."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


def installed(cell_id: str, results_dir: Path, fixtures: tuple[str, ...] = ()):
    """Cell `cell_id` resolved and installed for real in its venv under .nox/test-cells (reused
    when already there: uv pip sync is then a no-op), its fixtures built: the CellRun to use it.
    Under a lock per venv: the tests run in parallel (pytest-xdist) and share these venvs."""
    from compat.cell import CellRun, Options
    from compat.ladder import run_cell
    from compat.matrix import load
    from fixtures.ensure import build_fixtures

    cell = load().cell(cell_id)
    venv = TEST_CELLS / cell.id
    TEST_CELLS.mkdir(parents=True, exist_ok=True)
    with (TEST_CELLS / f"{cell.id}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = run_cell(cell, venv=venv, results_dir=results_dir, log=print,
                          options=Options(last_rung="install"))
    failed = result.first_failure
    assert failed is None, f"{failed.name}: {failed.error.text[-2000:] if failed.error else ''}"
    assert build_fixtures(list(fixtures), 600, log=print) is None
    return CellRun(cell=cell, venv=venv, options=Options(), log=print)


@pytest.fixture(scope="module")
def tiny_llama() -> Path:
    """tiny-llama built (once) and its folder."""
    from fixtures.catalog import locate
    from fixtures.ensure import build_fixtures

    assert build_fixtures(["tiny-llama"], 600, log=print) is None
    return locate("tiny-llama")


@pytest.fixture(scope="module")
def server_cell(tmp_path_factory):
    """transformers_server-base resolved and installed for real (its venv under .nox/test-cells
    is reused): the cell's python and environment."""
    from compat.cell import cell_env

    run = installed("transformers_server-base", tmp_path_factory.mktemp("results"), ("tiny-llama",))
    return str(run.python), cell_env(run)


LONGEST = ("test_real_cell", "test_suite_catches_bugs", "test_stacks", "test_endpoint_real",
           "test_gguf_quantizer", "test_endpoint", "test_servers",
           "test_ladder", "test_site")
"""The files that take longest, longest first (seconds on the 2-core machine, each beside the
others: a real cell climbed through every rung 210, every broken engine through the suite 180,
a stack's one-process step against the patching stand-in 100, a server someone else runs 70,
the servers' lifecycle 55, the ladder's real environments 35, the site in a browser 25)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first: pytest-xdist hands out whole files in this order, so the long ones
    start at once and the short ones fill the cores around them, instead of a long file starting
    last and running alone at the end."""
    def rank(item: pytest.Item) -> int:
        name = item.module.__name__.rpartition(".")[2]
        return LONGEST.index(name) if name in LONGEST else len(LONGEST)

    items.sort(key=rank)  # stable: the others as collected
