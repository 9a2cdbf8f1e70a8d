"""Records in: a run's results/ taken into the committed records folder every page is rendered
from, the release watch found on the way in, and a line per cell in the history.

    python -m pages.records [RESULTS] [--into reports/records] [--history reports/history.jsonl]

The published reports are three renders of the same kind (PUBLISHED): reports/ from
reports/records/, reports/resolve/ from reports/resolve/records/ (a run's results/resolve/) and
reports/cuda/ from reports/cuda/records/ (the GPU check's results). Taking a run in is the only
step that compares anything with an earlier run or appends to the history; rendering then reads
the records alone, so the committed records re-render every committed page byte for byte.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from compat.matrix import Matrix
from compat.matrix import load as load_matrix
from core import layout
from pages.history import HISTORY
from pages.history import append as append_history
from pages.history import entries as history_entries
from pages.markdown import newest
from pages.render import cells_of
from pages.watch import previous_run, read_watch, watch, write_watch


@dataclass(frozen=True)
class Published:
    """One committed render: its pages' folder, the records it is rendered from, its title."""

    out: str
    """The pages' folder, relative to the repository (reports, reports/resolve, reports/cuda)."""
    title: str
    source: str
    """Where a run leaves the results this render takes in, relative to the results folder
    ("" for the folder itself; None where a run elsewhere makes them: the GPU check)."""

    @property
    def records(self) -> str:
        return f"{self.out}/records"


PUBLISHED = (
    Published("reports", "Compatibility matrix", ""),
    Published("reports/resolve", "Resolve-only matrix", layout.RESOLVE),
    Published("reports/cuda", "CUDA: an existing environment on an H200 (python -m compat.gpucheck)",
              None),
)
KEPT_APART = (layout.RESOLVE,)
"""Subfolders of results/ that are records of a render of their own, not of reports/."""


@dataclass(frozen=True)
class Taken:
    files: int
    cells: int
    changes: int
    history_lines: int


def record_files(results: Path, skip: tuple[str, ...] = KEPT_APART) -> list[Path]:
    """Every JSON record under `results`, relative to it, the folders kept apart left out."""
    return sorted(p.relative_to(results) for p in Path(results).rglob("*.json")
                  if p.relative_to(results).parts[0] not in skip)


def take_in(results: Path, records: Path, *, matrix: Matrix | None, history: Path,
            skip: tuple[str, ...] = KEPT_APART) -> Taken:
    """Copy every record of `results` into `records` (a record already there is replaced), write
    what changed since the records as they stood (the release watch) and append the history."""
    before, _ = cells_of([records], matrix)
    kept = read_watch([records])
    files = record_files(results, skip)
    for rel in files:
        (records / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(results / rel, records / rel)
    after, _ = cells_of([records], matrix)
    found = watch(after, previous_run(before, kept), matrix)
    write_watch(records, found)
    lines = append_history(history, history_entries(after, matrix, newest(after)))
    return Taken(files=len(files), cells=len(after), changes=len(found["changes"]),
                 history_lines=lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pages.records", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="?", default=Path("results"),
                        help="a run's results folder (default: results/)")
    parser.add_argument("--into", type=Path, default=Path("reports/records"),
                        help="the committed records folder (default: reports/records/)")
    parser.add_argument("--history", type=Path, help="default: history.jsonl beside the records "
                        "folder (reports/history.jsonl)")
    parser.add_argument("--matrix", type=Path, help="matrix whose cells and [[known]] entries apply")
    parser.add_argument("--skip", action="append", default=list(KEPT_APART), help="a subfolder "
                        "of RESULTS left out (default: resolve/, the records of reports/resolve/)")
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        parser.error(f"results folder {str(args.results)!r} does not exist: run `nox` (or the "
                     "session that writes it) first")
    matrix = load_matrix(args.matrix) if args.matrix else None
    history = args.history or args.into.parent / HISTORY
    taken = take_in(args.results, args.into, matrix=matrix, history=history,
                    skip=tuple(args.skip))
    print(f"{args.results} -> {args.into}: {taken.files} record(s) taken in, {taken.cells} cell(s) "
          f"held, {taken.changes} change(s) since the records before; {taken.history_lines} "
          f"line(s) added to {history}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
