"""Figures in prose, rendered from their records: README.md and docs/ quote no measured figure by
hand. Where a sentence needs one, it sits in an include that the report rewrites:

    decodes at <!-- fig cuda/records/X.json#rungs[name=bench].detail.metrics[name=decode_tokens_per_s]
    .samples median .1f -->35.8<!-- /fig --> tok/s        (one line in the file)

- RECORD: a JSON record's path relative to reports/ (the committed records, never results/);
- FIELD: a path into it: `key`, `key.key`, `[3]` (a list's item), `[name=bench]` (the list's
  item whose `name` is "bench"), `[name=tpot_s,params.batch=8]` (every condition met);
- STAT: what of the field: `value` (a number), or `median`, `min`, `max`, `mean`, `count` of a
  list of numbers; `minutes` and `seconds` turn a pair of ISO times [start, end] into a wall time,
  `span` a timeline's span ({start_s, end_s}) into its seconds;
- FORMAT (optional): a Python format spec (`.1f`, `,.0f`; default `,.3g`), or `ms` (seconds shown
  in milliseconds, 3 figures), or `min-s` (seconds as "4 min 3 s").

A run's first log lines (the README's sample) are a block include of its timeline record
(core/timeline.py), the lines in the order they landed, as the run logged them:

    <!-- timeline records/run/timeline-20261207T141101.json lines 16 -->
    ```text
    nox > [sentence_transformers-numpy2] resolve     ok (1.4s)
    ```
    <!-- /timeline -->

`python -m pages.includes --write` rewrites every include from its record; `pages.publish --check`
fails where the text between the marks is not what the record gives (a stale figure). A mark
quoted in backticks (as here, in the docs) is text, not an include.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.timeline import load as load_timeline

INCLUDE = re.compile(r"(?<!`)<!-- fig (?P<record>[^#\s]+)#(?P<field>\S+) (?P<stat>\w+)"
                     r"(?: (?P<fmt>\S+))? -->(?P<shown>.*?)<!-- /fig -->", re.S)
BLOCK = re.compile(r"(?<!`)<!-- timeline (?P<record>\S+) lines (?P<count>\d+) -->\n(?P<shown>.*?)"
                   r"<!-- /timeline -->", re.S)
STEP = re.compile(r"\.?(?:(?P<key>[A-Za-z_][\w-]*)|\[(?P<index>\d+)\]|\[(?P<match>[\w.]+=[^\]]+)\])")
STATS = {"median": statistics.median, "min": min, "max": max, "mean": statistics.fmean,
         "count": len}


class IncludeError(ValueError):
    """An include that names no record, no field, or a stat its field cannot give."""


@dataclass(frozen=True)
class Stale:
    file: str
    line: int
    shown: str
    wanted: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: the include shows {self.shown!r}, its record gives {self.wanted!r}"


def matches(item: Any, conditions: str) -> bool:
    """Whether a list's item meets "key=value[,key.key=value]" (its fields compared as text)."""
    for condition in conditions.split(","):
        key, _, value = condition.partition("=")
        at = item
        for part in key.split("."):
            if not isinstance(at, dict) or part not in at:
                return False
            at = at[part]
        if str(at) != value:
            return False
    return True


def field_of(data: Any, path: str) -> Any:
    """The value at `path` in a JSON document (the grammar above)."""
    at, pos = data, 0
    while pos < len(path):
        step = STEP.match(path, pos)
        if step is None:
            msg = f"field {path!r}: cannot read {path[pos:]!r} (a key, [N] or [key=value])"
            raise IncludeError(msg)
        pos = step.end()
        try:
            if step["key"] is not None:
                at = at[step["key"]]
            elif step["index"] is not None:
                at = at[int(step["index"])]
            else:
                at = next(item for item in at if matches(item, step["match"]))
        except (KeyError, IndexError, TypeError, StopIteration, AttributeError):
            msg = f"field {path!r}: {path[:pos]!r} is not in the record"
            raise IncludeError(msg) from None
    return at


