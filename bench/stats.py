"""Statistics derived from raw samples (which are always kept beside them)."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence

from core.bench_details import Stats

NOISY_CV = 0.10  # a coefficient of variation above this marks a figure noisy


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not samples:
        raise ValueError("percentile of no samples")
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(samples: Sequence[float]) -> Stats:
    """median, p90, p99, min, max, mean, stdev and CV of the samples."""
    if not samples:
        raise ValueError("summarize needs at least one sample")
    mean = statistics.fmean(samples)
    stdev = statistics.stdev(samples) if len(samples) > 1 else 0.0
    return Stats(n=len(samples), median=statistics.median(samples), p90=percentile(samples, 90),
                 p99=percentile(samples, 99), min=min(samples), max=max(samples), mean=mean,
                 stdev=stdev, cv=stdev / mean if mean else 0.0)


def percentile_interval(samples: Sequence[float], q: float,
                        z: float = 1.96) -> tuple[float, float] | None:
    """A distribution-free ~95% confidence interval of the q-th percentile: the order statistics
    at ranks n·p ∓ z·√(n·p·(1−p)) (p = q/100). None when the samples are too few for it (a rank
    falls outside them): the percentile is then a guess, and says so."""
    n, p = len(samples), q / 100
    spread = z * math.sqrt(n * p * (1 - p))
    lo, hi = math.floor(n * p - spread), math.ceil(n * p + spread)
    if n == 0 or lo < 1 or hi > n:
        return None
    ordered = sorted(samples)
    return ordered[lo - 1], ordered[hi - 1]


def ratio_interval(top: Sequence[float], bottom: Sequence[float], resamples: int = 2000,
                   seed: int = 0) -> tuple[float, float, float]:
    """median(top) ÷ median(bottom), and its ~95% percentile-bootstrap interval: each side
    resampled with replacement on its own (seeded, so a page renders the same every time). With
    one sample a side the interval is the ratio itself: nothing says how far it could be off."""
    if not top or not bottom:
        raise ValueError("a ratio needs samples on both sides")
    rng = random.Random(seed)
    ratio = statistics.median(top) / statistics.median(bottom)
    if len(top) < 2 and len(bottom) < 2:
        return ratio, ratio, ratio
    draws = sorted(statistics.median(rng.choices(top, k=len(top)))
                   / statistics.median(rng.choices(bottom, k=len(bottom)))
                   for _ in range(resamples))
    return ratio, draws[int(0.025 * resamples)], draws[int(0.975 * resamples) - 1]


def paired_ratio_interval(top: Sequence[float], bottom: Sequence[float], resamples: int = 2000,
                          seed: int = 0) -> tuple[float, float, float]:
    """The median of top[i] ÷ bottom[i] over pairs measured back to back, and its ~95%
    percentile-bootstrap interval, the pairs resampled whole: a drift between rounds moves both
    sides of a pair, so it leaves the ratio, where it widens an interval of two medians."""
    if not top or len(top) != len(bottom):
        raise ValueError(f"a paired ratio needs pairs: {len(top)} against {len(bottom)} samples")
    rng = random.Random(seed)
    ratios = [t / b for t, b in zip(top, bottom)]
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    draws = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return statistics.median(ratios), draws[int(0.025 * resamples)], draws[int(0.975 * resamples) - 1]


MIN_PAIRS = 10
"""A paired ratio over fewer pairs is not shown as a figure: its interval cannot hold."""


def distinguishable(low: float, high: float, at: float = 1.0) -> bool:
    """An interval that does not hold `at`: the ratio is told apart from it."""
    return not low <= at <= high


PHASE_RATIO = 1.25
"""How far apart (the faster ÷ the slower) two groups of rounds must lie to be two phases."""


def two_phases(samples: Sequence[float], ratio: float = PHASE_RATIO
               ) -> tuple[list[float], list[float]] | None:
    """The rounds split in a slow and a fast phase, where they fall so: sorted, the widest step
    between neighbours is at least `ratio` and leaves two rounds or more on each side (a
    neighbour came or went mid-run, a GPU changed clocks). A median of such rounds describes
    neither phase; None where there is no such split."""
    ordered = sorted(samples)
    steps = [(ordered[i + 1] / ordered[i], i) for i in range(len(ordered) - 1) if ordered[i] > 0]
    if not steps:
        return None
    widest, at = max(steps)
    if widest < ratio or at < 1 or len(ordered) - at - 1 < 2:
        return None
    return ordered[:at + 1], ordered[at + 1:]
