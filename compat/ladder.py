"""The ladder: resolve -> install -> import -> load -> conformance -> bench, for one cell.

Each rung is a small function taking the cell's `CellRun` and returning a
`Rung` record. A failing rung is a result: the rungs above it are recorded as
"not reached", the cell's JSON is still written, and the caller goes on to the
next cell. Everything here runs in the driver's interpreter (stdlib only); the
rungs from import upwards run as subprocesses inside the cell's environment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compat.index import download_sdist
from compat.matrix import Cell, requirement_name
from compat.resolve import resolve
from compat.results import CellResult, ErrorInfo, Rung, machine_info, write_atomic
from compat.tools import (
    REPO,
    error_from_output,
    parse_lock,
    run_tool,
    timeout_error,
    tool_failure,
    uv_binary,
    uv_index_args,
)
from fixtures.catalog import PACKAGED, cache_root
from fixtures.ensure import build_fixtures, build_parity_references

Log = Callable[[str], None]


@dataclass(frozen=True)
class Limits:
    """Seconds each rung may take before it is stopped and recorded as a timeout."""

    resolve: float = 300
    install: float = 1200
    import_: float = 300
    load: float = 600
    conformance: float = 900
    bench: float = 900

    def of(self, rung: str) -> float:
        return getattr(self, "import_" if rung == "import" else rung)


@dataclass(frozen=True)
class Options:
    """How a run climbs: limits, the resolver's date, a lock to re-run, where to stop."""

    limits: Limits = Limits()
    exclude_newer: str | None = None
    """Resolve as of this date (uv --exclude-newer): the whole run sees the index of that day."""
    from_lock: Path | None = None
    """Skip resolving: install exactly this lock (a uv lock text, or a cell's result JSON)."""
    last_rung: str = "bench"
    """Climb up to this rung; the ones above are recorded as not run (resolve-only mode)."""
    properties: tuple[str, ...] = ()
    """Run only these conformance properties (all when empty)."""
    hypothesis_budget: int = 10
    """Examples per generated-input conformance property."""
    bench_args: tuple[str, ...] = ()
    """Extra bench/run.py arguments (`nox -s bench` passes --profile full)."""
    threads: int | None = None
    """OMP/MKL threads for processes inside the cell (None: the engines' defaults). Cells that
    climb side by side get a share each: spinning thread pools would fight over the cores."""


@dataclass
class CellRun:
    """What the rungs of one cell share."""

    cell: Cell
    venv: Path
    options: Options
    log: Log

    @property
    def limits(self) -> Limits:
        return self.options.limits

    @property
    def work(self) -> Path:
        """Scratch folder for this cell's lock and probe outputs."""
        path = self.venv.parent / f"{self.venv.name}.infermatrix"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def cell_env(run: CellRun) -> dict[str, str]:
    """Environment for processes inside a cell: offline, the repo importable, bytecode cached."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a warm run should not recompile torch
    env.update({
        "PYTHONPATH": str(REPO),
        "VIRTUAL_ENV": str(run.venv),
        "PATH": f"{run.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "INFERMATRIX_CACHE": str(cache_root()),
    })
    if run.options.threads:
        env |= {name: str(run.options.threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return env


# --- the rungs ---------------------------------------------------------------


def venv_python_version(venv: Path) -> str:
    """'3.11.7' from a venv's pyvenv.cfg, or '' if there is none."""
    cfg = venv / "pyvenv.cfg"
    if not cfg.is_file():
        return ""
    for line in cfg.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version_info", "version"):
            return value.strip()
    return ""


def wheelhouse() -> Path:
    """Wheels infermatrix built from source-only packages, found by every install."""
    path = cache_root() / "wheels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_wheel(run: CellRun, name: str, wheels: Path) -> Rung | None:
    """Build `name` at its locked version into the wheelhouse, once; a failure fails install."""
    version = parse_lock((run.work / "lock.txt").read_text(encoding="utf-8")).get(name)
    if version is None:
        return None
    stem = f"{name.replace('-', '_')}-{version}-"
    with open(wheels / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # cells climbing in parallel build it once
        if any(p.name.startswith(stem) for p in wheels.glob("*.whl")):
            return None
        run.log(f"[{run.cell.id}] building {name}=={version} from source, once (kept in {wheels})")
        return _build_into(run, name, version, wheels)


def _build_into(run: CellRun, name: str, version: str, wheels: Path) -> Rung | None:
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=wheels))
    try:
        cmd = [uv_binary(), "build", "--wheel", "--out-dir", str(work), "--python", run.cell.python,
               *uv_index_args(), "--", str(download_sdist(name, version, work))]
        result = run_tool(cmd, run.limits.install)
        if result.returncode != 0:
            return tool_failure("install", result, run.limits.install, "WheelBuildError")
        for wheel in work.glob("*.whl"):
            os.replace(wheel, wheels / wheel.name)  # whole files only
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return None


