"""Bisection: the newest working and the first failing release of one package in one cell.

    nox -s bisect -- PACKAGE CELL [--good VERSION]

Each probe is the same ladder (resolve -> ... -> conformance) with the package
pinned to one release. The newest release is probed first, then the starting
release: the one the cell resolves to on its own, or --good. A binary search
between them finds the boundary, either way round: where the newest fails, the
newest working and first failing releases; where the newest works and the start
fails, the first release that works ("which infinity-emb release first works
with optimum 2": nox -s bisect -- infinity-emb infinity_emb-numpy1-optimum2
--good 0.0.70). The package may be the engine itself. Probes: at most
ceil(log2 N) + 2 for N releases.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from compat.cell import Log, Options
from compat.drive import resolve_all
from compat.index import published_versions
from compat.ladder import run_cell
from compat.matrix import Cell, requirement_name
from core.details import BisectProbe, BisectRecord, Boundary
from core.errors import MatrixError, unknown
from core.records import read, to_json
from core.results import machine_info, write_atomic


def pinned(cell: Cell, package: str, version: str) -> Cell:
    """The same cell with `package==version` added to its requirements."""
    pin = f"{package}=={version}"
    release = "" if requirement_name(package) == cell.engine_package else cell.release
    return dataclasses.replace(cell, pins=(*cell.pins, pin), requested=(*cell.requested, pin),
                               requirements=(*cell.requirements, pin), release=release)


def held_version(cell: Cell, package: str, work: Path, options: Options) -> str:
    """The version of `package` the cell resolves to; an error if the cell does not hold it."""
    result = resolve_all([cell], work=work, results_dir=work / "results", log=lambda _: None,
                         options=options)[0]
    failure = result.first_failure
    if failure is not None:
        raise MatrixError(f"cell {cell.id!r} does not resolve ({failure.error.signature}); "
                          "bisect needs a cell that resolves. Try --good VERSION.")
    name = requirement_name(package)
    if name not in result.versions:
        raise MatrixError(unknown(f"package in cell {cell.id!r}", package, result.versions))
    return result.versions[name]


def search(releases: list[str], works: Callable[[str], bool]) -> Boundary:
    """The boundary in `releases` (oldest first, from the starting release to the newest).

    Probes the newest, then the start; where they differ, bisects between them: at most
    ceil(log2 N) + 2 probes. Either way round: a regression (the start works, the newest
    fails) or a fix (the start fails, the newest works: "the first release that works").
    """
    lo, hi = 0, len(releases) - 1
    newest_works = works(releases[hi])
    start_works = newest_works if lo == hi else works(releases[lo])
    if start_works == newest_works:
        state = "works" if newest_works else "fails"
        return Boundary("none", start_works, releases[hi],
                        note=f"the starting release {releases[lo]} and the newest {releases[hi]} "
                             f"both {state}: no boundary between them"
                             + ("" if newest_works else "; give an older --good VERSION"))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if works(releases[mid]) == start_works else (lo, mid)
    if start_works:
        return Boundary("regression", True, releases[lo], releases[hi])
    return Boundary("fix", False, releases[lo], releases[hi], note=f"fixed in {releases[hi]}")


def boundary(found: Boundary) -> str:
    """Where a bisection found the change, in words."""
    if found.direction == "fix":
        return f"fails up to {found.before}, works from **{found.after}**"
    if found.direction == "regression":
        return f"works up to {found.before}, fails from **{found.after}**"
    return f"every probe {'works' if found.start_works else 'fails'}"


def save_record(record: BisectRecord, results_dir: Path) -> Path:
    path = Path(results_dir) / "bisect" / f"{record.cell}--{record.package}.json"
    write_atomic(path, json.dumps(to_json(record), indent=2, sort_keys=True) + "\n")
    return path


def load_records(result_dirs: list[Path]) -> list[BisectRecord]:
    """Every bisect record under the folders' bisect/; unreadable or foreign ones skipped."""
    records = []
    for folder in result_dirs:
        for path in sorted((Path(folder) / "bisect").glob("*.json")):
            try:
                records.append(read(BisectRecord, json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError, KeyError):
                continue
    return records


def bisect(cell: Cell, package: str, *, venv: Path, results_dir: Path, log: Log = print,
           options: Options | None = None, good: str | None = None) -> BisectRecord:
    """Find the boundary; write results_dir/bisect/<cell>--<package>.json and return it. `good`:
    the starting release (default: what the cell resolves to); from a failing one where the
    newest works, the first release that works."""
    options = options or Options()
    name = requirement_name(package)
    work = Path(tempfile.mkdtemp(prefix="infermatrix-bisect-"))
    good = good or held_version(cell, name, work, options)
    releases = [str(v) for v in published_versions(name, cell.python)]
    if good not in releases:
        raise MatrixError(unknown(f"--good (starting) release of {name}", good, releases[-10:]))
    probes: list[BisectProbe] = []
    probe_options = dataclasses.replace(options, last_rung="conformance")

    def works(version: str) -> bool:
        log(f"[bisect] probe {len(probes) + 1}: {name}=={version}")
        result = run_cell(pinned(cell, name, version), venv=venv, results_dir=work / "probes",
                          log=log, options=probe_options)
        failed = result.first_failure
        probes.append(BisectProbe(version, failed is None, failed.name if failed else None,
                                  failed.error.signature if failed and failed.error else None))
        return failed is None

    lo = releases.index(good)
    span = len(releases) - lo  # releases between the known-good one and the newest
    found = search(releases[lo:], works)
    failed_release = {"regression": found.after, "fix": found.before}.get(found.direction)
    failing = next((p for p in probes if p.version == failed_release), None)
    record = BisectRecord(
        cell=cell.id, package=name, good_start=good, releases_considered=span,
        max_probes=math.ceil(math.log2(span)) + 2, boundary=found,
        failing_rung=failing.rung if failing else None,
        signature=failing.signature if failing else None, probes=probes,
        machine=asdict(machine_info()), exclude_newer=options.exclude_newer)
    save_record(record, results_dir)
    return record
