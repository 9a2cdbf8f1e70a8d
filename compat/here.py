"""Any existing environment as a cell: the rungs from import upwards in an interpreter that is
already there (a production container, a user's venv, a GPU machine with no package index).

    python -m compat.here --python /usr/bin/python3 --engine transformers --device cuda
    nox -s here -- --python PATH --engine ID [--device cuda] [--dtype bfloat16] [--name NAME]

resolve and install are not run (➖ "existing environment"); the versions are read from the
interpreter and recorded as the cell's lock; the result, results/<engine>-[...]-here-<name>.json,
merges into the reports like any cell's, marked as that environment. Stdlib only: it runs in
whatever Python is there, with no nox and nothing installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

from compat.cell import DEFAULTS, Options, RungFailed
from compat.cli import UsageError
from compat.ladder import run_cell
from compat.matrix import Cell, Matrix, make_cell
from compat.matrix import load as load_matrix
from core.ask import DEVICES
from core.errors import InfermatrixError, unknown
from core.proc import REPO
from core.results import RUNGS, CellResult
from engines import DTYPES, ENGINES, engine_entry


def environment_name(python: Path) -> str:
    """A short id-safe name of an interpreter's environment: its venv's folder, else "system"."""
    prefix = python.parent.parent
    name = prefix.name if (prefix / "pyvenv.cfg").is_file() else "system"
    return re.sub(r"[^a-z0-9_.]+", "_", name.lower()).strip("_.") or "env"


def existing_cell(matrix: Matrix, engine: str, device: str, dtype: str | None, name: str) -> Cell:
    """The matrix's spec of `engine` on `device`, no axis but the dtype asked for, in the existing
    environment `name`; bad values are named with the valid ones."""
    entry = engine_entry(engine)
    if engine not in matrix.engines:
        raise UsageError(unknown("engine with a matrix spec", engine, matrix.engines))
    if device not in entry.devices:
        raise UsageError(f"{engine} runs on {', '.join(entry.devices)}, not {device!r}"
                         f" (valid devices: {', '.join(DEVICES)})")
    combo = []
    if dtype is not None:
        if dtype not in entry.dtypes:
            raise UsageError(f"{engine} computes in {', '.join(entry.dtypes)}, not {dtype!r}")
        combo = [(matrix.axes["dtype"], dtype)]
    cell = make_cell(matrix, matrix.engines[engine], combo, device,
                     why=f"The existing environment {name!r}: nothing resolved or installed.")
    spec = matrix.engines[engine]
    return dataclasses.replace(cell, existing=name,
                               harness_apart=(*matrix.harness, *spec.harness))


def run_here(cell: Cell, python: Path, *, results_dir: Path, options: Options = DEFAULTS,
             log=print) -> CellResult:
    """Climb `cell` in the interpreter `python` and write its result; never raises on a rung.
    The cell says the interpreter's Python, and no device constraint (nothing is resolved)."""
    from compat.rungs.existing import distributions

    cell = dataclasses.replace(cell, python=distributions(python)["python"], constraints=())
    return run_cell(cell, venv=REPO / ".nox" / f"here-{cell.id}", results_dir=results_dir,
                    log=log, options=options, interpreter=python)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m compat.here", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python", type=Path, default=Path(sys.executable),
                   help="the existing environment's interpreter (default: this one)")
    p.add_argument("--engine", required=True, help=f"one of: {', '.join(ENGINES)}")
    p.add_argument("--device", default="cpu", help=f"one of: {', '.join(DEVICES)}")
    p.add_argument("--dtype", help=f"one of: {', '.join(DTYPES)} (default: the device's)")
    p.add_argument("--name", help="the environment's name in the cell id (default: its venv's "
                                  "folder, or 'system')")
    p.add_argument("--results", type=Path, default=REPO / "results")
    p.add_argument("--last-rung", default="bench", choices=RUNGS[2:],
                   help="climb up to this rung (default: bench)")
    p.add_argument("--bench-arg", action="append", default=[], metavar="ARG",
                   help="passed to incell.throughput.run, e.g. --bench-arg=--profile --bench-arg=real")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    python = args.python
    if not python.is_file():
        p.error(f"--python {str(python)!r} is not a file; give an interpreter's path")
    try:
        cell = existing_cell(load_matrix(), args.engine, args.device, args.dtype,
                             args.name or environment_name(python))
    except (InfermatrixError, KeyError) as exc:
        p.error(str(exc))
    options = Options(last_rung=args.last_rung, bench_args=tuple(args.bench_arg))
    try:
        result = run_here(cell, python, results_dir=args.results, options=options)
    except RungFailed as exc:  # a rung's failure is recorded; this is the environment's own
        print(f"{cell.id}: {exc}", file=sys.stderr)
        return 2
    failed = result.first_failure
    print(f"{cell.id}: " + (f"{failed.name} failed" if failed else "every rung passed")
          + f" -> {args.results / (cell.id + '.json')}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
