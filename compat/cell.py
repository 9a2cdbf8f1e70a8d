"""What the rungs of one cell share: its options and limits, its environment, and the one way
to run a module inside the cell's venv and read the JSON it writes.

Stdlib only: this runs in the driver's interpreter.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from compat.llama_tools import PACKAGE, tools_dir
from compat.matrix import Cell
from core.proc import REPO, ToolRun, parse_lock, run_tool, timeout_error
from core.results import ErrorInfo, Rung, read_rung
from core.timeline import Recorder
from engines import DTYPE_ENV, LLAMA_TOOLS_ENV, QUANT_ENV
from fixtures.catalog import cache_root
from incell import HARNESS_ENV

Log = Callable[[str], None]


@dataclass(frozen=True)
class Limits:
    """Seconds each rung may take before it is stopped and recorded as a timeout."""

    resolve: float = 300
    install: float = 1200
    import_: float = 300
    load: float = 600
    conformance: float = 900
    api: float = 600
    bench: float = 900

    def of(self, rung: str) -> float:
        return getattr(self, "import_" if rung == "import" else rung)


NOT_A_RESULT = {"reuse_key": False}
"""Field metadata of an option that cannot change a cell's result; every other option is part of
the key that decides whether an earlier result is reused (compat/reuse.py), so an option added
later invalidates results unless it says otherwise."""


@dataclass(frozen=True)
class Options:
    """How a run climbs: limits, the resolver's date, a lock to re-run, where to stop."""

    limits: Limits = Limits()
    exclude_newer: str | None = None
    """Resolve as of this date (uv --exclude-newer): the whole run sees the index of that day."""
    from_lock: Path | None = field(default=None, metadata=NOT_A_RESULT)
    """Skip resolving: install exactly this lock (a uv lock text, or a cell's result JSON). Not
    in the key: the lock it installs is (the resolved versions)."""
    last_rung: str = field(default="bench", metadata=NOT_A_RESULT)
    """Climb up to this rung; the ones above are recorded as not run (resolve-only mode). Not in
    the key: a result records how far it climbed (CellResult.climbed_to)."""
    properties: tuple[str, ...] = ()
    """Run only these conformance properties (all when empty)."""
    hypothesis_budget: int = 10
    """Examples per generated-input conformance property."""
    bench_args: tuple[str, ...] = ()
    """Extra incell/throughput/run.py arguments (`nox -s bench` passes --profile full)."""
    force: tuple[str, ...] = field(default=(), metadata=NOT_A_RESULT)
    """Cell id globs that climb again even where an earlier result's inputs match ("*": all)."""
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment for the cell's processes (the real-shape run's vLLM on every core)."""
    threads: int | None = field(default=None, metadata=NOT_A_RESULT)
    """OMP/MKL threads for processes inside the cell (None: the engines' defaults). Cells that
    climb side by side get a share each: spinning thread pools would fight over the cores. Not in
    the key: the climbing rungs do not measure speed, and the bench rung runs alone."""

    def result_affecting(self) -> dict[str, object]:
        """The options that can change a result, by name: the part of the reuse key they make."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.metadata.get("reuse_key", True)}


DEFAULTS = Options()
"""The options of a plain run (frozen, so one instance serves every default argument)."""


class RungFailed(Exception):
    """Raised by a rung: its failure, recorded by the driver as the rung's result."""

    def __init__(self, error: ErrorInfo, reason: str = "") -> None:
        super().__init__(error.message)
        self.error = error
        self.reason = reason


@dataclass
class CellRun:
    """What the rungs of one cell share."""

    cell: Cell
    venv: Path
    options: Options
    log: Log
    worker: Any = None
    """The cell's running worker (compat/rungs/worker.py), between the rungs that use it."""
    interpreter: Path | None = None
    """An existing environment's Python (compat/here.py): the rungs from import upwards run in
    it, and nothing is resolved or installed; None: the cell's own venv."""
    timeline: Recorder | None = None
    """The run's timeline (core/timeline.py), where a driver keeps one: each rung's span."""

    @property
    def limits(self) -> Limits:
        return self.options.limits

    @property
    def work(self) -> Path:
        """Scratch folder for this cell's lock and the records its in-cell rungs write."""
        path = self.venv.parent / f"{self.venv.name}.infermatrix"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def python(self) -> Path:
        return self.interpreter or self.venv / "bin" / "python"


def cell_env(run: CellRun) -> dict[str, str]:
    """Environment for processes inside a cell: offline, the repo importable, bytecode cached."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a warm run should not recompile torch
    env.pop("VIRTUAL_ENV", None)  # the driver's own venv (nox's), never the cell's
    for name in [n for n in env if n.startswith("PYTEST_XDIST_")]:
        del env[name]  # a driver run by pytest-xdist: the cell's pytest-benchmark would turn off
    env.update({
        # an existing environment keeps what its own PYTHONPATH adds (wheels carried to it)
        "PYTHONPATH": os.pathsep.join([str(REPO), *([env["PYTHONPATH"]] if run.interpreter
                                                    and env.get("PYTHONPATH") else [])]),
        "PATH": f"{run.python.parent}{os.pathsep}{env.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "INFERMATRIX_CACHE": str(cache_root()),
        **({"VIRTUAL_ENV": str(run.venv)} if run.interpreter is None else {}),
        DTYPE_ENV: run.cell.dtype,
    })
    quant = dict(run.cell.axes).get("quant")
    if quant is None:  # no quant axis: the engine's "none", and text_quality left to the axis
        env.pop(QUANT_ENV, None)
    else:
        env[QUANT_ENV] = quant
    if run.options.threads:
        env |= {name: str(run.options.threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env |= dict(run.options.env)
    if run.cell.harness_apart:
        from compat.harness import harness_path

        folder = harness_path(run.cell.python, run.cell.harness_apart, run.log)
        if folder is not None:
            env[HARNESS_ENV] = str(folder)
    tools = llama_tools_of(run)
    if tools is not None:
        env[LLAMA_TOOLS_ENV] = str(tools)
    return env


def llama_tools_of(run: CellRun) -> Path | None:
    """The folder of llama.cpp's tools for the cell's llama-cpp-python: where the cell asks for
    them, or where they were built already (the llama.cpp cells' referees use them then)."""
    lock = run.work / "lock.txt"
    if not lock.is_file():
        return None
    version = parse_lock(lock.read_text(encoding="utf-8")).get(PACKAGE)
    if version is None:
        return None
    folder = tools_dir(version)
    return folder if "llama.cpp" in run.cell.engine.tools or folder.is_dir() else None


@dataclass
class InCell:
    """A finished module run inside the cell: the process, and the rung record it wrote with
    core.results.write_rung (None if it wrote none)."""

    tool: ToolRun
    rung: Rung | None


def run_in_cell(run: CellRun, rung: str, module: str, args: list[str]) -> InCell:
    """`python -m module *args --out FILE` in the cell's venv, under the rung's limit.

    A run past the limit raises RungFailed (a Timeout); otherwise the caller judges the
    exit status and the record."""
    out = run.work / f"{rung}.json"
    out.unlink(missing_ok=True)
    limit = run.limits.of(rung)
    tool = run_tool([str(run.python), "-m", module, *args, "--out", str(out)], limit,
                    env=cell_env(run))
    if tool.timed_out:
        raise RungFailed(timeout_error(rung, limit, tool.output))
    return InCell(tool, read_rung(out) if out.exists() else None)
