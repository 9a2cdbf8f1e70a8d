"""infermatrix sessions, generated from compat/matrix.toml.

    nox                     run the default matrix (every CPU cell), then the report
    nox -l                  list sessions (nox -l --json for a CI matrix)
    nox -s "cell(transformers-numpy2)"
    nox -s report           merge results/*.json into reports/
    nox -s tests            the suite's own tests
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent))

from compat import ladder
from compat import matrix as matrix_mod

ROOT = Path(__file__).parent
RESULTS = Path(os.environ.get("INFERMATRIX_RESULTS", ROOT / "results"))
REPORT_DEPS = ("tabulate==0.10.0",)
TEST_DEPS = ("pytest>=8", "hypothesis>=6", "numpy", "tabulate==0.10.0", "nox[uv]>=2025.10.16")

MATRIX_FILE = Path(os.environ.get("INFERMATRIX_MATRIX", matrix_mod.MATRIX_PATH))
MATRIX = matrix_mod.load(MATRIX_FILE)  # a bad matrix stops here, before any environment is built

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.sessions = [f"cell({cell.id})" for cell in MATRIX.cells] + ["report"]


def _cell_session(cell: matrix_mod.Cell) -> None:
    tags = ["cell", cell.engine.id, cell.engine.kind, cell.device]

    # python=False: the ladder makes the cell's venv itself (uv, under .nox/), so a
    # missing interpreter or a broken install is a recorded result, not a nox error.
    @nox.session(name=f"cell({cell.id})", python=False, tags=tags, default=False)
    def session(session: nox.Session) -> None:
        """One cell: resolve, install, import, load, conformance, bench; a failure is a result."""
        venv = ROOT / ".nox" / f"cell-{cell.id}"
        result = ladder.run_cell(cell, venv=venv, results_dir=RESULTS, log=session.log)
        failed = result.first_failure
        summary = f"{failed.name} failed: {failed.error.signature}" if failed and failed.error \
            else "every rung passed" if not failed else f"{failed.name} failed"
        session.log(f"[{cell.id}] {summary} -> {RESULTS / (cell.id + '.json')}")


for _cell in MATRIX.cells:
    _cell_session(_cell)


@nox.session(python=False)
def matrix(session: nox.Session) -> None:
    """Print the cells of compat/matrix.toml and what each installs."""
    for cell in MATRIX.cells:
        session.log(f"cell({cell.id}): {' '.join(cell.requirements)}")


@nox.session(venv_backend="uv")
def report(session: nox.Session) -> None:
    """Merge results/*.json (or the folders given) into reports/."""
    session.install(*REPORT_DEPS)
    folders = session.posargs or [str(RESULTS)]
    session.run("python", "-m", "reports.render", *folders, "--out", str(ROOT / "reports"),
                env={"PYTHONPATH": str(ROOT)})


@nox.session(python=False)
def fixtures(session: nox.Session) -> None:
    """Build the tiny LM fixtures into the cache (cells do this themselves when needed)."""
    from fixtures.catalog import built_dir, built_names

    failure = ladder.build_fixtures(built_names(), limit=600, log=session.log)
    if failure is not None:
        session.error(f"fixture build failed: {failure.error.message}\n{failure.error.text}")
    for name in built_names():
        session.log(f"{name}: {built_dir(name)}")


@nox.session(venv_backend="uv")
def tests(session: nox.Session) -> None:
    """The suite's own tests (pytest); pass pytest options after --."""
    session.install(*TEST_DEPS)
    session.run("pytest", *session.posargs, env={"PYTHONPATH": str(ROOT)})


@nox.session(venv_backend="uv")
def lint(session: nox.Session) -> None:
    """ruff check."""
    session.install("ruff")
    session.run("ruff", "check", ".", *session.posargs)
