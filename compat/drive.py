"""Many cells: the default run (climb side by side, then bench alone), resolve-only, the
servers' load benchmark, and the real-shape run (every engine and precision on one shape).
Each cell climbs through compat/ladder.py (which also has bench_only)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from compat.cell import DEFAULTS, CellRun, Limits, Log, Options, RungFailed, run_in_cell
from compat.ladder import bench_only, climb_bench, finish, new_result, now, run_cell
from compat.limits_probe import RunProbe
from compat.live import LivePages
from compat.matrix import Cell, Stack
from compat.plan import RealShapeRun, shape_steps
from compat.reuse import last_result
from compat.stack_run import Climbed, climb_stack, together_step
from core import layout
from core.results import CellResult, Rung
from core.run_limits import save
from core.timeline import Recorder, Timeline, file_name, run_id


def run_matrix(cells: list[Cell], *, venv_root: Path, results_dir: Path, log: Log = print,
               options: Options = DEFAULTS, workers: int = 2,
               pages: LivePages | None = None, selection: str = "default",
               stacks: tuple[Stack, ...] = (),
               durations: dict[str, float] | None = None) -> list[CellResult]:
    """Many cells: resolve to api `workers` at a time, then every bench rung alone. A cell whose
    inputs did not change since its last result is reused (compat/reuse.py). `pages` are
    written again as each cell lands (compat/live.py), while the cells climb: the renders end
    before the first bench rung, so that nothing runs beside one.

    Timings are only trusted from a quiet machine, so the bench rungs run one after
    another once every cell has climbed; the rest of the ladder does not care.

    The run's timeline (core/timeline.py: each rung's span, each cell's verdict) is written to
    results/run/timeline-<start>.json as cells land and when the run ends.

    `stacks` (compat/stack_run.py) climb after the cells; their one-process steps run after the
    bench rungs. `durations` (committed seconds by cell id) order the climb (`climbing_order`).
    """
    cells = climbing_order(cells, durations)
    share = max(1, (os.cpu_count() or 1) // workers)
    climbing = dataclasses.replace(options, last_rung="api", threads=share)
    done = {"n": 0}
    started = now()
    timeline = Recorder(Path(results_dir) / layout.RUN / file_name(started),
                        Timeline(started_at=started, selection=selection, workers=workers,
                                 cells=len(cells)))

    def one(cell: Cell) -> CellResult:
        result = run_cell(cell, venv=venv_root / f"cell-{cell.id}", results_dir=results_dir,
                          log=log, options=climbing, timeline=timeline)
        timeline.verdict(cell.id, reused=result.reused_at >= started)
        timeline.write()
        done["n"] += 1
        log(f"climbed {done['n']}/{len(cells)}: {cell.id}")
        if pages is not None:
            pages.land(cell.id)
        return result

    def one_stack(stack: Stack) -> Climbed:
        done = climb_stack(stack, venv_root=venv_root, results_dir=results_dir, log=log,
                           options=climbing, timeline=timeline)
        timeline.write()
        return done

    units = [*cells, *stacks]
    landed = side_by_side(lambda u: one_stack(u) if isinstance(u, Stack) else one(u), units, workers)
    results, climbed_stacks = landed[:len(cells)], landed[len(cells):]
    climbed_s = timeline.now()
    if pages is not None:
        pages.close()  # a quiet machine for the bench rungs
    if options.last_rung == "bench":
        bench_rungs(list(zip(cells, results)), venv_root=venv_root, results_dir=results_dir,
                    log=log, options=options, timeline=timeline, run=run_id(started))
    for climbed in climbed_stacks if options.last_rung == "bench" else ():
        together_step(climbed, venv_root=venv_root, results_dir=results_dir, log=log,
                      options=options)
    path = timeline.write(finished_at=now(), climb_s=climbed_s)
    log(f"the run's timeline: {path}")
    return results


def bench_rungs(climbed: list[tuple[Cell, CellResult]], *, venv_root: Path, results_dir: Path,
                log: Log, options: Options, timeline: Recorder, run: str = "") -> None:
    """Every bench rung of the cells that passed conformance, one after another on a quiet
    machine (a cell reused with its bench rung done keeps it, and its own run id); the
    machine's limits read before the first and after the last (results/run/limits-<run>.json)."""
    ready = [(c, r) for c, r in climbed
             if getattr(r.rung("conformance"), "status", "") == "pass"
             and not (r.reused_at and r.climbed_to == "bench")]
    if not ready:
        return
    probe = RunProbe(run, [venv_root / f"cell-{c.id}" for c, _ in ready],
                     Path(results_dir) / layout.RUN, log)
    probe.before()
    for i, (cell, result) in enumerate(ready, 1):
        log(f"bench {i}/{len(ready)}: {cell.id}")
        climb_bench(cell, result, venv=venv_root / f"cell-{cell.id}", results_dir=results_dir,
                    log=log, options=options, timeline=timeline, run_id=run)
    probe.after()