def install(run: CellRun) -> Rung:
    """Make the venv exactly the lock: `uv pip sync` (fast when it is already there)."""
    uv = uv_binary()
    have = venv_python_version(run.venv)
    if not (have == run.cell.python or have.startswith(run.cell.python + ".")):
        shutil.rmtree(run.venv, ignore_errors=True)  # missing, or made for another Python
        made = run_tool([uv, "venv", "--quiet", "--python", run.cell.python, str(run.venv)],
                        run.limits.install)
        if made.returncode != 0:
            return tool_failure("install", made, run.limits.install, "VenvError")
    wheels = wheelhouse()
    for name in run.cell.engine.build_wheels:
        failed = build_wheel(run, name, wheels)
        if failed is not None:
            return failed
    cmd = [uv, "pip", "sync", str(run.work / "lock.txt"), "--python", str(run.python),
           *uv_index_args(), "--find-links", str(wheels)]
    result = run_tool(cmd, run.limits.install)
    if result.returncode != 0:
        return tool_failure("install", result, run.limits.install, "InstallError")
    detail = {"venv": str(run.venv), "python": venv_python_version(run.venv)}
    return Rung("install", "pass", detail=detail)


def probe(run: CellRun, rung: str, *args: str) -> Rung:
    """Run compat.probe inside the cell and turn its record into a Rung."""
    out = run.work / f"{rung}.json"
    out.unlink(missing_ok=True)
    cmd = [str(run.python), "-m", "compat.probe", rung, "--engine", run.cell.engine.id,
           "--device", run.cell.device, "--out", str(out), *args]
    result = run_tool(cmd, run.limits.of(rung), env=cell_env(run))
    if result.timed_out:
        return Rung(rung, "fail", error=timeout_error(rung, run.limits.of(rung), result.output))
    if not out.exists():
        message = f"the probe died without a result (exit status {result.returncode})"
        return Rung(rung, "fail", error=ErrorInfo.from_message("ProcessCrashed", message,
                                                               result.output))
    record = json.loads(out.read_text(encoding="utf-8"))
    error = ErrorInfo(**record["error"]) if record["error"] else None
    return Rung(rung, record["status"], error=error, detail=record["detail"])


def import_engine(run: CellRun) -> Rung:
    """Does engines/<id>.py (and so the engine library) import in this environment?"""
    return probe(run, "import")


def load(run: CellRun) -> Rung:
    """Build any missing fixture, then load each of the engine's fixtures once."""
    built = [name for name in run.cell.engine.fixtures if name not in PACKAGED]
    failure = build_fixtures(built, run.limits.load, run.log)
    if not failure and run.cell.engine.kind == "generation":
        failure = build_parity_references(built, run.limits.load, run.log)
    if failure:
        return failure
    args = [arg for name in run.cell.engine.fixtures for arg in ("--fixture", name)]
    return probe(run, "load", *args)


def conformance(run: CellRun) -> Rung:
    """The engine's conformance suite (tests/conformance/test_<kind>.py) under pytest."""
    out = run.work / "conformance.json"
    out.unlink(missing_ok=True)
    suite = REPO / "tests" / "conformance" / f"test_{run.cell.engine.kind}.py"
    cmd = [str(run.python), "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
           "--rootdir", str(REPO), "-c", str(REPO / "tests" / "conformance" / "pytest.ini"),
           "--engine", run.cell.engine.id, "--device", run.cell.device,
           "--models", ",".join(run.cell.engine.fixtures), "--conformance-json", str(out),
           "--hypothesis-budget", str(run.options.hypothesis_budget),
           *(arg for name in run.options.properties for arg in ("--property", name))]
    limit = run.limits.conformance
    result = run_tool(cmd, limit, env=cell_env(run))
    if result.timed_out:
        return Rung("conformance", "fail", error=timeout_error("conformance", limit, result.output))
    if not out.exists() or result.returncode not in (0, 1):
        message = f"pytest exited with status {result.returncode} before reporting properties"
        return Rung("conformance", "fail",
                    error=ErrorInfo.from_message("ConformanceCrash", message, result.output))
    properties = json.loads(out.read_text(encoding="utf-8"))["properties"]
    failed = sorted(name for name, p in properties.items() if p["status"] == "fail")
    detail = {"properties": properties}
    if not properties:
        error = ErrorInfo.from_message("ConformanceCrash", "no property was collected",
                                       result.output)
        return Rung("conformance", "fail", error=error, detail=detail)
    if failed:
        message = f"{len(failed)} of {len(properties)} properties failed: {', '.join(failed)}"
        text = "\n\n".join(f"{n}: {properties[n]['message']}" for n in failed)
        error = ErrorInfo(type="ConformanceFailure", message=message,
                          signature=f"ConformanceFailure: {', '.join(failed)}", text=text)
        return Rung("conformance", "fail", error=error, detail=detail)
    return Rung("conformance", "pass", detail=detail)