def stat_of(value: Any, stat: str) -> float:
    if stat == "value":
        return float(value)
    if stat in ("minutes", "seconds"):
        start, end = (dt.datetime.fromisoformat(v) for v in value)
        return (end - start).total_seconds() / (60 if stat == "minutes" else 1)
    if stat == "span":  # a timeline's span: its end less its start, seconds
        return float(value["end_s"]) - float(value["start_s"])
    if stat not in STATS:
        msg = f"stat {stat!r} is not one of value, minutes, seconds, span, {', '.join(STATS)}"
        raise IncludeError(msg)
    return float(STATS[stat]([float(v) for v in value]))


def formatted(number: float, fmt: str | None) -> str:
    if fmt == "ms":
        return f"{number * 1e3:.3g}"
    if fmt == "min-s":
        minutes, seconds = divmod(round(number), 60)
        return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    return format(number, fmt or ",.3g")


def figure(reports: Path, record: str, field: str, stat: str, fmt: str | None) -> str:
    """What an include shows, from its record under `reports`. A run's timeline also offers
    `summary.…` (core/timeline.Timeline.summary: derived from its spans when read)."""
    path = Path(reports) / record
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if Path(record).name.startswith("timeline-"):
            data = {**data, "summary": load_timeline(path).summary()}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        msg = f"record {record!r}: {exc}"
        raise IncludeError(msg) from None
    return formatted(stat_of(field_of(data, field), stat), fmt)


def block(reports: Path, record: str, count: int) -> str:
    """What a timeline block shows: its run's first `count` rung lines, fenced."""
    try:
        timeline = load_timeline(Path(reports) / record)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        msg = f"record {record!r}: {exc}"
        raise IncludeError(msg) from None
    lines = "".join(f"nox > {line}\n" for line in timeline.lines(count))
    return f"```text\n{lines}```\n"


def shown_by(m: re.Match, reports: Path) -> str:
    """What the include `m` (a figure or a timeline block) should show, from its record."""
    if m.re is BLOCK:
        return block(reports, m["record"], int(m["count"]))
    return figure(reports, m["record"], m["field"], m["stat"], m["fmt"])


def rewrite(text: str, reports: Path) -> str:
    """`text` with every include's figure and block rendered from its record."""
    def one(m: re.Match) -> str:
        start, end = m.start("shown") - m.start(), m.end("shown") - m.start()
        return m.group(0)[:start] + shown_by(m, reports) + m.group(0)[end:]
    return BLOCK.sub(one, INCLUDE.sub(one, text))


def stale(files: list[Path], reports: Path, root: Path) -> list[Stale | str]:
    """Every include whose shown figure is not what its record gives, and every include that
    cannot be read (as a message)."""
    found: list[Stale | str] = []
    for path in files:
        text, name = path.read_text(encoding="utf-8"), str(path.relative_to(root))
        for m in [*INCLUDE.finditer(text), *BLOCK.finditer(text)]:
            line = text.count("\n", 0, m.start()) + 1
            try:
                wanted = shown_by(m, reports)
            except IncludeError as exc:
                found.append(f"{name}:{line}: {exc}")
                continue
            if m["shown"] != wanted:
                cut = 60 if m.re is BLOCK else None
                found.append(Stale(name, line, m["shown"][:cut] + ("…" if cut else ""),
                                   wanted[:cut] + ("…" if cut else "")))
    return found


def prose_files(root: Path) -> list[Path]:
    """README.md and docs/*.md: the prose that quotes figures."""
    files = [Path(root) / "README.md", *sorted((Path(root) / "docs").glob("*.md"))]
    return [f for f in files if f.is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pages.includes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path())
    parser.add_argument("--write", action="store_true", help="rewrite every include in place")
    args = parser.parse_args(argv)
    reports = args.root / "reports"
    if args.write:
        for path in prose_files(args.root):
            text = path.read_text(encoding="utf-8")
            new = rewrite(text, reports)
            if new != text:
                path.write_text(new, encoding="utf-8")
                print(f"{path}: includes rewritten")
        return 0
    problems = stale(prose_files(args.root), reports, args.root)
    for item in problems:
        print(item)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
