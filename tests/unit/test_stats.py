"""bench/stats.py: statistics from raw samples."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.stats import PHASE_RATIO, percentile, summarize, two_phases


def test_summary_of_known_samples() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (s.median, s.min, s.max, s.n) == (3.0, 1.0, 5.0, 5)
    assert s.p90 == pytest.approx(4.6)
    assert s.cv == pytest.approx(statistics.stdev([1, 2, 3, 4, 5]) / 3)


def test_no_samples_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        summarize([])


@given(st.lists(st.floats(0.001, 1e6), min_size=1, max_size=50))
def test_percentiles_are_ordered_and_bounded(samples: list[float]) -> None:
    s = summarize(samples)
    assert s.min <= s.median <= s.p90 <= s.p99 <= s.max
    assert percentile(samples, 0) == min(samples) and percentile(samples, 100) == max(samples)


def test_a_paired_ratio_leaves_out_the_drift_that_moves_both_sides() -> None:
    """Rounds whose speed drifts 2x across the run, the quantized side always 1.5x the float
    one: two medians apart (ratio_interval) give a wide interval holding 1; the pairs' ratio is
    1.5 exactly, and a mismatched pairing is refused."""
    from bench.stats import distinguishable, paired_ratio_interval, ratio_interval

    drift = [1.0, 1.2, 1.5, 1.8, 2.0, 0.9]
    quantized, float_ = [150 * d for d in drift], [100 * d for d in drift]
    assert paired_ratio_interval(quantized, float_) == pytest.approx((1.5, 1.5, 1.5))
    _, low, high = ratio_interval(quantized, float_)
    assert not distinguishable(low, high)
    with pytest.raises(ValueError, match="a paired ratio needs pairs: 6 against 5"):
        paired_ratio_interval(quantized, float_[:5])


def test_every_metric_is_named_once_and_find_refuses_a_name_that_is_none() -> None:
    """bench/metrics.py defines each metric; core/bench_details spells each name once, and a
    lookup by a misspelt name is an error naming the nearest, never a silent "not measured"."""
    from bench.metrics import METRICS
    from core.bench_details import DECODE_TOKENS_PER_S, METRIC_NAMES, BenchDetail

    assert set(METRICS) == METRIC_NAMES
    detail = BenchDetail(fixture="tiny-llama", metrics=[])
    assert detail.find(DECODE_TOKENS_PER_S, batch=1) is None  # known, not measured
    with pytest.raises(ValueError, match=r"Unknown metric 'decode_token_per_s'. Did you mean "
                                         r"'decode_tokens_per_s'\?"):
        detail.find("decode_token_per_s")


def test_rounds_in_a_slow_and_a_fast_phase_are_told_apart() -> None:
    """The H200 row's batch-1 decode (29.8, 29.1, 35.8, 49.0, 46.6 tok/s) and ONNX Runtime's on
    the CPU (10.6 ... 23.6): two phases, no median of them holds. A spread that is one phase
    (the same row's steady toy cell, CV 2%) or a lone outlier is not two phases."""
    assert two_phases([29.8, 29.1, 35.8, 49.0, 46.6]) == ([29.1, 29.8, 35.8], [46.6, 49.0])
    assert two_phases([10.6, 11.4, 20.4, 22.2, 23.6]) == ([10.6, 11.4], [20.4, 22.2, 23.6])
    assert two_phases([191.1, 194.6, 198.4, 200.2, 196.4, 201.1, 191.5]) is None
    assert two_phases([100.0, 101.0, 99.0, 100.5, 160.0]) is None  # one round alone
    assert two_phases([]) is None and two_phases([5.0]) is None


@given(st.lists(st.floats(1.0, 1e4), min_size=4, max_size=20))
def test_two_phases_split_at_a_step_of_at_least_the_ratio(samples: list[float]) -> None:
    split = two_phases(samples)
    if split is not None:
        slow, fast = split
        assert sorted(samples) == slow + fast and len(slow) >= 2 and len(fast) >= 2
        assert fast[0] / slow[-1] >= PHASE_RATIO
