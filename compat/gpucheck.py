"""A GPU check in one command: every CUDA-capable engine the current interpreter holds, climbed
as an existing-environment cell (compat/here.py) through conformance and the bench rung, then
the generation engines' bench at a real shape, in bfloat16 where they offer it.

    python -m compat.gpucheck [--results results] [--shape smollm2-135m-shape] [--limit-min 8]

For a machine with a GPU and no package index: no nox, nothing installed. Fixtures are built by
this interpreter ($INFERMATRIX_FIXTURE_PYTHON) where the cache it finds lacks them; a packaged
fixture this interpreter cannot import (MiniLM) is replaced by its built stand-in of the same
architecture. The results merge into the reports (`nox -s report -- RESULTS ...`): cells under
RESULTS, the real-shape bench under RESULTS/real-shape/<shape>/. `--device cpu` runs the same
path on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from compat.cell import Limits, Options
from compat.drive import minutes, progress
from compat.here import existing_cell, run_here
from compat.ladder import bench_only
from compat.matrix import Cell, Matrix, load, requirement_name
from core.ask import DEVICES
from core.layout import real_shape_dir
from core.proc import REPO
from engines import ENGINES
from fixtures.catalog import DEFAULT_REAL_SHAPE, PACKAGED, REAL_SHAPES, STAND_INS
from fixtures.ensure import FIXTURE_PYTHON_ENV, build_fixtures


def found_engines(versions: dict[str, str], device: str, matrix: Matrix | None = None) -> list[str]:
    """The in-process engines for `device` whose every package (fixtures' packages aside) the
    interpreter holds, in registry order."""
    matrix, packaged = matrix or load(), {p.distribution for p in PACKAGED.values()}
    found = []
    for engine_id, entry in ENGINES.items():
        spec = matrix.engines.get(engine_id)
        if spec is None or device not in entry.devices or entry.transport != "process":
            continue
        needs = {requirement_name(r).lower() for r in spec.requires_on(device)} - packaged
        if needs <= set(versions):
            found.append(engine_id)
    return found


def with_stand_ins(cell: Cell, versions: dict[str, str]) -> Cell:
    """The cell on the built stand-in of any packaged fixture the interpreter does not hold."""
    missing = {name for name, p in PACKAGED.items() if p.distribution not in versions}
    swap = {packaged: built for built, packaged in STAND_INS.items() if packaged in missing}
    if not swap:
        return cell
    fixtures = tuple(swap.get(f, f) for f in cell.engine.fixtures)
    return dataclasses.replace(cell, engine=dataclasses.replace(cell.engine, fixtures=fixtures))


def check(python: Path, device: str, shape: str, results: Path, limit_s: float, *, log=print,
          only: tuple[str, ...] = ()) -> int:
    """Climb every engine found (or those of `only` found), then the real shape; the number of
    runs (a cell's climb, a real-shape bench) that failed."""
    from compat.rungs.existing import distributions

    matrix, versions = load(), distributions(python)["versions"]
    engines = [e for e in found_engines(versions, device, matrix) if not only or e in only]
    log(f"{python}: {len(engines)} engines for {device}: {', '.join(engines) or 'none'}")
    os.environ.setdefault(FIXTURE_PYTHON_ENV, str(python))  # no helper venv can be made here
    # fixtures built by an unpinned interpreter never enter the pinned cache other runs use
    os.environ.setdefault("INFERMATRIX_CACHE", str(REPO / ".nox" / "gpucheck-cache"))
    started, failures = time.monotonic(), 0
    limits = dataclasses.replace(Limits(), conformance=limit_s / 2, bench=limit_s / 2)
    for i, engine in enumerate(engines):
        log(progress(i, len(engines), time.monotonic() - started) + f" · {engine}")
        # no index there: the harness comes carried on PYTHONPATH, not from compat/harness.py
        cell = dataclasses.replace(with_stand_ins(existing_cell(
            matrix, engine, device, None, "gpucheck"), versions), harness_apart=())
        result = run_here(cell, python, results_dir=results, options=Options(limits=limits), log=log)
        failures += result.first_failure is not None
        if result.first_failure is None and cell.engine.kind == "generation":
            build_fixtures([shape], limit=limit_s, log=log)
            real = bench_only(cell, venv=REPO / ".nox" / f"here-{cell.id}", log=log,
                              results_dir=real_shape_dir(results, shape), interpreter=python,
                              base=result,
                              options=Options(limits=limits,
                                              bench_args=("--profile", "real", "--fixture", shape)))
            failures += real.first_failure is not None
    log(progress(len(engines), len(engines), time.monotonic() - started)
        + f" · {failures} with a failure -> {results}")
    return failures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m compat.gpucheck", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=DEVICES)
    p.add_argument("--shape", default=DEFAULT_REAL_SHAPE, choices=sorted(REAL_SHAPES))
    p.add_argument("--results", type=Path, default=REPO / "results")
    p.add_argument("--engine", action="append", default=[], choices=sorted(ENGINES),
                   help="only these engines (repeatable; default: every one found)")
    p.add_argument("--limit-min", type=float, default=8.0,
                   help="each engine's conformance and bench rungs get half of this each")
    args = p.parse_args(argv)
    started = time.monotonic()
    failures = check(Path(sys.executable), args.device, args.shape, args.results,
                     args.limit_min * 60, only=tuple(args.engine))
    print(f"gpucheck: {minutes(time.monotonic() - started)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
