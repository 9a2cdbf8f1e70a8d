"""A run's timeline: when each cell's rungs started and ended, the one record a run's wall times
come from (the README's sample lines, docs/running.md's cold and warm times, the first verdict
per engine). Every `nox` run writes one (results/run/timeline-<start>.json); `nox -s report`
commits it with the other records.

Times are seconds from the run's start, read from one monotonic clock, so that two spans of one
run compare whatever the wall clock did.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.records import read, to_json
from core.results import write_atomic

SCHEMA = 1
MARKS = {"pass": "ok", "fail": "FAIL"}


def rung_line(cell: str, rung: str, status: str, duration_s: float, note: str = "") -> str:
    """A rung as the run logs it when it lands: "[cell] resolve     ok (1.4s)"."""
    return f"[{cell}] {rung:<11} {MARKS.get(status, status)} ({duration_s:.1f}s){note}"


@dataclass
class Span:
    """One rung of one cell in a run."""

    cell: str
    engine: str
    rung: str
    status: str
    start_s: float
    end_s: float
    note: str = ""
    """What the log line adds after the time: the error's signature, a fallback."""

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class Timeline:
    """Every rung span of one run, and when each cell's climb ended (its verdict)."""

    started_at: str
    """The run's start, ISO UTC (its file's name carries it)."""
    selection: str
    workers: int
    cells: int
    schema: int = SCHEMA
    finished_at: str = ""
    wall_s: float = 0.0
    """The run's wall time, climb and bench rungs."""
    climb_s: float = 0.0
    """When the last cell had climbed (the bench rungs follow, one at a time)."""
    spans: list[Span] = field(default_factory=list)
    verdicts: dict[str, float] = field(default_factory=dict)
    """Cell id → seconds into the run when it had climbed through its api rung."""
    reused: list[str] = field(default_factory=list)
    """The cells whose earlier result was reused (nothing they depend on changed)."""

    def first_verdicts(self) -> dict[str, tuple[str, float]]:
        """Engine → (its first cell to reach a verdict, when)."""
        engines = {s.cell: s.engine for s in self.spans}
        first: dict[str, tuple[str, float]] = {}
        for cell, at in sorted(self.verdicts.items(), key=lambda kv: kv[1]):
            first.setdefault(engines.get(cell, cell.split("-")[0]), (cell, at))
        return first

    def rung_sums(self) -> dict[str, float]:
        """Seconds spent in each rung over every cell (the climb's sums)."""
        sums: dict[str, float] = {}
        for span in self.spans:
            sums[span.rung] = sums.get(span.rung, 0.0) + span.duration_s
        return sums

    def summary(self) -> dict:
        """What a page or a docs include quotes of a run, derived from its spans (never stored):
        wall and climb seconds, the bench rungs' time, the first verdict, when every engine had
        one, each engine's first, the rungs' sums, the cells climbed and reused, the stacks'
        share."""
        firsts = self.first_verdicts()
        return {"wall_s": self.wall_s, "climb_s": self.climb_s,
                "bench_s": sum(s.duration_s for s in self.spans if s.rung == "bench"),
                "first_verdict_s": min(self.verdicts.values(), default=0.0),
                "all_engines_s": max((at for _, at in firsts.values()), default=0.0),
                "first_verdicts": {engine: at for engine, (_, at) in firsts.items()},
                "rung_sums": self.rung_sums(),
                "cells_climbed": len(self.verdicts) - len(self.reused),
                "cells_reused": len(self.reused), **self.stack_part()}

    def stack_part(self) -> dict:
        """The stacks' share of the run (their members' ids start with "stack-"): the seconds
        their rungs took, and the wall time from the first to the last of them."""
        spans = [s for s in self.spans if s.cell.startswith("stack-")]
        return {"stack_rungs_s": sum(s.duration_s for s in spans),
                "stack_wall_s": (max(s.end_s for s in spans) - min(s.start_s for s in spans))
                if spans else 0.0}

    def lines(self, count: int) -> list[str]:
        """The first `count` rung lines of the run, in the order they landed, as it logged them."""
        spans = sorted(self.spans, key=lambda s: s.end_s)[:count]
        return [rung_line(s.cell, s.rung, s.status, s.duration_s, s.note) for s in spans]


def run_id(started_at: str) -> str:
    """A run's id, "20261207T141101" for a run started at 2026-12-07T14:11:01+00:00: its
    timeline's, its limits' (core/run_limits.py) and its bench records' (BenchDetail.run)."""
    return started_at[:19].replace("-", "").replace(":", "")


def file_name(started_at: str) -> str:
    """"timeline-20261207T141101.json" for a run started at 2026-12-07T14:11:01+00:00."""
    return f"timeline-{run_id(started_at)}.json"


def load(path: Path) -> Timeline:
    return read(Timeline, json.loads(Path(path).read_text(encoding="utf-8")))


class Recorder:
    """Collects a run's spans from the threads that climb cells, and writes the record."""

    def __init__(self, path: Path, timeline: Timeline) -> None:
        self.path, self.timeline = Path(path), timeline
        self._origin = time.perf_counter()
        self._lock = threading.Lock()

    def now(self) -> float:
        return round(time.perf_counter() - self._origin, 3)

    def rung(self, cell: str, engine: str, rung: str, status: str, *, start_s: float,
             note: str = "") -> None:
        span = Span(cell=cell, engine=engine, rung=rung, status=status, start_s=start_s,
                    end_s=self.now(), note=note)
        with self._lock:
            self.timeline.spans.append(span)

    def verdict(self, cell: str, reused: bool) -> None:
        with self._lock:
            self.timeline.verdicts[cell] = self.now()
            if reused:
                self.timeline.reused.append(cell)

    def write(self, finished_at: str = "", climb_s: float | None = None) -> Path:
        with self._lock:
            if climb_s is not None:
                self.timeline.climb_s = climb_s
            if finished_at:
                self.timeline.finished_at, self.timeline.wall_s = finished_at, self.now()
            text = json.dumps(to_json(self.timeline), indent=1, sort_keys=True) + "\n"
        write_atomic(self.path, text)
        return self.path
