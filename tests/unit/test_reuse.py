"""compat/reuse.py: what a cell's result depends on, --force, and results of cells since removed.
(The real cell reused on a second run: tests/integration/test_ladder.py.)"""

from __future__ import annotations

import shutil

import pytest

from compat.reuse import REPO, check_force, code_digest, engine_files, forced, strays
from core.errors import MatrixError


def test_a_cell_depends_on_its_own_engine_module_and_what_it_reaches() -> None:
    files = {p.relative_to(REPO).as_posix() for p in engine_files("llama_cpp_server")}
    assert {"engines/llama_cpp_server.py", "engines/llama_cpp.py", "engines/http/client.py",
            "engines/base.py"} <= files
    assert "engines/vllm.py" not in files and "engines/transformers.py" not in files
    server = {p.relative_to(REPO).as_posix() for p in engine_files("vllm_server")}
    assert "engines/vllm.py" in server  # its in-process twin


def test_the_code_digest_moves_with_the_engines_module_only(tmp_path, monkeypatch) -> None:
    from compat import reuse

    before = {e: code_digest(e) for e in ("transformers", "llama_cpp")}
    copy = tmp_path / "repo"
    for folder in reuse.CODE_DIRS:
        shutil.copytree(REPO / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(reuse, "REPO", copy)
    assert {e: code_digest(e) for e in before} == before
    with (copy / "engines" / "llama_cpp.py").open("a") as fh:
        fh.write("\n# an edit\n")
    assert code_digest("transformers") == before["transformers"]
    assert code_digest("llama_cpp") != before["llama_cpp"]
    with (copy / "engines" / "base.py").open("a") as fh:
        fh.write("\n# an edit every engine runs\n")
    assert code_digest("transformers") != before["transformers"]


def test_force_names_a_cell_that_is_not_in_the_run() -> None:
    ids = ["transformers-numpy1", "transformers-numpy2", "llama_cpp-numpy2"]
    check_force(("*",), ids)
    check_force(("transformers-*",), ids)
    assert forced("transformers-numpy2", ("transformers-*",))
    assert not forced("llama_cpp-numpy2", ("transformers-*",))
    with pytest.raises(MatrixError, match=r"Unknown cell to --force .*'transformer-numpy2'. "
                                          r"Did you mean 'transformers-numpy2'"):
        check_force(("transformer-numpy2",), ids)


def test_results_of_removed_cells_are_named(tmp_path) -> None:
    for name in ("transformers-numpy2", "gone-numpy1"):
        (tmp_path / f"{name}.json").write_text("{}")
    assert strays(tmp_path, ["transformers-numpy2"]) == ["gone-numpy1"]


def test_every_option_is_in_the_reuse_key_unless_marked() -> None:
    """An option is part of the key by default: one added later, and not marked as unable to
    change a result, invalidates earlier results without anyone listing it."""
    import dataclasses

    from compat.cell import Limits, Options

    changed_values = {"limits": Limits(load=1), "exclude_newer": "2026-01-01",
                      "from_lock": REPO / "lock.txt", "last_rung": "import", "properties": ("x",),
                      "hypothesis_budget": 3, "bench_args": ("--profile", "full"), "force": ("*",),
                      "threads": 1, "env": (("VLLM_CPU_NUM_OF_RESERVED_CPU", "0"),)}
    fields = {f.name for f in dataclasses.fields(Options)}
    assert fields == set(changed_values), "a new option: say here what a changed value is"
    base = Options().result_affecting()
    moved = {name for name, value in changed_values.items()
             if Options(**{name: value}).result_affecting() != base}
    assert moved == {"limits", "exclude_newer", "properties", "hypothesis_budget", "bench_args",
                     "env"}
