"""What the throughput suite measured, built as core's records where it is measured: each test
adds to the session's Measured, and incell/throughput/run.py makes the bench rung's record from it (the
suite runs in its process: nothing goes through a file and is typed back)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from core.bench_details import MetricRecord, PrefixCache, WeightsFacts
from engines.params import LoadedWeights


@dataclass
class Measured:
    metrics: list[MetricRecord] = field(default_factory=list)
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    """Test function -> the process's peak resident memory when its rounds ended."""
    cores_busy: dict[str, float] = field(default_factory=dict)
    """"batch1-in128" -> CPU seconds over wall seconds of the engine's process tree."""
    weights: WeightsFacts | None = None
    loaded: LoadedWeights = field(default_factory=LoadedWeights)
    """What the engine loaded (Engine.weights): the roofline's charge, and the files the
    engine's own tool runs on (incell/referee.py)."""
    dtype: str = "float32"
    """What the engine computes in: its compute peak is measured in it."""
    prefix_cache: PrefixCache = field(default_factory=PrefixCache)


MEASURED = pytest.StashKey[Measured]()


class Collect:
    """A pytest plugin handing the session's Measured to whoever started the session."""

    def __init__(self, measured: Measured) -> None:
        self.measured = measured

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[MEASURED] = self.measured
