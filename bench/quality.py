"""How far an engine's output drifts from the unquantized reference: one module for every engine.

From full logits at the same positions (the reference's greedy continuation, teacher-forced):
per position, the KL divergence KL(reference || engine) of the next-token distributions, whether
the most likely token agrees, and the change in the probability of the reference's own token;
summarised as mean and p99 KL, top-1 agreement and the RMS of that change (the figures
llama.cpp's perplexity tool prints for one engine, here for every engine on the same weights).
For embeddings: the cosine of each vector to the float32 one.

Each quantization declares the bound it is held to (QUALITY_BOUNDS): Q8_0 far tighter than Q4_0.
Pure numpy, no engine: the suites and the report import it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64 (the reference and the engine compared at one precision)."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@dataclass(frozen=True)
class Drift:
    """The distance of an engine's next-token distributions from the reference's."""

    positions: int
    kl_mean: float
    """Mean over positions of KL(reference || engine), in nats."""
    kl_p99: float
    """99th percentile of the per-position KL (nearest rank, so a single bad position shows)."""
    top1: float
    """Fraction of positions where the engine's most likely token is the reference's."""
    rms_dp: float
    """RMS over positions of p_reference(t) - p_engine(t), t the reference's own next token."""
    kl_mean_low: float | None = None
    """95% bootstrap interval of kl_mean over prompts (resampling whole prompts, whose positions
    are not independent): two formats whose intervals overlap cannot be told apart here."""
    kl_mean_high: float | None = None

    def to_json(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        interval = (f" [{self.kl_mean_low:.2e}, {self.kl_mean_high:.2e}]"
                    if self.kl_mean_low is not None else "")
        return (f"KL mean {self.kl_mean:.2e}{interval} p99 {self.kl_p99:.2e} nats, top-1 "
                f"{self.top1:.1%}, RMS Δp {self.rms_dp:.2e} over {self.positions} positions")


BOOTSTRAP_ROUNDS = 2000


def bootstrap_interval(values: np.ndarray, groups: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of `values`, resampling whole groups (prompts) with
    replacement, seeded: the same figures give the same interval."""
    labels, index = np.unique(groups, return_inverse=True)
    sums = np.bincount(index, weights=values, minlength=len(labels))
    counts = np.bincount(index, minlength=len(labels))
    picks = np.random.default_rng(seed).integers(0, len(labels), (BOOTSTRAP_ROUNDS, len(labels)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def drift(reference: np.ndarray, engine: np.ndarray, tokens: np.ndarray | None = None,
          groups: np.ndarray | None = None) -> Drift:
    """Compare (positions, vocab) logits. `tokens`: the reference's next token at each position
    (default: its argmax, which is what a greedy reference continued with). `groups`: the prompt
    of each position, for the bootstrap interval of kl_mean (none without it)."""
    ref, eng = np.atleast_2d(reference), np.atleast_2d(engine)
    if ref.shape != eng.shape:
        raise ValueError(f"reference logits {ref.shape} and engine logits {eng.shape} differ in "
                         "shape: compare the same positions over the same vocabulary")
    log_p, log_q = log_softmax(ref), log_softmax(eng)
    p = np.exp(log_p)
    kl = np.maximum((p * (log_p - log_q)).sum(axis=-1), 0.0)  # >= 0; rounding may dip below
    chosen = ref.argmax(axis=-1) if tokens is None else np.asarray(tokens)
    rows = np.arange(len(ref))
    dp = p[rows, chosen] - np.exp(log_q[rows, chosen])
    rank = max(int(np.ceil(0.99 * len(kl))) - 1, 0)
    low = high = None
    if groups is not None and np.isfinite(kl).all():
        low, high = bootstrap_interval(kl, np.asarray(groups))
    return Drift(positions=len(kl), kl_mean=float(kl.mean()), kl_p99=float(np.sort(kl)[rank]),
                 top1=float((ref.argmax(-1) == eng.argmax(-1)).mean()),
                 rms_dp=float(np.sqrt((dp ** 2).mean())), kl_mean_low=low, kl_mean_high=high)


@dataclass(frozen=True)
class Bound:
    """What a quantization is allowed to cost, on the small-llama fixture."""

    kl_mean: float
    kl_p99: float
    top1: float
    """The least top-1 agreement accepted."""
    rms_dp: float

    def violations(self, measured: Drift) -> list[str]:
        """Each figure beyond its bound, named with both values; empty when within. A figure
        that is not a number (NaN or infinite logits at some position) is beyond every bound:
        `nan > limit` is False, and such a gate would pass anything."""
        out = []
        for name, limit in (("kl_mean", self.kl_mean), ("kl_p99", self.kl_p99),
                            ("rms_dp", self.rms_dp), ("top1", self.top1)):
            value = getattr(measured, name)
            if not math.isfinite(value):
                out.append(f"{name} is {value}: the engine's logits are not finite everywhere")
            elif name == "top1" and value < limit:
                out.append(f"top1 {value:.3f} < {limit:.3f}")
            elif name != "top1" and value > limit:
                out.append(f"{name} {value:.4g} > {limit:.4g}")
        return out


def cosine_drift(reference: np.ndarray, engine: np.ndarray) -> dict[str, float]:
    """Embeddings: the cosine of each engine vector to its float32 reference (mean and least)."""
    ref, eng = np.asarray(reference, np.float64), np.asarray(engine, np.float64)
    if ref.shape != eng.shape:
        raise ValueError(f"reference vectors {ref.shape} and engine vectors {eng.shape} differ "
                         "in shape")
    cos = (ref * eng).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(eng, axis=-1))
    return {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())}


W4 = Bound(kl_mean=0.4, kl_p99=2.5, top1=0.6, rms_dp=0.3)
"""4-bit weights in groups of 32 to 128 with a scale (and zero point) each."""

QUALITY_BOUNDS: dict[str, Bound] = {
    # "none": the engine's own float32 path against transformers' (kernel order, a float16 KV
    # cache in llama.cpp: measured up to 9e-7 nats mean KL on small-llama)
    "none": Bound(kl_mean=1e-4, kl_p99=1e-3, top1=0.98, rms_dp=0.005),
    "f16": Bound(kl_mean=1e-4, kl_p99=1e-3, top1=0.98, rms_dp=0.005),
    # 8 bits in blocks of 32 with a scale each (GGUF Q8_0): measured 3.1e-3 mean KL
    "q8_0": Bound(kl_mean=0.01, kl_p99=0.05, top1=0.9, rms_dp=0.04),
    # int8 weights with int8 activations: one scale per weight row (CTranslate2, measured 7.1e-3
    # mean KL) or, in ONNX Runtime's dynamic preset, one per tensor (measured 0.016 mean, 0.13
    # p99, top-1 93.8%): coarser than Q8_0's blocks of 32
    "int8": Bound(kl_mean=0.03, kl_p99=0.2, top1=0.9, rms_dp=0.08),
    "int8_float32": Bound(kl_mean=0.02, kl_p99=0.1, top1=0.9, rms_dp=0.06),
    # bitsandbytes' LLM.int8(): int8 rows, outlier columns and the activations in float16
    "llm_int8": Bound(kl_mean=0.02, kl_p99=0.1, top1=0.9, rms_dp=0.06),
    # 4 bits: two orders of magnitude beyond 8 bits on small-llama, whose random weights give
    # logits spread about 8 (quantization noise grows with them). Measured mean / p99 KL, top-1:
    # Q4_K_M 0.25 / 1.2 / 76%, onnxruntime-genai int4 (blocks of 32) 0.28 / 1.2 / 73%, OpenVINO
    # int4 (groups of 128) 0.31 / 2.1 / 74%, vLLM AWQ / GPTQ (groups of 128, rounded to nearest)
    # 0.31 / 1.7 / 75% and 0.33 / 1.7 / 71%, Q4_0 0.44 / 2.3 / 65%, bitsandbytes NF4 (blocks of
    # 64) 0.56 / 3.5 / 65%; the bounds leave a margin above the first measurement, as
    # regression gates
    "q4_k_m": Bound(kl_mean=0.35, kl_p99=1.8, top1=0.65, rms_dp=0.3),
    "int4": W4,
    "awq": W4,
    "gptq": W4,
    "q4_0": Bound(kl_mean=0.6, kl_p99=3.0, top1=0.55, rms_dp=0.4),
    "nf4": Bound(kl_mean=0.7, kl_p99=4.0, top1=0.55, rms_dp=0.4),
}
"""What each quantization may cost on small-llama; a value beyond its bound fails the cell."""

UNIT_ROUNDOFF = {"float32": 2.0**-24, "bfloat16": 2.0**-8, "float16": 2.0**-11}
"""Half the spacing of the dtype's numbers near 1: its relative rounding error."""
REDUCED_PRECISION = {"logits": 128, "logprob": 128, "embedding": 4, "norm": 4, "cosine": 1 / 8}
"""Each comparison's tolerance for an engine computing in a reduced dtype, as a multiple of the
dtype's unit roundoff (bfloat16: 2^-8): logits summed over many products, in kernels whose order
changes with the batch and the padding, differ by tens of roundoffs (an H200 in bfloat16: 0.22
between a prompt alone and left-padded, where float32 stays below 1e-4), and a log-probability
against the float32 reference's by as much (0.28 nats for a token 9.5 nats down, on this CPU);
one rounding of each
element moves an embedding and its norm by a few; the cosine of two such vectors by a fraction
of one."""


def tolerance(dtype: str, check: str, float32: float) -> float:
    """The tolerance of a comparison stated for float32 (`float32`), for an engine computing in
    `dtype`: the float32 figure, or the stated multiple of the dtype's unit roundoff where that is
    wider (REDUCED_PRECISION). A float32 engine is held to exactly what each check states."""
    if dtype not in UNIT_ROUNDOFF:
        raise ValueError(f"dtype {dtype!r} is not one of {tuple(UNIT_ROUNDOFF)}")
    return max(float32, REDUCED_PRECISION[check] * UNIT_ROUNDOFF[dtype])


def quality_bound(quantization: str, dtype: str = "float32") -> Bound:
    """What `quantization` may cost an engine computing in `dtype`. Unquantized in a reduced dtype
    the weights and activations are rounded to it: mean KL up to one unit roundoff, its p99 and
    RMS Δp up to 8 (bfloat16: 3.9e-3 and 3.1e-2), top-1 at least 95%."""
    if quantization != "none" or dtype == "float32":
        return QUALITY_BOUNDS[quantization]
    eps = UNIT_ROUNDOFF[dtype]
    return Bound(kl_mean=eps, kl_p99=8 * eps, top1=0.95, rms_dp=8 * eps)


KERNEL_BOUND = Bound(kl_mean=0.01, kl_p99=0.1, top1=0.9, rms_dp=0.05)
"""An engine against its own weights dequantized, run through a float64 forward pass: what its
kernels may add (8-bit activations in the dot products, a float16 KV cache). Measured on
small-llama with llama.cpp: mean KL 4e-6 (F16), 1.8e-3 (Q8_0), 2.1e-3 (Q4_0), 5.6e-3 (Q4_K_M),
while the dequantized weights alone sit 1.6e-3 (Q8_0) to 0.43 (Q4_0) from float32. A kernel bug
(a scale off, a wrong block layout) shows here, apart from the quantization's own loss."""

COSINE_BOUNDS: dict[str, tuple[float, float]] = {
    # quantization -> (least cosine to the float32 vector, largest drift of the model card's
    # known similarity), on the real all-MiniLM-L6-v2
    "none": (0.9999, 0.001),
    "int8": (0.98, 0.02),
    # 4 bits in groups of 128 (OpenVINO's NNCF): measured least cosine 0.956, similarity 0.0026 off
    "int4": (0.94, 0.02),
}
"""What each quantization of an embedder may cost."""
