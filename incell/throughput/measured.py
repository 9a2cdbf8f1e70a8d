"""What the throughput suite measured, built as core's records where it is measured: each test
adds to the session's Measured, and incell/throughput/run.py makes the bench rung's record from it (the
suite runs in its process: nothing goes through a file and is typed back)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from core.bench_details import MetricRecord, PrefixCache, WeightsFacts


@dataclass
class Measured:
    metrics: list[MetricRecord] = field(default_factory=list)
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    """Test function -> the process's peak resident memory when its rounds ended."""
    cores_busy: dict[str, float] = field(default_factory=dict)
    """"batch1-in128" -> CPU seconds over wall seconds of the engine's process tree."""
    weights: WeightsFacts | None = None
    weights_bytes: int | None = None
    """What the engine's weights take on disk, where its adapter knows."""
    weights_read_bytes: int | None = None
    """What one batch-1 decode step reads of them, where its adapter can tell: the roofline's
    charge (else the fixture's float32 count scaled by weights_bytes)."""
    dtype: str = "float32"
    """What the engine computes in: its compute peak is measured in it."""
    weights_file: str | None = None
    """The file the engine's own tool runs on (incell/referee.py), and the float32 one it came from."""
    unquantized_file: str | None = None
    prefix_cache: PrefixCache = field(default_factory=PrefixCache)


MEASURED = pytest.StashKey[Measured]()


class Collect:
    """A pytest plugin handing the session's Measured to whoever started the session."""

    def __init__(self, measured: Measured) -> None:
        self.measured = measured

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[MEASURED] = self.measured