CLIMB_RUNGS = ("resolve", "install", "import", "load", "conformance", "api")


def committed_durations(path: Path) -> dict[str, float]:
    """Each cell's climb in seconds (its rungs up to api) as the committed reports/results.json
    measured it: what the climbing order plans with. Empty where the file is missing or
    unreadable (the order then falls back to the matrix's)."""
    try:
        cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {c["cell"]["id"]: sum(r.get("duration_s") or 0.0 for r in c.get("rungs", [])
                                 if r.get("name") in CLIMB_RUNGS)
            for c in cells if isinstance(c, dict) and "cell" in c}


def climbing_order(cells: list[Cell], durations: dict[str, float] | None = None) -> list[Cell]:
    """The order cells start climbing in, by the critical path, for the first answers to come
    fast and the climb to end soon:

    1. per source-only wheel (llama-cpp-python: minutes of compiling, once per machine), its
       engine's headline cell: the compile is the run's longest chain, so it starts at once and
       the others climb beside it;
    2. every other engine's headline cell (headline: the cell the trained model runs in, else
       its plainest CPU cell: unquantized, the newest numpy, the fewest other axes), so that each
       engine has its verdict before any engine's second one;
    3. the other cells;
    4. last, the other cells that need a wheel being built, so that none of them holds a worker
       idle on the compile's lock while cells needing nothing of it could climb.

    By the committed rung durations (`durations`: seconds by cell id, `committed_durations`):
    the headline cells shortest first, so that answers come as soon as they can (the last
    headline verdict hardly moves with the order, the group's work being the same: cold, on 2
    cores, longest first gave the first verdict at 3:00 and every engine's but llama.cpp's by
    7:57; shortest first, at 0:02 and by 8:25); the other cells longest first, so that no long
    cell starts last beside idle workers and the climb ends soonest. A cell with no record
    counts as the median; ties keep the matrix's order."""
    durations = durations or {}
    known = sorted(durations[c.id] for c in cells if c.id in durations)
    typical = known[len(known) // 2] if known else 0.0

    def shortest_first(group: list[Cell]) -> list[Cell]:
        return sorted(group, key=lambda c: durations.get(c.id, typical))  # stable

    def longest_first(group: list[Cell]) -> list[Cell]:
        return sorted(group, key=lambda c: -durations.get(c.id, typical))  # stable

    heads: dict[str, Cell] = {}
    for cell in sorted(cells, key=headline_rank, reverse=True):  # stable: ties keep the matrix's order
        heads.setdefault(cell.engine.id, cell)
    builders, seen = [], set()
    for cell in heads.values():
        wheels = set(cell.engine.build_wheels)
        if wheels and not wheels <= seen:
            builders.append(cell)
            seen |= wheels
    first = [*builders, *shortest_first([c for c in cells if heads[c.engine.id] is c
                                         and c not in builders])]
    rest = [c for c in cells if c not in first]
    return [*first, *longest_first([c for c in rest if not c.engine.build_wheels]),
            *(c for c in rest if c.engine.build_wheels)]


def headline_rank(cell: Cell) -> tuple:
    """Higher for the cell that better stands for its engine on the pages."""
    axes = dict(cell.axes)
    return (bool(cell.trained), cell.device == "cpu", axes.get("quant", "none") == "none",
            axes.get("numpy", ""), -len(axes))


def resolve_all(cells: list[Cell], *, work: Path, results_dir: Path, log: Log = print,
                options: Options = DEFAULTS, workers: int = 8) -> list[CellResult]:
    """The resolve rung of many cells at once (uv runs in parallel; nothing is installed)."""
    only = dataclasses.replace(options, last_rung="resolve")

    def one(cell: Cell) -> CellResult:
        return run_cell(cell, venv=work / f"cell-{cell.id}", results_dir=results_dir, log=log,
                        options=only)

    return side_by_side(one, cells, workers)


def side_by_side(one: Callable[[Cell], CellResult], cells: list[Cell], workers: int) -> list[CellResult]:
    """`one` over the cells, `workers` at a time; an interruption cancels the cells not started
    (the running ones are stopped by core.proc.stop_all and record nothing)."""
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        return list(pool.map(one, cells))
    finally:
        pool.shutdown(cancel_futures=True)


def serve_bench(cell: Cell, *, venv: Path, results_dir: Path, log: Log = print,
                args: tuple[str, ...] = ()) -> Path | None:
    """The load benchmark of one server (incell/serve_bench.py) in the venv its cell left; its record
    goes to results_dir/<cell id>.json. None, logged, when it could not run."""
    run = CellRun(cell=cell, venv=Path(venv), options=DEFAULTS, log=log)
    fixture = cell.fixtures[0]
    try:
        done = run_in_cell(run, "bench", "incell.serve_bench",
                           ["--engine", cell.engine.id, "--fixture", fixture, *args])
    except RungFailed as exc:
        log(f"[{cell.id}] serve-bench: {exc.error.signature}")
        return None
    if done.rung is None:
        log(f"[{cell.id}] serve-bench failed (exit {done.tool.returncode}):\n"
            f"{done.tool.output[-3000:]}")
        return None
    finish(new_result(run, [done.rung]), results_dir)  # the cell and machine beside the record
    out = results_dir / f"{cell.id}.json"
    log(f"[{cell.id}] serve-bench -> {out}")
    return out


def real_shape(runs: list[RealShapeRun], shape: str, *, venv_root: Path, results_dir: Path,
               out: Path, log: Log = print, limit_s: float = 600, also: str = "") -> list[CellResult]:
    """Each run's bench rung on the real shape `shape` (the `real` profile), one after another on
    a quiet machine, into out/<shape>/[<variant>/]<cell id>.json. A run past `limit_s` is its
    rung's Timeout, a result like any other; the log shows progress and the time left. The
    machine's limits are read before the first and after the last (out/<shape>/limits-<run>.json):
    one limit for the whole table. `also`: a second shape each run measures right after the
    first, in the same run (a trained model's random-weights shape: the pages set the two
    against each other only within one run); the shipped GGUF is the trained model's alone."""
    results: list[CellResult] = []
    shapes, steps = [shape, *([also] if also else [])], shape_steps(runs, shape, also)
    started, run = time.monotonic(), run_id(now())
    probe = RunProbe(run, [venv_root / f"cell-{r.cell.id}" for r in runs], out / shape, log)
    probe.before()
    for other in shapes[1:]:  # the same limits beside each shape's records
        save(probe.limits, out / other)
    for i, (one, on) in enumerate(steps):
        log(progress(i, len(steps), time.monotonic() - started) + f" · {one.label} · {on}")
        results.append(shape_row(one, on, run, venv_root=venv_root, results_dir=results_dir,
                                 out=out, log=log, limit_s=limit_s))
    probe.after()
    for other in shapes[1:]:
        save(probe.limits, out / other)
    log(progress(len(steps), len(steps), time.monotonic() - started))
    return results


def shape_row(one: RealShapeRun, shape: str, run: str, *, venv_root: Path, results_dir: Path,
              out: Path, log: Log, limit_s: float) -> CellResult:
    """One row of a real-shape run: the cell's bench rung on `shape`, stamped with `run`; not run
    where its matrix cell stops short of bench (a known incompatibility)."""
    options = Options(bench_args=("--profile", "real", "--fixture", shape), env=one.env,
                      limits=dataclasses.replace(Limits(), bench=limit_s))
    folder = out / shape / one.variant if one.variant else out / shape
    base = last_result(results_dir, one.cell.id)
    if base is not None and base.first_failure is not None:  # e.g. a known incompatibility
        failed = base.first_failure
        why = failed.error.signature if failed.error else failed.reason
        cell_run = CellRun(cell=one.cell, venv=venv_root / f"cell-{one.cell.id}", options=options,
                           log=log)
        log(f"[{one.label}] not run: its matrix cell stops at {failed.name}: {why}")
        return finish(new_result(cell_run, [Rung("bench", "not_run", reason=(
            f"its matrix cell stops at {failed.name}: {why}"))]), folder)
    result = bench_only(one.cell, venv=venv_root / f"cell-{one.cell.id}", results_dir=folder,
                        log=log, options=options, base=base, run_id=run)
    failed = result.first_failure
    log(f"[{one.label}] {failed.error.signature if failed and failed.error else 'measured'}")
    return result


def progress(done: int, total: int, elapsed: float, width: int = 24) -> str:
    """A text progress bar with the time left at the mean pace so far, e.g.
    "[#########---------------] 3/8 · 4 min 10 s · about 6 min 57 s left"."""
    filled = round(width * done / total) if total else width
    bar = "#" * filled + "-" * (width - filled)
    left = f" · about {minutes(elapsed / done * (total - done))} left" if 0 < done < total else ""
    return f"[{bar}] {done}/{total} · {minutes(elapsed)}{left}"


def minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60} min {whole % 60} s" if whole >= 60 else f"{whole} s"
