"""The history store: reports/history.jsonl, one line per cell per run, appended by every report.

    python -m pages.history [--history reports/history.jsonl] --backfill-git
        add the runs the repository's own history holds (every committed reports/results.json)

Each line is one cell's outcome in one run: when it ran, its verdict (the same mark as
COMPATIBILITY.md's), the first failing rung and its signature, the resolved versions of the
packages the cell is about, and its headline figures at the cell's bench shape (median, CV and
number of samples: the noise a later run is judged against; the samples stay in the results).

Why JSON Lines: the store only grows, and a run adds lines at its end, so a git diff of a run is
exactly what it found; CI artifacts merge by concatenating files (a line already there is
known by its key and skipped); a damaged or foreign line costs that line only, and is named.
SQLite and Parquet would make every run a binary blob in git, unreadable in a review.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from compat.matrix import Matrix
from core.bench_details import DECODE_TOKENS_PER_S, PREFILL_TOKENS_PER_S, SENTENCES_PER_S, TPOT_S, TTFT_S
from core.records import read, to_json
from core.results import CellResult
from pages.headline import marks_of
from pages.markdown import CAVEAT, FAIL, KNOWN, NOT_RUN, PASS

SCHEMA = 1
HISTORY = "history.jsonl"
"""Its name beside the pages (reports/history.jsonl)."""
VERDICTS = {PASS: "pass", CAVEAT: "caveat", FAIL: "fail", KNOWN: "known", NOT_RUN: "not run"}
MARKS = {word: mark for mark, word in VERDICTS.items()}
FIGURES = (DECODE_TOKENS_PER_S, PREFILL_TOKENS_PER_S, TTFT_S, TPOT_S, SENTENCES_PER_S)
"""The headline figures kept per run: the cell's bench rung's, at the quick shape."""


@dataclass
class Figure:
    """A headline figure at the cell's bench shape: its median, and the noise a later run is
    judged against (the samples stay in the results)."""

    median: float
    cv: float
    n: int
    unit: str = ""


@dataclass
class Entry:
    """One line of the history: one cell's outcome in one run."""

    schema: int
    run: str
    """When the report that wrote it ran (its `generated`)."""
    cell: str
    engine: str
    kind: str
    env: str
    device: str
    verdict: str
    """One of VERDICTS' words (pass, caveat, fail, known, not run)."""
    rung: str
    """The first failing rung ("" where none failed)."""
    signature: str
    finished_at: str
    reused_at: str
    versions: dict[str, str] = field(default_factory=dict)
    """The packages the cell is about, resolved."""
    figures: dict[str, Figure] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes a line new: the cell, when it finished, and when a later run reused it."""
        return self.cell, self.finished_at, self.reused_at


@dataclass
class Change:
    """A run where a cell's verdict changed, and the versions that moved since the run before."""

    run: str
    before: str
    after: str
    signature: str
    rung: str
    moved: dict[str, tuple[str | None, str]]


FIELDS = tuple(f.name for f in dataclasses.fields(Entry))


def entry_of(result: CellResult, mark: str, run: str) -> Entry:
    """One result as a history line."""
    failed = result.first_failure
    figures = {}
    for metric in result.bench.metrics if result.bench is not None else []:
        if metric.name in FIGURES and metric.name not in figures:
            figures[metric.name] = Figure(median=round(metric.stats.median, 6),
                                          cv=round(metric.stats.cv, 4), n=metric.stats.n,
                                          unit=metric.unit)
    versions = result.versions
    return Entry(schema=SCHEMA, run=run, cell=result.cell.id, engine=result.cell.engine,
                 kind=result.cell.kind, env=result.cell.env, device=result.cell.device,
                 verdict=VERDICTS[mark], rung=failed.name if failed else "",
                 signature=(failed.error.signature if failed and failed.error
                            else failed.reason if failed else ""),
                 finished_at=result.finished_at, reused_at=result.reused_at,
                 versions={p: versions[p] for p in result.cell.key_packages if p in versions},
                 figures=figures)


def entries(results: list[CellResult], matrix: Matrix | None, run: str) -> list[Entry]:
    marks = marks_of(results, matrix)
    return [entry_of(r, marks[r.cell.id], run) for r in results]


