"""bench/perplexity.py and fixtures/scored_text.py: the windows llama-perplexity scores, perplexity
worked by hand, the coarse KL never above the whole-vocabulary KL, a missing distribution giving
no KL (never a wrong one), the bound that catches a broken kernel; and QUANTIZATION.md's section."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.perplexity import TextScorer, answers_changed, coarse_kl, perplexity_problem
from bench.quality import drift, log_softmax
from fixtures.scored_text import FIRST, N_CTX, questions, reference_window, windows


def test_windows_are_llama_perplexitys_consecutive_chunks_and_a_short_text_is_named() -> None:
    ids = list(range(5 * N_CTX + 7))
    cut = windows(ids, chunks=5)
    assert [w[0] for w in cut] == [0, N_CTX, 2 * N_CTX, 3 * N_CTX, 4 * N_CTX]
    assert all(len(w) == N_CTX for w in cut)
    with pytest.raises(ValueError, match="has 300 ids; 2 windows of 256 need 512"):
        windows(list(range(300)), chunks=2)


def test_the_committed_questions_are_twenty_to_fifty() -> None:
    assert 20 <= len(questions()) <= 50


def test_perplexity_is_exp_of_the_mean_nll_over_the_second_half_of_each_window() -> None:
    """A uniform engine over a vocabulary of 8: every scored id costs ln 8, perplexity 8; the
    reference's own rows score 0 KL and full top-1 agreement."""
    vocab, window = 8, [i % 8 for i in range(N_CTX)]
    uniform = np.full((N_CTX, vocab), -math.log(vocab))
    rng = np.random.default_rng(0)
    peaked = log_softmax(rng.normal(0, 3, (N_CTX, vocab)))
    scorer = TextScorer([reference_window(peaked, window, k=4)] * 2)
    scorer.add(window, peaked)
    scorer.add(window, peaked)
    score = scorer.score()
    assert score.positions == 2 * (N_CTX - 1 - FIRST) and score.windows == 2
    assert score.perplexity == pytest.approx(score.reference_perplexity)
    assert score.kl_mean == pytest.approx(0, abs=1e-12) and score.top1 == 1.0
    flat = TextScorer()
    flat.add(window, uniform)
    assert flat.score().perplexity == pytest.approx(vocab)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 15))
def test_the_coarse_kl_never_exceeds_the_whole_vocabulary_kl(seed: int, k: int) -> None:
    """The reference's top k ids and the rest as one outcome: a partition, so by the data
    processing inequality never above the KL over all 16 ids, and equal to it at k = 16 - 1."""
    rng = np.random.default_rng(seed)
    ref, eng = rng.normal(0, 2, (6, 16)), rng.normal(0, 2, (6, 16))
    ref_lp, eng_lp = log_softmax(ref), log_softmax(eng)
    top = np.argsort(-ref_lp, axis=-1)[:, :k]
    coarse = coarse_kl(np.take_along_axis(ref_lp, top, -1), top, eng_lp)
    whole = np.array([drift(ref[i], eng[i]).kl_mean for i in range(6)])
    assert (coarse <= whole + 1e-12).all() and (coarse >= 0).all()
    if k == 15:
        assert coarse == pytest.approx(whole, abs=1e-9)


def test_rows_with_only_some_ids_give_perplexity_and_top1_but_no_kl() -> None:
    """vLLM's prompt_logprobs=1: the text's id and the most likely id, the rest -inf."""
    vocab, window = 8, [i % 8 for i in range(N_CTX)]
    full = log_softmax(np.random.default_rng(1).normal(0, 3, (N_CTX, vocab)))
    partial = np.full_like(full, -np.inf)
    rows = np.arange(N_CTX - 1)
    partial[rows, window[1:]] = full[rows, window[1:]]
    partial[rows, full[:-1].argmax(-1)] = full[:-1].max(-1)
    both = []
    for rows_given in (full, partial):
        scorer = TextScorer([reference_window(full, window, k=4)])
        scorer.add(window, rows_given)
        both.append(scorer.score())
    assert both[1].perplexity == pytest.approx(both[0].perplexity)
    assert both[1].top1 == both[0].top1 == 1.0
    assert both[0].kl_mean is not None and both[1].kl_mean is None


def test_the_bound_catches_a_broken_kernel_and_passes_an_honest_quantization() -> None:
    from bench.perplexity import TextScore

    def score(ppl: float) -> TextScore:
        return TextScore(positions=1, windows=1, perplexity=ppl, perplexity_low=ppl,
                         perplexity_high=ppl, reference_perplexity=46.0)

    assert perplexity_problem(score(47.9), "q4_k_m") is None
    assert "beyond 1.5x (q4_k_m" in perplexity_problem(score(92.0), "q4_k_m")
    assert "beyond 1.02x (none" in perplexity_problem(score(47.9), "none")
    assert perplexity_problem(score(47.9), "none", "bfloat16") is None  # held to 8 bits
    assert perplexity_problem(score(float("nan")), "q8_0") is not None


def test_an_answer_changed_is_named_with_both_texts() -> None:
    reference = [{"question": "Q1", "text": "Paris."}, {"question": "Q2", "text": "Tokyo."}]
    assert answers_changed(reference, ["Paris. ", "Kyoto."]) == [
        {"question": "Q2", "reference": "Tokyo.", "engine": "Kyoto."}]
