"""A user's own stack climbed for real (`nox -s stack -- FILE`'s path): a requirements.txt holding
only llama-cpp-python and numpy through conformance, with none of the harness's packages in the
file (gguf, pytest: they ride apart), a pyproject.toml with its optional group, and a uv.lock
pinning numpy 2 climbed the other way with --axis numpy=1."""

from __future__ import annotations

import pytest

from compat.cell import Options
from compat.matrix import load
from compat.stack_file import stack_of_file
from compat.stack_run import climb_stack
from tests.conftest import TEST_CELLS
from tests.unit.test_stack_file import PYPROJECT, UV_LOCK

LLAMA = "llama-cpp-python==0.3.36"  # the release the test cells build once (the wheelhouse)
SUBSET = Options(properties=("greedy_parity", "batch_invariance"))


def climb(path, *, last_rung: str = "api", **kwargs):
    stack = stack_of_file(path, load(), **kwargs)
    options = Options(properties=SUBSET.properties, last_rung=last_rung)
    done = climb_stack(stack, venv_root=TEST_CELLS, results_dir=path.parent / "results",
                       options=options)
    return stack, done.members


@pytest.mark.slow
def test_a_requirements_file_climbs_on_its_own_packages(tmp_path) -> None:
    folder = tmp_path / "svc"
    folder.mkdir()
    path = folder / "requirements.txt"
    path.write_text(f"{LLAMA}\nnumpy>=2\n", encoding="utf-8")
    stack, (member,) = climb(path)
    assert stack.id == "stack-svc-base"
    assert member.first_failure is None, member.first_failure
    versions = member.versions
    assert "gguf" not in versions and "pytest" not in versions  # judged on its own packages
    assert set(member.properties()) == {"greedy_parity", "batch_invariance"}


@pytest.mark.slow
def test_a_pyproject_group_and_a_uv_lock_moved_to_numpy_1(tmp_path) -> None:
    project = tmp_path / "myproj"
    project.mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT.replace('"llama-cpp-python"', f'"{LLAMA}"'),
                                            encoding="utf-8")
    _, (member,) = climb(project / "pyproject.toml", last_rung="import", extras=("llama",))
    assert member.rung("import").status == "pass" and member.versions["jinja2"]

    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "uv.lock").write_text(UV_LOCK, encoding="utf-8")
    stack, (member,) = climb(locked / "uv.lock", last_rung="import", axes=("numpy=1",))
    assert stack.id == "stack-myproj-numpy1"
    assert member.rung("import").status == "pass"
    assert member.versions["numpy"].startswith("1.")
    assert member.versions["llama-cpp-python"] == "0.3.36"


@pytest.mark.slow
def test_here_on_a_venv_holding_only_llama_cpp_python(tmp_path) -> None:
    """`nox -s here` judges the venv on its own packages: gguf and pytest are not in it, and no
    rung fails for want of them."""
    import subprocess

    from compat.here import existing_cell, run_here
    from core.proc import uv_binary, uv_index_args
    from fixtures.catalog import cache_root

    venv = TEST_CELLS / "here-only-llama"
    if not (venv / "bin" / "python").is_file():
        subprocess.run([uv_binary(), "venv", "--quiet", "--python", "3.11", str(venv)], check=True)
    subprocess.run([uv_binary(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
                    LLAMA, *uv_index_args(), "--find-links", str(cache_root() / "wheels")],
                   check=True)
    cell = existing_cell(load(), "llama_cpp", "cpu", None, "only-llama")
    result = run_here(cell, venv / "bin" / "python", results_dir=tmp_path,
                      options=Options(properties=SUBSET.properties, last_rung="api"))
    assert result.first_failure is None, result.first_failure
    assert "gguf" not in result.versions and "pytest" not in result.versions
