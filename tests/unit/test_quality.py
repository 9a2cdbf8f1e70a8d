"""bench/quality.py: the drift figures on cases worked by hand, and bounds that catch a broken
quantization (a scale off by a factor) while passing an honest one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bench.quality import QUALITY_BOUNDS, Bound, cosine_drift, drift, log_softmax


def logits_of(probs: list[float]) -> np.ndarray:
    return np.log(np.asarray(probs))


def test_two_token_case_worked_by_hand() -> None:
    # p = (0.7, 0.3), q = (0.4, 0.6): KL(p||q) = 0.7 ln(0.7/0.4) + 0.3 ln(0.3/0.6)
    reference, engine = logits_of([0.7, 0.3]), logits_of([0.4, 0.6])
    measured = drift(reference, engine)
    expected = 0.7 * math.log(0.7 / 0.4) + 0.3 * math.log(0.3 / 0.6)
    assert measured.kl_mean == pytest.approx(expected, abs=1e-12)  # 0.18380...
    assert measured.kl_p99 == pytest.approx(expected, abs=1e-12)
    assert measured.top1 == 0.0  # the reference's argmax is token 0, the engine's token 1
    assert measured.rms_dp == pytest.approx(0.3, abs=1e-12)  # p(0) 0.7 -> 0.4
    assert measured.positions == 1


def test_several_positions_mean_p99_and_agreement() -> None:
    reference = np.stack([logits_of([0.5, 0.25, 0.25]), logits_of([0.5, 0.25, 0.25]),
                          logits_of([0.1, 0.8, 0.1])])
    engine = np.stack([logits_of([0.5, 0.25, 0.25]), logits_of([0.25, 0.5, 0.25]),
                       logits_of([0.1, 0.8, 0.1])])
    measured = drift(reference, engine)
    middle = 0.5 * math.log(2) + 0.25 * math.log(0.5)  # KL at the one position that moved
    assert measured.kl_mean == pytest.approx(middle / 3, abs=1e-12)
    assert measured.kl_p99 == pytest.approx(middle, abs=1e-12)  # nearest rank: the worst of 3
    assert measured.top1 == pytest.approx(2 / 3)
    assert measured.rms_dp == pytest.approx(math.sqrt(0.25 ** 2 / 3), abs=1e-12)


@given(arrays(np.float64, (4, 16), elements=st.floats(-20, 20)), st.floats(-50, 50))
def test_identical_and_shifted_logits_do_not_drift(logits: np.ndarray, shift: float) -> None:
    """A constant added to every logit is the same distribution: no drift at all."""
    measured = drift(logits, logits + shift)
    assert measured.kl_mean == pytest.approx(0, abs=1e-9)
    assert measured.rms_dp == pytest.approx(0, abs=1e-9)
    assert np.allclose(np.exp(log_softmax(logits)).sum(-1), 1)


def test_a_scale_off_by_a_factor_breaks_the_bound_of_q8_but_not_small_noise() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 3, size=(64, 512))
    honest = reference + rng.normal(0, 0.02, size=reference.shape)  # about 8-bit rounding
    scaled = reference * 0.5  # a dequantization scale off by 2: the same argmax everywhere
    bound = QUALITY_BOUNDS["q8_0"]
    assert bound.violations(drift(reference, honest)) == []
    broken = drift(reference, scaled)
    assert broken.top1 == 1.0  # top-1 alone would not see it
    assert any(v.startswith("kl_mean") for v in bound.violations(broken))


def test_bounds_are_ordered_and_the_violation_names_both_values() -> None:
    assert QUALITY_BOUNDS["q8_0"].kl_mean < QUALITY_BOUNDS["q4_0"].kl_mean
    assert QUALITY_BOUNDS["f16"].kl_mean < QUALITY_BOUNDS["q8_0"].kl_mean
    bound = Bound(kl_mean=0.01, kl_p99=0.1, top1=0.9, rms_dp=0.05)
    measured = drift(logits_of([0.7, 0.3]), logits_of([0.4, 0.6]))
    assert bound.violations(measured) == ["kl_mean 0.1838 > 0.01", "kl_p99 0.1838 > 0.1",
                                          "rms_dp 0.3 > 0.05", "top1 0.000 < 0.900"]


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError, match=r"differ in shape"):
        drift(np.zeros((2, 3)), np.zeros((2, 4)))


def test_embedding_cosine_drift() -> None:
    reference = np.array([[1.0, 0.0], [0.0, 2.0]])
    engine = np.array([[1.0, 1.0], [0.0, 1.0]])
    measured = cosine_drift(reference, engine)
    assert measured["min_cosine"] == pytest.approx(1 / math.sqrt(2))
    assert measured["mean_cosine"] == pytest.approx((1 / math.sqrt(2) + 1) / 2)


def test_nan_logits_cannot_pass_a_gate() -> None:
    """NaN at a few positions leaves kl_mean NaN; `nan > limit` is False, so a gate written that
    way passes it. Every bound, the loosest too, must refuse it."""
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(8, 32))
    engine = reference.copy()
    engine[3] = np.nan
    measured = drift(reference, engine)
    assert math.isnan(measured.kl_mean)
    for name, bound in QUALITY_BOUNDS.items():
        found = bound.violations(measured)
        assert any("kl_mean is nan: the engine's logits are not finite" in v for v in found), name
    assert QUALITY_BOUNDS["none"].violations(drift(reference, reference)) == []


def test_the_kl_interval_resamples_whole_prompts_and_is_reproducible() -> None:
    from bench.quality import bootstrap_interval

    rng = np.random.default_rng(1)
    # 6 prompts of 12 positions; one prompt's positions all far off (they are not independent)
    values = rng.exponential(0.01, 72)
    values[:12] += 0.5
    groups = np.repeat(np.arange(6), 12)
    low, high = bootstrap_interval(values, groups)
    assert low < values.mean() < high
    assert (low, high) == bootstrap_interval(values, groups)  # seeded
    # resampled as 72 independent positions, the interval would be far narrower than it is
    naive_low, naive_high = bootstrap_interval(values, np.arange(72))
    assert high - low > 1.5 * (naive_high - naive_low)
    reference = rng.normal(size=(72, 16))
    measured = drift(reference, reference + rng.normal(scale=0.1, size=(72, 16)), groups=groups)
    assert measured.kl_mean_low <= measured.kl_mean <= measured.kl_mean_high
    assert drift(reference, reference).kl_mean_low is None  # no groups, no interval
