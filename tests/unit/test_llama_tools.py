"""llama.cpp's tools (compat/llama_tools.py): the commit they are built at, and where a cell
finds them. The build itself (minutes) runs in the llama_server cell's install rung."""

from __future__ import annotations

from compat.llama_tools import built, commit_of, tools_dir

CHANGELOG = """# Changelog

## [Unreleased]

## [0.3.36]

- feat: update llama.cpp to ggml-org/llama.cpp@0c1e57098
- fix: something

## [0.3.35]

- feat: update llama.cpp to ggml-org/llama.cpp@4df29be4f
"""


def test_the_commit_is_the_one_the_release_names() -> None:
    assert commit_of(CHANGELOG, "0.3.36") == "0c1e57098"
    assert commit_of(CHANGELOG, "0.3.35") == "4df29be4f"
    assert commit_of(CHANGELOG, "0.3.1") == "unknown"


def test_tools_count_as_built_only_when_every_one_is_there(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("INFERMATRIX_CACHE", str(tmp_path))
    folder = tools_dir("9.9.9")
    assert folder == tmp_path / "wheels" / "llama.cpp-tools-9.9.9" and built("9.9.9") is None
    (folder / "bin").mkdir(parents=True)
    (folder / "build.json").write_text('{"llama_cpp_commit": "abc"}')
    for name in ("llama-server", "llama-bench"):
        (folder / "bin" / name).write_text("")
    assert built("9.9.9") is None  # llama-perplexity is missing
    (folder / "bin" / "llama-perplexity").write_text("")
    assert built("9.9.9") == {"llama_cpp_commit": "abc"}
