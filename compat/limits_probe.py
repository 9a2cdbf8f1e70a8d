"""One limit per run: the machine's limits read (bench/limits.py) before a run's first bench rung
and again after its last, in a cell's Python that has numpy and, where one has it, torch (the
bfloat16 and int8 peaks need it), saved as the run's limits record (core/run_limits.py).

A probe that fails is the record's `problem`, never the run's crash: the pages then say the
run's limit was not measured, and fall back to naming each row's own probe.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from compat.cell import Log
from compat.ladder import now
from core.proc import REPO
from core.run_limits import LimitReadings, RunLimits, save

READINGS = 5
"""Readings of each limit a phase takes (the record keeps every one; the limit is the best)."""
PROBE_S = 300
"""How long one phase may take before it is a problem, not a reading (it takes seconds)."""


def has(venv: Path, package: str) -> bool:
    return any(venv.glob(f"lib/python*/site-packages/{package}/__init__.py"))


def probe_python(venvs: list[Path]) -> Path | None:
    """The Python that reads the limits: the first venv with torch (every dtype's peak), else
    the first with numpy (bandwidth and float32); None where no venv has either."""
    ready = [v for v in venvs if (v / "bin" / "python").exists()]
    for package in ("torch", "numpy"):
        found = next((v for v in ready if has(v, package)), None)
        if found is not None:
            return found / "bin" / "python"
    return None


def read_phase(python: Path, log: Log, readings: int = READINGS) -> tuple[LimitReadings | None, str]:
    """One phase's readings, or None and why not."""
    taken_at = now()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        done = subprocess.run([str(python), "-m", "bench.limits", "--readings", str(readings)],
                              check=False, capture_output=True, text=True, timeout=PROBE_S,
                              cwd=REPO, env=env)
    except subprocess.TimeoutExpired:
        return None, f"the limits probe took over {PROBE_S} s"
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"the limits probe failed: {tail}"
    data = json.loads(done.stdout)
    missing = data.get("missing", [])
    if missing:
        log(f"limits: no {', '.join(missing)} matmul in {python} (torch missing): not read")
    return LimitReadings(taken_at=taken_at, memory_bandwidth_gb_s=data["memory_bandwidth_gb_s"],
                         compute_tflops=data["compute_tflops"], params=data["params"]), ""


class RunProbe:
    """A run's limits: `before()` ahead of its first bench rung, `after()` past its last, each
    saving the record into `folder` (limits-<run>.json)."""

    def __init__(self, run: str, venvs: list[Path], folder: Path, log: Log,
                 readings: int = READINGS) -> None:
        self.limits, self.folder, self.log = RunLimits(run=run), Path(folder), log
        self.readings = readings
        self.python = probe_python(venvs)
        if self.python is None:
            self.limits.problem = "no venv of the run has numpy to read the limits with"

    def take(self, phase: str) -> Path | None:
        if self.python is None:
            return None
        readings, problem = read_phase(self.python, self.log, self.readings)
        setattr(self.limits, phase, readings)
        if problem:
            self.limits.problem = f"{phase}: {problem}"
            self.log(f"limits {phase} the bench rungs: {problem}")
        else:
            self.log(f"limits {phase} the bench rungs: read "
                     f"{max(readings.memory_bandwidth_gb_s):,.1f} GB/s (best of {self.readings})")
        return save(self.limits, self.folder)

    def before(self) -> Path | None:
        return self.take("before")

    def after(self) -> Path | None:
        path = self.take("after")
        if path is not None:
            self.log(f"the run's limit: {self.limits.named()}")
        return path