def problem(line: str) -> str | None:
    """Why a history line cannot be used (None where it can)."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg})"
    if not isinstance(data, dict):
        return "not a JSON object"
    if data.get("schema") != SCHEMA:
        return f"schema {data.get('schema')!r}, not {SCHEMA} (another version of infermatrix)"
    missing = [f for f in FIELDS if f not in data]
    if missing:
        return f"no {', '.join(missing)}"
    if data["verdict"] not in MARKS:
        return f"verdict {data['verdict']!r} is not one of {sorted(MARKS)}"
    try:
        read(Entry, data)
    except (TypeError, ValueError) as exc:
        return f"not a history line: {exc}"
    return None


def read_history(path: Path) -> tuple[list[Entry], list[str]]:
    """The usable lines of a history file, in order, and a note for each line left out."""
    if not Path(path).is_file():
        return [], []
    kept, problems = [], []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        why = problem(line)
        if why:
            problems.append(f"{path}:{number}: {why}; skipped")
        else:
            kept.append(read(Entry, json.loads(line)))
    return kept, problems


def append(path: Path, new: Iterable[Entry]) -> int:
    """Add the entries whose key the file does not hold yet; return how many were added."""
    held, _ = read_history(path)
    seen = {e.key for e in held}
    lines = []
    for item in new:
        if item.key not in seen:
            seen.add(item.key)
            lines.append(json.dumps(to_json(item), sort_keys=True, ensure_ascii=False))
    if lines:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("".join(f"{line}\n" for line in lines))
    return len(lines)


def runs(history: list[Entry]) -> list[str]:
    """The runs the history holds, oldest first."""
    return sorted({e.run for e in history})


def timeline(history: list[Entry], cell: str) -> list[Entry]:
    """One cell's lines, oldest first."""
    return sorted((e for e in history if e.cell == cell), key=lambda e: (e.run, e.finished_at))


def changes(history: list[Entry], cell: str) -> list[Change]:
    """The runs where a cell's verdict changed: each with the verdict before and the versions
    that moved between the two runs."""
    out, before = [], None
    for item in timeline(history, cell):
        if before is not None and item.verdict != before.verdict:
            moved = {p: (before.versions.get(p), v) for p, v in item.versions.items()
                     if before.versions.get(p) != v}
            out.append(Change(run=item.run, before=before.verdict, after=item.verdict,
                              signature=item.signature, rung=item.rung, moved=moved))
        before = item
    return out


def backfill_git(path: Path, repo: Path, matrix: Matrix | None = None,
                 log=print) -> int:
    """Append the runs held by every commit of reports/results.json in the repository's history
    (oldest first); files of an older schema are named and skipped."""
    commits = subprocess.run(["git", "log", "--reverse", "--format=%H", "--", "reports/results.json"],
                             cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    added = 0
    for commit in commits:
        text = subprocess.run(["git", "show", f"{commit}:reports/results.json"], cwd=repo,
                              capture_output=True, text=True, check=False).stdout
        try:
            merged = json.loads(text)
        except json.JSONDecodeError:
            log(f"{commit[:9]}: reports/results.json is not JSON; skipped")
            continue
        run = merged.get("generated") or commit_date(repo, commit)
        results, problems = results_of(merged.get("cells", []))
        if problems:
            log(f"{commit[:9]}: {len(problems)} cell(s) of another schema skipped")
        added += append(path, entries(results, matrix, run))
    return added


def commit_date(repo: Path, commit: str) -> str:
    return subprocess.run(["git", "show", "-s", "--format=%cI", commit], cwd=repo,
                          capture_output=True, text=True, check=True).stdout.strip()


def results_of(cells: list[dict]) -> tuple[list[CellResult], list[str]]:
    """CellResults from the JSON forms a results.json holds; one that cannot be read is named."""
    results, problems = [], []
    for cell in cells:
        try:
            results.append(CellResult.from_dict(cell))
        except (ValueError, TypeError, KeyError, StopIteration) as exc:
            problems.append(f"{cell.get('cell', {}).get('id', '?')}: {exc}")
    return results, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pages.history", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=Path, default=Path("reports/history.jsonl"))
    parser.add_argument("--matrix", type=Path, help="matrix whose [[known]] entries apply")
    parser.add_argument("--backfill-git", action="store_true",
                        help="add the runs every committed reports/results.json holds")
    args = parser.parse_args(argv)
    from compat.matrix import load as load_matrix

    matrix = load_matrix(args.matrix) if args.matrix else None
    if args.backfill_git:
        added = backfill_git(args.history, Path.cwd(), matrix)
        print(f"{args.history}: {added} line(s) added")
    history, problems = read_history(args.history)
    for note in problems:
        print(note, file=sys.stderr)
    print(f"{args.history}: {len(history)} line(s), {len(runs(history))} run(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
