"""docs/extending.md's worked example, followed to the letter: its code blocks applied to a copy of
the repository, then the matrix and registry tests and the whole generation conformance suite run
on the new engine in a real cell. A guide that drifts from the code fails here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compat.cell import cell_env
from core.ask import Ask
from core.results import read_rung
from fixtures.ensure import build_parity_references
from tests.conftest import REPO, installed

GUIDE = REPO / "docs" / "extending.md"
STEP = re.compile(r"<!-- guide: (?P<how>create|append) (?P<path>\S+) -->\n```\w*\n(?P<code>.*?)```",
                  re.S)
COPIED = ("core", "compat", "engines", "fixtures", "bench", "incell", "pages", "tests", "docs",
          "pyproject.toml", "noxfile.py")


def guide_steps(text: str) -> list[tuple[str, str, str]]:
    """(create|append, path, code) for each block the guide marks, in order."""
    return [(m["how"], m["path"], m["code"]) for m in STEP.finditer(text)]


def follow_the_guide(into: Path) -> list[str]:
    """A copy of the repository's code with the guide's steps applied; the paths it touched."""
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, into / name)
    touched = []
    for how, path, code in guide_steps(GUIDE.read_text(encoding="utf-8")):
        target = into / path
        if how == "create":
            assert not target.exists(), f"the guide creates {path}, which exists already"
            target.write_text(code, encoding="utf-8")
        else:
            target.write_text(target.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + code,
                              encoding="utf-8")
        touched.append(path)
    return touched


def test_the_guide_marks_its_steps() -> None:
    steps = guide_steps(GUIDE.read_text(encoding="utf-8"))
    assert [(how, path) for how, path, _ in steps] == [
        ("create", "engines/numpy_reference.py"), ("append", "engines/__init__.py"),
        ("append", "compat/matrix.toml")]


@pytest.mark.slow
def test_an_engine_added_by_the_guide_alone_passes_the_tests_and_the_suite(tmp_path) -> None:
    copy = tmp_path / "repo"
    copy.mkdir()
    follow_the_guide(copy)
    env = {**os.environ, "PYTHONPATH": str(copy)}
    checks = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/unit/test_matrix.py", "tests/unit/test_base.py", "-m", "not slow"],
                            cwd=copy, env=env, capture_output=True, text=True, check=False)
    assert checks.returncode == 0, checks.stdout[-3000:] + checks.stderr[-2000:]

    # the suite, in the cell the engine's requirements make (transformers' venv holds them all)
    run_in = installed("transformers-numpy2", tmp_path, ("tiny-llama",))
    assert build_parity_references(["tiny-llama"], 600, print) is None
    cell = cell_env(run_in) | {"PYTHONPATH": str(copy), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "conformance.json"
    ask = Ask(engine="numpy_reference", fixtures=("tiny-llama",), hypothesis_budget=5).arg()
    done = subprocess.run(
        [str(run_in.venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(copy / "incell/conformance/test_generation.py"), "-c",
         str(copy / "incell/conformance/pytest.ini"), "--rootdir", str(copy), "--ask", ask,
         "--conformance-json", str(out)],
        cwd=copy, env=cell, capture_output=True, text=True, check=False)
    assert out.is_file(), done.stdout[-3000:] + done.stderr[-2000:]
    statuses = {name: p.status for name, p in read_rung(out).detail.properties.items()}
    failed = {name: s for name, s in statuses.items() if s not in ("pass", "skip")}
    assert not failed, (failed, done.stdout[-3000:])
    passed = sorted(name for name, s in statuses.items() if s == "pass")
    assert {"greedy_parity", "greedy_determinism", "batch_invariance", "continuation",
            "stop_strings", "chat_template"} <= set(passed)
