"""A user's own stack: a requirements.txt, a pyproject.toml or a uv.lock read as a stack
(`nox -s stack -- FILE [--extra NAME] [--axis numpy=2]`).

The registered engines are recognised by package (llama-cpp-python → llama_cpp, sentence-
transformers → sentence_transformers); every other package rides along as the file pins it. An
`--axis` overrides the file's own requirement on that package: the question users ask before an
upgrade ("do the engines in my requirements still work if I move numpy?"). The environment is
built from the file alone; the harness's own needs ride apart (compat/harness.py), so the verdict
is about the user's packages. Bad input stops here, naming the file and line, and the valid values.
Stdlib only, with `packaging` (nox's own dependency): this runs in the driver.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from compat.matrix import Matrix, requirement_name
from compat.stacks import Stack
from core.errors import InfermatrixError, unknown
from engines import ENGINES

GENERIC_STEMS = ("requirements", "pyproject", "uv", "requirements-dev", "reqs")


class StackFileError(InfermatrixError, ValueError):
    """A stack file that cannot be read as a stack (says which file, which line, and why)."""


@dataclass(frozen=True)
class Wanted:
    """One requirement of the file, and where it stands."""

    text: str
    line: int

    @property
    def name(self) -> str:
        return requirement_name(self.text)


def parse_requirement(path: Path, text: str, line: int) -> Wanted:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        Requirement(text)
    except InvalidRequirement as exc:
        raise StackFileError(f"{path}:{line}: not a requirement: {text!r} ({exc})") from None
    return Wanted(text, line)


def line_of(text: str, needle: str) -> int:
    """The 1-based line where `needle` first appears in `text` (0 if it does not)."""
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else 0


def from_requirements_txt(path: Path, text: str) -> tuple[list[Wanted], list[str]]:
    wanted = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise StackFileError(f"{path}:{number}: {line!r}: options (-r, -e, --index-url, ...) "
                                 "are not read here; list the requirements themselves")
        wanted.append(parse_requirement(path, line, number))
    return wanted, [w.name for w in wanted]


def from_pyproject(path: Path, text: str, extras: tuple[str, ...]) -> tuple[list[Wanted], list[str]]:
    project = read_toml(path, text).get("project")
    if not isinstance(project, dict) or "dependencies" not in project:
        raise StackFileError(f"{path}: no [project] table with `dependencies`: not a stack")
    groups = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in groups:
            raise StackFileError(f"{path}: " + unknown("optional group (--extra)", extra, groups))
    texts = [*project["dependencies"], *(t for extra in extras for t in groups[extra])]
    wanted = [parse_requirement(path, t, line_of(text, f'"{t}"')) for t in texts]
    return wanted, [w.name for w in wanted]


def from_uv_lock(path: Path, text: str, extras: tuple[str, ...]) -> tuple[list[Wanted], list[str]]:
    """Every locked package pinned to its version; the engines are looked for among the
    project's own dependencies (its optional groups with --extra), not the transitive ones."""
    packages = read_toml(path, text).get("package")
    if not isinstance(packages, list) or not packages:
        raise StackFileError(f"{path}: no [[package]] entries: not a uv.lock")
    projects = [p for p in packages if is_project(p)]
    wanted = [parse_requirement(path, f"{p['name']}=={p['version']}", line_of(text, f'name = "{p["name"]}"'))
              for p in packages if p not in projects and "version" in p]
    direct = [d["name"] for p in projects for d in p.get("dependencies", [])]
    for p in projects:
        groups = p.get("optional-dependencies", {})
        for extra in extras:
            if extra not in groups:
                raise StackFileError(f"{path}: " + unknown("optional group (--extra)", extra, groups))
            direct += [d["name"] for d in groups[extra]]
    return wanted, [requirement_name(d) for d in direct] or [w.name for w in wanted]


def is_project(package: dict) -> bool:
    """A uv.lock entry of the project itself (its source is the folder), not a locked package."""
    return bool({"virtual", "editable"} & set(package.get("source", {})))