def bench(run: CellRun) -> Rung:
    """The starter benchmark (bench/run.py) on the engine's first fixture."""
    out = run.work / "bench.json"
    out.unlink(missing_ok=True)
    cmd = [str(run.python), "-m", "bench.run", "--engine", run.cell.engine.id,
           "--fixture", run.cell.engine.fixtures[0], "--device", run.cell.device,
           "--out", str(out), *run.options.bench_args]
    limit = run.limits.bench
    result = run_tool(cmd, limit, env=cell_env(run))
    if result.timed_out:
        return Rung("bench", "fail", error=timeout_error("bench", limit, result.output))
    if result.returncode != 0 or not out.exists():
        return Rung("bench", "fail", error=error_from_output("BenchError", result))
    return Rung("bench", "pass", detail=json.loads(out.read_text(encoding="utf-8")))


LADDER: tuple[tuple[str, Callable[[CellRun], Rung]], ...] = (
    ("resolve", resolve),
    ("install", install),
    ("import", import_engine),
    ("load", load),
    ("conformance", conformance),
    ("bench", bench),
)


# --- the driver --------------------------------------------------------------


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def cuda_available() -> bool:
    """True where an NVIDIA driver answers; CUDA cells need it from install upwards."""
    smi = shutil.which("nvidia-smi")
    return bool(smi) and subprocess.run([smi], capture_output=True, check=False).returncode == 0


def describe(cell: Cell, options: Options = Options()) -> dict:
    return {
        "id": cell.id,
        "engine": cell.engine.id,
        "kind": cell.engine.kind,
        "axes": dict(cell.axes),
        "env": cell.env_label,
        "device": cell.device,
        "python": cell.python,
        "requirements": list(cell.requirements),
        "constraints": list(cell.constraints),
        "fixtures": list(cell.engine.fixtures),
        "pins": list(cell.pins),
        "overrides": list(cell.overrides),
        "why": cell.why,
        "exclude_newer": options.exclude_newer,
        "key_packages": [requirement_name(r) for r in (*cell.engine.requires,
                                                        *(name for name, _ in cell.axes))],
    }


def run_cell(cell: Cell, *, venv: Path, results_dir: Path, log: Log = print,
             options: Options = Options()) -> CellResult:
    """Climb the rungs of `cell` and write results/<cell id>.json. Never raises on a rung."""
    run = CellRun(cell=cell, venv=Path(venv), options=options, log=log)
    result = CellResult(cell=describe(cell, options), machine=machine_info(), started_at=now())
    last = [name for name, _ in LADDER].index(options.last_rung)
    blocked = ""
    for index, (name, step) in enumerate(LADDER):
        if blocked:
            result.rungs.append(Rung(name, "not_reached", reason=f"{blocked} failed"))
            continue
        if name != "resolve" and cell.device == "cuda" and not cuda_available():
            result.rungs.append(Rung(name, "not_run", reason="needs CUDA"))
            continue
        if index > last:
            result.rungs.append(Rung(name, "not_run", reason=f"{options.last_rung}-only run"))
            continue
        started = time.perf_counter()
        try:
            rung = step(run)
        except Exception as exc:  # a bug in a rung is still this cell's result, not a crash
            rung = Rung(name, "fail", error=ErrorInfo.from_exception(exc))
        rung.duration_s = round(time.perf_counter() - started, 3)
        if name == "resolve" and rung.status == "pass":
            result.versions = rung.detail.pop("versions")
            result.lock = rung.detail.pop("lock")
        if name == "import" and rung.status == "pass":
            rung.detail.pop("versions", None)
        result.rungs.append(rung)
        mark = {"pass": "ok", "fail": "FAIL"}.get(rung.status, rung.status)
        note = f" - {rung.error.signature}" if rung.error else ""
        log(f"[{cell.id}] {name:<11} {mark} ({rung.duration_s:.1f}s){note}")
        if rung.status == "fail":
            blocked = name
    result.finished_at = now()
    write_atomic(Path(results_dir) / f"{cell.id}.json", result.to_json())
    return result


