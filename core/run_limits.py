"""One limit per run: the machine's limits read before a run's first bench rung and again after
its last (bench/limits.py, taken by compat/limits_probe.py), the record every MBU and prefill
fraction of the run's rows divides by. Written as results/run/limits-<run>.json (a real-shape
run: beside its records), its run id the run's timeline's (core/timeline.py).

The limit is the best reading of both phases; where the two phases' bests differ by more than
DRIFT, the run was drifting (a neighbour came or went) and every page that divides by it says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from core.records import read, to_json
from core.results import write_atomic

DRIFT = 0.15
"""How far apart the readings before and after a run's bench rungs may lie (relative to the
larger) before the run is flagged as drifting."""
PREFIX = "limits-"


@dataclass
class LimitReadings:
    """One phase's readings: `readings` of each limit, taken at `taken_at`."""

    taken_at: str
    memory_bandwidth_gb_s: list[float] = field(default_factory=list)
    compute_tflops: dict[str, list[float]] = field(default_factory=dict)
    """dtype -> readings of its peak matmul rate."""
    params: dict = field(default_factory=dict)
    """How they were read (array MiB, threads, matmul n, libraries, the Python)."""


@dataclass
class RunLimits:
    """A run's limits, before its first bench rung and after its last."""

    run: str
    """The run's id ("20261207T204020": its timeline's start)."""
    device: str = "cpu"
    before: LimitReadings | None = None
    after: LimitReadings | None = None
    problem: str = ""
    """Why a phase has no readings (the probe failed: its error), or ""."""

    @property
    def phases(self) -> list[LimitReadings]:
        return [p for p in (self.before, self.after) if p is not None]

    @property
    def bandwidth_gb_s(self) -> float | None:
        """The run's read bandwidth: the best reading of both phases."""
        found = [v for p in self.phases for v in p.memory_bandwidth_gb_s]
        return max(found) if found else None

    def peak_tflops(self, dtype: str) -> float | None:
        found = [v for p in self.phases for v in p.compute_tflops.get(dtype, [])]
        return max(found) if found else None

    def drift(self, dtype: str | None = None) -> float | None:
        """How far apart the two phases' bests lie, relative to the larger: the bandwidth's, or
        `dtype`'s peak; None without both phases."""
        if self.before is None or self.after is None:
            return None
        bests = [max(p.compute_tflops.get(dtype, []) if dtype else p.memory_bandwidth_gb_s,
                     default=0.0) for p in (self.before, self.after)]
        return abs(bests[0] - bests[1]) / max(bests) if min(bests) > 0 else None

    @property
    def drifting(self) -> bool:
        dtypes = {d for p in self.phases for d in p.compute_tflops}
        return any((self.drift(d) or 0) > DRIFT for d in (None, *sorted(dtypes)))

    def named(self) -> str:
        """The limit as a table's header names it: "read 41.2 GB/s (best of 10 readings before
        and after the bench rungs; apart 3%)", with ⚠️ drifting past DRIFT."""
        best, drift = self.bandwidth_gb_s, self.drift()
        if best is None:
            return f"not measured ({self.problem or 'no readings'})"
        count = sum(len(p.memory_bandwidth_gb_s) for p in self.phases)
        when = " and ".join(w for w, p in (("before", self.before), ("after", self.after)) if p)
        text = f"{best:,.1f} GB/s, the best of {count} readings {when} the bench rungs"
        if drift is not None:
            text += f" (the two phases' bests {drift:.0%} apart"
            text += f": ⚠️ drifting, past {DRIFT:.0%})" if drift > DRIFT else ")"
        return text


def path_for(folder: Path, run: str) -> Path:
    return Path(folder) / f"{PREFIX}{run}.json"


def save(limits: RunLimits, folder: Path) -> Path:
    path = path_for(folder, limits.run)
    write_atomic(path, json.dumps(to_json(limits), indent=1) + "\n")
    return path


def load_all(folder: Path) -> dict[str, RunLimits]:
    """Every run's limits record in `folder`, by run id (none where there is no folder)."""
    found = {}
    for path in sorted(Path(folder).glob(f"{PREFIX}*.json")) if Path(folder).is_dir() else ():
        limits = read(RunLimits, json.loads(path.read_text(encoding="utf-8")))
        found[limits.run] = limits
    return found
