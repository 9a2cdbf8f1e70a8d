"""compat/rungs/install.py: a release published while a run goes is synced, not a failure."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from compat.cell import DEFAULTS, CellRun, RungFailed
from compat.matrix import parse
from compat.rungs.install import sync
from tests.conftest import matrix_data

FAKE_SYNC = """
import sys
if "--refresh-package" in sys.argv and sys.argv[-1] == "huggingface-hub":
    sys.exit(0)
print("Because there is no version of huggingface-hub==2.5.0 and you require "
      "huggingface-hub==2.5.0, we can conclude that your requirements are unsatisfiable.")
sys.exit(1)
"""


def cell_run(tmp_path: Path, logged: list[str]) -> CellRun:
    cell = parse(matrix_data()).cell("sentence_transformers-numpy2")
    return CellRun(cell=cell, venv=tmp_path / "venv", options=DEFAULTS, log=logged.append)


def test_a_version_missing_from_a_stale_index_is_synced_with_it_refreshed(tmp_path) -> None:
    script = tmp_path / "fake_sync.py"
    script.write_text(FAKE_SYNC)
    logged: list[str] = []
    sync(cell_run(tmp_path, logged), [sys.executable, str(script)])
    assert any("no huggingface-hub at the locked version" in line for line in logged), logged


def test_any_other_failure_is_the_rungs(tmp_path) -> None:
    logged: list[str] = []
    with pytest.raises(RungFailed) as raised:
        sync(cell_run(tmp_path, logged), [sys.executable, "-c", "print('boom'); raise SystemExit(2)"])
    assert raised.value.error.type == "InstallError" and not logged