def timed_bench(run: CellRun) -> Rung:
    """The bench rung, timed, a failure kept as its result; logged like any rung."""
    started = time.perf_counter()
    if not run.python.exists():
        rung = Rung("bench", "fail", error=ErrorInfo.from_message(
            "MissingVenv", f"{run.venv} does not exist: run nox -s 'cell({run.cell.id})' first"))
    else:
        try:
            rung = bench(run)
        except Exception as exc:  # a failure is this cell's result, not a crash of the run
            rung = Rung("bench", "fail", error=ErrorInfo.from_exception(exc))
    rung.duration_s = round(time.perf_counter() - started, 3)
    note = f" - {rung.error.signature}" if rung.error else ""
    mark = "ok" if rung.status == "pass" else "FAIL"
    run.log(f"[{run.cell.id}] {'bench':<11} {mark} ({rung.duration_s:.1f}s){note}")
    return rung


def bench_only(cell: Cell, *, venv: Path, results_dir: Path, log: Log = print,
               options: Options = Options(), base: CellResult | None = None) -> CellResult:
    """The bench rung alone, in the venv an earlier run of the cell left (`nox -s bench`)."""
    run = CellRun(cell=cell, venv=Path(venv), options=options, log=log)
    result = CellResult(cell=describe(cell, options), machine=machine_info(), started_at=now(),
                        versions=base.versions if base else {}, lock=base.lock if base else "")
    result.rungs.append(timed_bench(run))
    result.finished_at = now()
    write_atomic(Path(results_dir) / f"{cell.id}.json", result.to_json())
    return result


def run_matrix(cells: list[Cell], *, venv_root: Path, results_dir: Path, log: Log = print,
               options: Options = Options(), workers: int = 2) -> list[CellResult]:
    """Many cells: resolve to conformance `workers` at a time, then every bench rung alone.

    Timings are only trusted from a quiet machine, so the bench rungs run one after
    another once every cell has climbed; the rest of the ladder does not care.
    """
    from concurrent.futures import ThreadPoolExecutor

    share = max(1, (os.cpu_count() or 1) // workers)
    climb = dataclasses.replace(options, last_rung="conformance", threads=share)
    done = {"n": 0}

    def one(cell: Cell) -> CellResult:
        result = run_cell(cell, venv=venv_root / f"cell-{cell.id}", results_dir=results_dir,
                          log=log, options=climb)
        done["n"] += 1
        log(f"climbed {done['n']}/{len(cells)}: {cell.id}")
        return result

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, cells))
    if options.last_rung != "bench":
        return results
    ready = [(c, r) for c, r in zip(cells, results)
             if getattr(r.rung("conformance"), "status", "") == "pass"]
    for i, (cell, result) in enumerate(ready, 1):
        log(f"bench {i}/{len(ready)}: {cell.id}")
        run = CellRun(cell=cell, venv=venv_root / f"cell-{cell.id}", options=options, log=log)
        result.rungs = [r for r in result.rungs if r.name != "bench"] + [timed_bench(run)]
        result.finished_at = now()
        write_atomic(Path(results_dir) / f"{cell.id}.json", result.to_json())
    return results


def resolve_all(cells: list[Cell], *, work: Path, results_dir: Path, log: Log = print,
                options: Options = Options(), workers: int = 8) -> list[CellResult]:
    """The resolve rung of many cells at once (uv runs in parallel; nothing is installed)."""
    from concurrent.futures import ThreadPoolExecutor

    only = dataclasses.replace(options, last_rung="resolve")

    def one(cell: Cell) -> CellResult:
        return run_cell(cell, venv=work / f"cell-{cell.id}", results_dir=results_dir, log=log,
                        options=only)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, cells))


def main(argv: list[str] | None = None) -> int:
    """python -m compat.ladder CELL_ID [--venv DIR] [--results DIR]: one cell without nox."""
    import argparse

    from compat.matrix import load as load_matrix

    parser = argparse.ArgumentParser(prog="python -m compat.ladder", description=main.__doc__)
    parser.add_argument("cell")
    parser.add_argument("--venv", type=Path)
    parser.add_argument("--results", type=Path, default=REPO / "results")
    args = parser.parse_args(argv)
    cell = load_matrix().cell(args.cell)
    venv = args.venv or REPO / ".nox" / f"cell-{cell.id}"
    result = run_cell(cell, venv=venv, results_dir=args.results)
    print(json.dumps([dataclasses.asdict(r) | {"detail": "…"} for r in result.rungs], indent=1))
    return 0 if result.first_failure is None else 1


if __name__ == "__main__":
    sys.exit(main())