def read_toml(path: Path, text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StackFileError(f"{path}: not valid TOML: {exc}") from None


def read_file(path: Path, extras: tuple[str, ...] = ()) -> tuple[list[Wanted], list[str]]:
    """The file's requirements and the package names engines are looked for among."""
    path = Path(path)
    if not path.is_file():
        raise StackFileError(f"{path}: no such file; give a requirements.txt, a pyproject.toml "
                             "or a uv.lock")
    text = path.read_text(encoding="utf-8")
    if path.name == "pyproject.toml" or (path.suffix == ".toml" and "[project]" in text):
        return from_pyproject(path, text, extras)
    if path.suffix == ".lock":
        return from_uv_lock(path, text, extras)
    if extras:
        raise StackFileError(f"{path}: --extra names an optional group, which only a "
                             "pyproject.toml or a uv.lock has")
    return from_requirements_txt(path, text)


def engine_packages(matrix: Matrix, device: str) -> dict[str, str]:
    """Package name → the in-process engine it is (its own distribution on `device`, without
    extras: "sentence-transformers" is sentence_transformers, not its ONNX twin)."""
    found: dict[str, str] = {}
    for engine_id, spec in matrix.engines.items():
        if ENGINES[engine_id].transport != "process" or device not in spec.devices:
            continue
        own = spec.requires_on(device)[0]
        if "[" not in own.split(";")[0]:
            found.setdefault(requirement_name(own), engine_id)
    return found


def label_of(path: Path, text: str) -> str:
    """What the stack's id calls the file: its project's name, else its name or its folder's."""
    name = ""
    if path.suffix in (".toml", ".lock"):
        data = tomllib.loads(text)
        projects = [p for p in data.get("package", []) if is_project(p)]
        name = data.get("project", {}).get("name", "") or (projects[0]["name"] if projects else "")
    name = name or (path.resolve().parent.name if path.stem in GENERIC_STEMS else path.stem)
    return re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-.") or "stack"


def stack_of_file(path: Path, matrix: Matrix, *, extras: tuple[str, ...] = (),
                  axes: tuple[str, ...] = (), device: str = "cpu", check_index: bool = True) -> Stack:
    """The stack a user's file describes, with each `--axis NAME=VALUE` overriding the file's
    own requirement on that package."""
    wanted, direct = read_file(path, extras)
    by_package = engine_packages(matrix, device)
    engines = [by_package[name] for name in dict.fromkeys(direct) if name in by_package]
    if not engines:
        known = ", ".join(f"{p} ({e})" for p, e in sorted(by_package.items()))
        raise StackFileError(f"{path}: no engine infermatrix knows is in it. It recognises these "
                             f"packages: {known}")
    if check_index and path.suffix != ".lock":
        check_published(path, wanted)
    chosen, rides = [], list(wanted)
    for spec in axes:
        axis, value, package = axis_override(spec, matrix)
        if package not in {w.name for w in wanted}:
            raise StackFileError(f"--axis {spec}: {path} has no requirement on {package} (its "
                                 f"packages: {', '.join(sorted({w.name for w in wanted}))})")
        rides = [w for w in rides if w.name != package]
        chosen.append((axis, value))
    return Stack(name=label_of(path, path.read_text(encoding="utf-8")),
                 engines=tuple(matrix.engines[e] for e in ENGINES if e in engines),
                 axes=tuple((a.name, v) for a, v in chosen), axis_specs=tuple(a for a, _ in chosen),
                 device=device, python=matrix.python, harness=matrix.harness,
                 constraints=matrix.device_constraints[device], rides=tuple(w.text for w in rides),
                 source=str(path), label=label_of(path, path.read_text(encoding="utf-8")),
                 why=f"The stack {path} describes: its own packages, nothing added")


def axis_override(spec: str, matrix: Matrix) -> tuple:
    """`numpy=2` → (the numpy axis, "2", "numpy"); an unknown axis or value is named."""
    name, sep, value = spec.partition("=")
    packaged = {n: a for n, a in matrix.axes.items() if not a.engine_option}
    if not sep or name not in packaged:
        raise StackFileError(f"--axis {spec} (NAME=VALUE): "
                             + unknown("axis of packages", name, packaged))
    axis = packaged[name]
    if value not in axis.values:
        raise StackFileError(unknown(f"value of --axis {name}", value, axis.values))
    return axis, value, requirement_name(axis.values[value])


def check_published(path: Path, wanted: list[Wanted]) -> None:
    """Each package of the file exists on the index (a typo stops here, naming its line)."""
    from compat.index import PackageIndexError, published_versions

    for w in wanted:
        try:
            published_versions(w.name)
        except PackageIndexError as exc:
            raise StackFileError(f"{path}:{w.line}: {w.name!r} does not exist: {exc}") from None


def stack_named(arg: str, matrix: Matrix, *, extras: tuple[str, ...] = (),
                axes: tuple[str, ...] = ()) -> Stack:
    """`nox -s stack -- ARG`: a file (requirements.txt, pyproject.toml, uv.lock), else a stack of
    the matrix by id or [stacks.NAME]."""
    if Path(arg).is_file() or arg.endswith((".txt", ".toml", ".lock")):
        return stack_of_file(Path(arg), matrix, extras=extras, axes=axes)
    if extras or axes:
        raise StackFileError("--extra and --axis apply to a stack read from a file; a stack of "
                             "compat/matrix.toml declares its axes there")
    return matrix.stack(arg)
