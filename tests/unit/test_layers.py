"""The house's floors: each package imports only the packages below it, no file imports run in
a circle, and the kernel (core/) imports nothing of the project."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

from tests.conftest import REPO

FLOORS = ("core", "fixtures", "engines", "bench", "incell", "compat", "pages")
"""Bottom to top: a package may import its own floor and the floors below it."""


def project_imports(path: Path) -> set[str]:
    """Modules of the project that `path` imports (at any depth, lazily or not)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        found |= {n for n in names if n.split(".")[0] in FLOORS}
    return found


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
            for floor in FLOORS for p in sorted((REPO / floor).rglob("*.py"))}


def test_each_package_imports_only_the_floors_below() -> None:
    upward = []
    for name, path in modules().items():
        floor = FLOORS.index(name.split(".")[0])
        upward += [f"{name} -> {target}" for target in sorted(project_imports(path))
                   if FLOORS.index(target.split(".")[0]) > floor]
    assert not upward, f"imports that run up a floor: {upward}"


def test_no_import_cycle_between_files() -> None:
    mods = modules()
    edges = {name: {t if t in mods else t.rpartition(".")[0] for t in project_imports(path)}
             & set(mods) - {name} for name, path in mods.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> list[str]:
        state[name] = "open"
        for target in sorted(edges[name]):
            if state.get(target) == "open":
                return [*trail, name, target]
            if target not in state and (cycle := visit(target, [*trail, name])):
                return cycle
        state[name] = "done"
        return []

    cycles = [cycle for name in sorted(mods) if name not in state and (cycle := visit(name, []))]
    assert not cycles, f"import cycle: {' -> '.join(cycles[0])}"


def third_party_imports(path: Path) -> set[str]:
    """Top-level names of what `path` imports (at any depth) that are neither the standard
    library nor the project."""
    import sys

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                 and not node.level else [])
        found |= {n.split(".")[0] for n in names}
    return found - set(sys.stdlib_module_names) - {*FLOORS, "tests", "__future__"}


DRIVER_SIDE = {
    "core": {"uv"},  # every interpreter; uv's binary is looked up on PATH first (ImportError kept)
    "incell/worker.py": {"pytest"},  # imported by the suite rungs only: the import rung must run
                                     # where the cell installed nothing but its engine
    "incell/probe.py": set(),
    "compat": {"packaging"},  # the driver's interpreter: nox and what nox brings
    "fixtures/catalog.py": set(), "fixtures/convert.py": set(), "fixtures/ensure.py": set(),
    "fixtures/references.py": set(),
    "fixtures/manifest.py": set(), "engines/__init__.py": set(),
}


def test_the_driver_side_imports_only_the_standard_library() -> None:
    """What the driver (and the cell's worker before its engine) imports: the standard library,
    and in compat/ what nox itself depends on; a third-party import there breaks every run."""
    wrong = {}
    for where, allowed in DRIVER_SIDE.items():
        paths = sorted((REPO / where).rglob("*.py")) if (REPO / where).is_dir() else [REPO / where]
        for path in paths:
            extra = third_party_imports(path) - allowed
            if extra:
                wrong[path.relative_to(REPO).as_posix()] = sorted(extra)
    assert not wrong, f"third-party imports on the driver's side: {wrong}"


PAGES = {"compatibility": {"compatibility", "stacks"}, "conformance": {"conformance"},
         "engines": {"engines"}, "serving": {"serving"}, "quantization": {"quantization", "trained_quality"},
         "throughput": {"throughput", "real_shape", "plots"}}
"""Each Markdown page's modules (THROUGHPUT.md: its tables, its real-shape section, its plots;
QUANTIZATION.md: its trained-model section)."""
SHARED = {"markdown", "plotting", "verdicts", "loadgen", "watch", "sources", "runs"}
"""What every page may use: formatting, plotting, a cell's verdict, the load sweep's section
(SERVING.md and THROUGHPUT.md's real shape), the release watch, the figures' citations, the
rows' runs."""


def test_a_page_imports_no_other_page() -> None:
    crossing = []
    for page, modules in PAGES.items():
        for module in modules:
            for target in sorted(project_imports(REPO / "pages" / f"{module}.py")):
                name = target.removeprefix("pages.")
                if target.startswith("pages.") and name not in modules | SHARED:
                    crossing.append(f"pages.{module} ({page}) -> {target}")
    assert not crossing, f"pages importing another page: {crossing}"
    assert {m for ms in PAGES.values() for m in ms} | SHARED <= {
        p.stem for p in (REPO / "pages").glob("*.py")}


def test_no_private_name_is_imported_across_modules() -> None:
    private = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.split(".")[0] in FLOORS:
                private += [f"{name}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert not private, f"private names imported from another module: {private}"


LOOK_MODULE_LINES, MAX_MODULE_LINES = 400, 500
LOOK_FUNCTION_LINES, MAX_FUNCTION_LINES = 40, 60


def sizes() -> tuple[dict[str, int], dict[str, int]]:
    """Every production module's lines, and every function's, noxfile.py included."""
    paths = {**modules(), "noxfile": REPO / "noxfile.py"}
    module_lines, function_lines = {}, {}
    for name, path in paths.items():
        text = path.read_text(encoding="utf-8")
        module_lines[name] = text.count("\n")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                function_lines[f"{name}.{node.name}"] = node.end_lineno - node.lineno + 1
    return module_lines, function_lines


def test_no_production_module_or_function_is_too_long() -> None:
    """The house stays small: a module a newcomer can read in one sitting, a function that fits
    on a screen (the suite's own tests aside). Past 400 lines a module, or 40 a function, is a
    signal to look (a warning, listed by pytest's -ra): split it where its ideas part, never by
    squeezing a docstring or its arithmetic. Past 500 and 60 it fails."""
    module_lines, function_lines = sizes()
    for kind, found, look, limit in (("module", module_lines, LOOK_MODULE_LINES, MAX_MODULE_LINES),
                                     ("function", function_lines, LOOK_FUNCTION_LINES,
                                      MAX_FUNCTION_LINES)):
        for name, lines in sorted(found.items()):
            if look < lines <= limit:
                warnings.warn(f"{kind} {name}: {lines} lines (past {look}: look whether its ideas "
                              "part)", stacklevel=1)
        too_long = [f"{name}: {lines} lines" for name, lines in sorted(found.items()) if lines > limit]
        assert not too_long, f"{kind}s over {limit} lines: {too_long}"
