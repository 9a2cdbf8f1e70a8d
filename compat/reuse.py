"""Incremental runs: what a cell's result depends on, and when an earlier result stands in for it.

A cell's inputs are its resolved versions (the resolve rung runs every time: a new release moves
the lock), what the cell asks for, its fixtures' content keys, the suite's code that it runs (the
kernel, the ladder, the suites, the benchmark, and its own engine module with what that imports,
not the other engines' modules), the machine, and the options that change a result. A result
whose inputs match and that climbed at least as far as this run climbs is reused, unless the run
forces the cell (`--force [CELL ...]`). An interrupted run therefore resumes where it stopped:
the cells it finished are reused, the others climb.

Stdlib only: this runs in the driver's interpreter.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from compat.cell import CellRun
from core.errors import MatrixError, unknown
from core.proc import REPO
from core.records import to_json
from core.results import RUNGS, CellResult, load_results
from engines import ENGINES
from fixtures.catalog import PACKAGED, content_key

CODE_DIRS = ("core", "compat", "engines", "fixtures", "bench", "incell")
"""The suite's code a cell runs (reports/ is not: rendering does not change a result)."""


def module_file(module: str) -> Path:
    return REPO / (module.replace(".", "/") + ".py")


def engine_files(engine_id: str) -> set[Path]:
    """The engine's module and the engine modules it reaches: its imports of engines.*, and the
    in-process twin a server module names (`in_process = "llama_cpp"`)."""
    todo, seen = [module_file(ENGINES[engine_id].target.split(":")[0])], set()
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("engines."):
                todo.append(module_file(node.module))
            elif (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                  and any(getattr(t, "id", "") == "in_process" for t in node.targets)
                  and node.value.value in ENGINES):
                todo.append(module_file(ENGINES[node.value.value].target.split(":")[0]))
    return seen


def code_digest(engine_id: str) -> str:
    """sha256 over the suite's code that a cell of `engine_id` runs."""
    others = {module_file(e.target.split(":")[0]) for e in ENGINES.values()}
    skip = others - engine_files(engine_id)
    digest = hashlib.sha256()
    for folder in CODE_DIRS:
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix not in (".py", ".toml", ".json", ".txt") or path in skip \
                    or "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def inputs_of(run: CellRun, result: CellResult) -> dict[str, str]:
    """The digests of everything the cell's result depends on, and their key. Every option counts
    but those marked as unable to change a result (compat/cell.NOT_A_RESULT)."""
    options = run.options
    fixtures = {name: "packaged" if name in PACKAGED else content_key(name)
                for name in run.cell.fixtures}
    machine = {k: v for k, v in asdict(result.machine).items() if k not in ("os", "host_python")}
    parts = {
        "lock": _digest(result.versions),
        "cell": _digest(to_json(result.cell)),
        "fixtures": _digest(fixtures),
        "code": code_digest(run.cell.engine.id),
        "machine": _digest(machine),
        "options": _digest(to_json(options.result_affecting())),
    }
    if run.cell.known_properties:  # a declared failure decides whether the cell climbs on
        parts["known"] = _digest([to_json(k) for k in run.cell.known_properties])
    return {"key": _digest(parts), **parts}


def forced(cell_id: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(cell_id, p) for p in patterns)


def last_result(results_dir: Path, cell_id: str) -> CellResult | None:
    """The cell's result file from an earlier run, if there is a readable one."""
    path = Path(results_dir) / f"{cell_id}.json"
    found, _ = load_results([path]) if path.is_file() else ([], [])
    return found[0] if found else None


def reusable(run: CellRun, earlier: CellResult | None, inputs: dict[str, str]) -> bool:
    """Whether the cell's earlier result stands in for this run: its inputs match and it
    climbed at least as far as this run goes (and the run does not force the cell)."""
    if earlier is None or forced(run.cell.id, run.options.force):
        return False
    climbed = earlier.climbed_to
    if earlier.inputs.get("key") != inputs["key"] or climbed not in RUNGS \
            or RUNGS.index(climbed) < RUNGS.index(run.options.last_rung):
        return False
    # the rungs still to climb need the venv the earlier run made
    return climbed == RUNGS[-1] or run.python.exists()


def changed(result: CellResult, inputs: dict[str, str]) -> list[str]:
    """What differs from an earlier result's inputs: why the cell climbs again."""
    return [name for name, value in inputs.items()
            if name != "key" and result.inputs.get(name) != value]


def check_force(patterns: tuple[str, ...], cell_ids: list[str]) -> None:
    """A --force pattern that matches no cell of the run is an error naming the cells."""
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(c, pattern) for c in cell_ids):
            raise MatrixError(unknown("cell to --force (matches no cell of this run)", pattern,
                                      cell_ids))


def strays(results_dir: Path, cell_ids: list[str]) -> list[str]:
    """Result files of cells that are no longer in the matrix: named, never resumed."""
    return sorted(p.stem for p in Path(results_dir).glob("*.json") if p.stem not in cell_ids)
