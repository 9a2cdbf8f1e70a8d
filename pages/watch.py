"""The release watch: what changed since the previous published run, for the top of
COMPATIBILITY.md. Cells that broke, cells that were fixed, new releases the resolver now picks,
declared incompatibilities that no longer hold, cells added and removed.

The previous run is the committed records (reports/records/) as they stood before a run was
taken in: pages/records.py compares the two when it copies the run's results in, and writes
what it found as a record of its own (records/run/watch.json) that the pages render. Taking the
same results in again keeps the changes found the first time, so a re-take never says "nothing
changed"; rendering never compares anything, so a page stays a function of its records.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from compat.matrix import Matrix
from compat.specs import Known
from core import layout
from core.results import CellResult, write_atomic
from core.signatures import CONTENT_KEY
from pages.markdown import known_failures

CLIMBS_ON = "climbs on over declared failures: "


def state(result: CellResult, matrix: Matrix | None) -> str:
    """One cell's verdict in a comparable form: "pass", "fails at RUNG: SIG", "known at RUNG",
    "climbs on over declared failures: PROPERTY" (compat/matrix.toml [[known]] with a property)."""
    failed = result.first_failure
    if failed is None:
        understood = known_failures(result)
        return f"{CLIMBS_ON}{', '.join(understood)}" if understood else "pass"
    sig = CONTENT_KEY.sub("", failed.error.signature if failed.error else failed.reason)
    if matrix is not None and matrix.known_for(result.cell.id, failed.name, sig) is not None:
        return f"known at {failed.name}: {sig}"
    return f"fails at {failed.name}: {sig}"


def picked(result: CellResult) -> dict[str, str]:
    """The versions of what the cell is about (its engine, its axes, torch)."""
    wanted = [*result.cell.key_packages, "torch"]
    return {name: result.versions[name] for name in wanted if name in result.versions}


def fingerprint(results: list[CellResult]) -> str:
    """Identifies a set of results: equal when the same run is rendered again."""
    stamps = sorted((r.cell.id, r.finished_at) for r in results)
    return hashlib.sha256(json.dumps(stamps).encode()).hexdigest()[:16]


WATCH = "watch.json"
"""Its name in a records folder's run/ (core/layout.RUN)."""


def read_watch(records_dirs: list[Path]) -> dict[str, Any]:
    """The watch record the first of the folders holds; an empty one ("no previous run") where
    none does or it cannot be read."""
    for folder in records_dirs:
        path = Path(folder) / layout.RUN / WATCH
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return {"fingerprint": "", "since": "", "changes": []}


def write_watch(records_dir: Path, record: dict[str, Any]) -> Path:
    path = Path(records_dir) / layout.RUN / WATCH
    write_atomic(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def previous_run(cells: list[CellResult], kept: dict[str, Any]) -> dict[str, Any] | None:
    """The committed records before a run is taken in, as `watch` compares them; None where
    there are none."""
    if not cells:
        return None
    return {"cells": cells, "watch": kept,
            "generated": max(c.finished_at or c.started_at for c in cells)}


def verdict_changes(old: dict[str, CellResult], new: dict[str, CellResult],
                    matrix: Matrix | None) -> tuple[list[str], list[str], list[str]]:
    """The cells that broke, were fixed, or climb on over a failure now declared understood."""
    broke, fixed, declared = [], [], []
    for cid in sorted(old.keys() & new.keys()):
        was, now = state(old[cid], matrix), state(new[cid], matrix)
        if now != was and now.startswith(CLIMBS_ON):
            declared.append(f"- `{cid}` {now} (was: {was})")
        elif was == "pass" and now != "pass":
            broke.append(f"- `{cid}` broke: {now}")
        elif was != "pass" and now == "pass":
            fixed.append(f"- `{cid}` was fixed (it {was.replace('known at', 'was known at')})")
        elif was != now:
            broke.append(f"- `{cid}` now {now} (was: {was})")
    return broke, fixed, declared


def changes(before: list[CellResult], after: list[CellResult], matrix: Matrix | None) -> list[str]:
    """Markdown bullets: what differs between two runs' cells."""
    old = {r.cell.id: r for r in before}
    new = {r.cell.id: r for r in after}
    broke, fixed, declared = verdict_changes(old, new, matrix)
    moved = []
    releases: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for cid in sorted(old.keys() & new.keys()):
        was, now = picked(old[cid]), picked(new[cid])
        for name in sorted(was.keys() & now.keys()):
            if was[name] != now[name]:
                releases[(name, was[name], now[name])].append(cid)
    for (name, was_v, now_v), cids in sorted(releases.items()):
        where = f"`{cids[0]}`" if len(cids) == 1 else f"{len(cids)} cells"
        moved.append(f"- {name} {was_v} → **{now_v}** ({where})")
    lines = []
    for title, items in (("Broke", broke), ("Fixed", fixed),
                         ("Declared understood in compat/matrix.toml", declared),
                         ("New releases the resolver now picks", moved)):
        if items:
            lines += [f"**{title}** ({len(items)}):", "", *items, ""]
    added, removed = sorted(new.keys() - old.keys()), sorted(old.keys() - new.keys())
    if added:
        lines += [f"**New cells**: {', '.join(f'`{c}`' for c in added)}", ""]
    if removed:
        lines += [f"**Cells no longer run**: {', '.join(f'`{c}`' for c in removed)}", ""]
    return lines


def watch(results: list[CellResult], previous: dict[str, Any] | None,
          matrix: Matrix | None) -> dict[str, Any]:
    """What changed since the previous run, kept as it was where these results were rendered
    before (the same fingerprint)."""
    mark = fingerprint(results)
    if previous is None:
        return {"fingerprint": mark, "since": "", "changes": []}
    kept = previous["watch"]
    if kept.get("fingerprint") == mark:
        return kept
    return {"fingerprint": mark, "since": previous["generated"],
            "changes": changes(previous["cells"], results, matrix)}


def no_longer_hold(results: list[CellResult], matrix: Matrix | None) -> list[str]:
    """Declared incompatibilities ([[known]]) whose rung now passes: update the matrix."""
    items = [f"- `{r.cell.id}` now passes **{k.property or k.rung}**, declared known "
             f"{'to fail' if k.property else 'incompatible'}: {k.reason}"
             for k in (matrix.known if matrix else ()) for r in results
             if k.covers(r.cell.id) and passes(r, k)]
    if not items:
        return []
    return [f"**{len(items)} declared incompatibilit(ies) no longer hold** — update "
            "`[[known]]` in compat/matrix.toml:", "", *items, ""]


def passes(result: CellResult, known: Known) -> bool:
    """Whether what `known` declares failing passes in the cell: its rung, or its property."""
    if known.property:
        prop = result.properties(known.rung).get(known.property)
        return prop is not None and prop.status == "pass"
    return getattr(result.rung(known.rung), "status", "") == "pass"


def section(record: dict[str, Any], results: list[CellResult], matrix: Matrix | None) -> list[str]:
    """The top of COMPATIBILITY.md."""
    stale = no_longer_hold(results, matrix)
    if not record.get("since"):
        return ["## What changed", "", "No previous run to compare with: the next report says "
                "what changed since this one.", "", *stale]
    since = record["since"][:16].replace("T", " ")
    body = record["changes"] or (["Nothing: every cell has the verdict and the versions it had.",
                                  ""] if not stale else [])
    return [f"## What changed since the previous run ({since})", "", *body, *stale]
