"""How greedy parity, log-probabilities and quantization quality are judged against the pinned
reference (fixtures/parity.py): the helpers of the properties greedy_parity, logprobs and
quantization_quality."""

from __future__ import annotations

import numpy as np
import pytest

from bench.quality import Drift, drift
from core.details import PropertyFigures, QualityFigures
from engines.base import SamplingParams


def unquantized_only(engine) -> None:
    """Exact parity with the float32 reference is asked of unquantized weights only; a
    quantization's distance from it is quantization_quality's to judge, against its bound."""
    if engine.quantization != "none":
        pytest.skip(f"quantized ({engine.quantization}): parity is asked of unquantized weights; "
                    "a quantization's distance from the reference is quantization_quality's")


def teacher_forced_drift(engine, reference: dict
                         ) -> tuple[Drift, tuple[Drift, Drift] | None] | None:
    """The engine's next-token logits after the prompt and each prefix of the reference's greedy
    ids, against the reference's whole distributions there; None where it keeps none. Second,
    where the engine can hand its weights over dequantized (`dequantized_weights`), the same
    logits against those weights run through a float64 forward pass (bench/reference_forward):
    the engine's kernels' own error, and the dequantized weights' against the reference: the
    quantization's own, apart from the kernels'."""
    rows = [r for r in reference["prompts"] if r.get("logprobs")]
    if not rows:
        return None
    prefixes = [[*r["prompt_ids"], *r["ids"][:t]] for r in rows for t in range(len(r["logprobs"]))]
    expected = np.array([step for r in rows for step in r["logprobs"]])
    groups = np.array([i for i, r in enumerate(rows) for _ in r["logprobs"]])
    got = np.concatenate([engine.next_token_logits_from_ids([ids]).copy() for ids in prefixes])
    kernels = None
    if engine.quantization != "none" and hasattr(engine, "dequantized_weights"):
        from bench.reference_forward import llama_logits

        weights, config = engine.dequantized_weights()
        exact = np.array([llama_logits(weights, config, ids) for ids in prefixes])
        kernels = drift(exact, got, groups=groups), drift(expected, exact, groups=groups)
    return drift(expected, got, groups=groups), kernels


def engine_top_k(engine, prompt_ids: list[int], k: int) -> list[int] | None:
    """The engine's k most likely next ids after `prompt_ids`: from its logits, else from its
    log-probabilities (vLLM offers those, not logits); None when it offers neither."""
    if engine.capabilities.logits:
        logits = engine.next_token_logits_from_ids([prompt_ids])[0]
        return [int(t) for t in np.argsort(-logits, kind="stable")[:k]]
    if engine.capabilities.logprobs and engine.capabilities.token_input:
        params = SamplingParams(max_new_tokens=1, ignore_eos=True, logprobs=k)
        step = engine.generate_from_ids([prompt_ids], params)[0].logprobs[0]
        return sorted(step, key=step.get, reverse=True)[:k]
    return None


def parity_failure(i: int, ref: dict, got: list[int], engine, prompt_ids: list[int]) -> str | None:
    """Why `got` breaks greedy parity with the reference row `ref`, or None if it holds.

    Equal ids pass. Otherwise, at the first divergence, each side's token must be in the
    other's top-k (k = the engine's parity_top_k), and the lengths must match.
    """
    want, k = list(ref["ids"]), engine.parity_top_k
    if got == want:
        return None
    pos = next((p for p, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
    if pos >= min(len(want), len(got)):
        return (f"prompt {i}: lengths differ ({len(got)} vs the reference's {len(want)}) "
                f"with equal ids up to position {pos}")
    where = (f"prompt {i}: first divergence at position {pos}: reference token {want[pos]}, "
             f"{engine.id} token {got[pos]}")
    if got[pos] not in ref["top_k"][pos][:k]:
        return f"{where}; {got[pos]} is not in the reference's top-{k} {ref['top_k'][pos][:k]}"
    top = engine_top_k(engine, prompt_ids + got[:pos], k)
    if top is not None and want[pos] not in top:
        return f"{where}; {want[pos]} is not in {engine.id}'s top-{k} {top}"
    if len(got) != len(want):
        return f"{where}; lengths differ ({len(got)} vs the reference's {len(want)})"
    return None


def completed(engine, reference: dict, params: SamplingParams, problems: list[str]):
    """(index, reference row, completion) for each reference prompt the engine completed; why
    it could not, appended to `problems`, for the others."""
    for i, ref in enumerate(reference["prompts"]):
        completion = complete_reference_prompt(engine, ref, params)
        if isinstance(completion, str):
            problems.append(f"prompt {i}: {completion}")
        else:
            yield i, ref, completion


def parity_problems(engine, reference: dict) -> tuple[list[str], int]:
    """Each reference prompt completed greedily: why parity fails where it does, and how many
    prompts diverged (within top-k) from the reference's ids."""
    problems, diverged = [], 0
    params = SamplingParams(max_new_tokens=reference["max_new_tokens"])
    for i, ref, completion in completed(engine, reference, params, problems):
        got = list(completion.token_ids)
        diverged += got != list(ref["ids"])
        problem = parity_failure(i, ref, got, engine, list(ref["prompt_ids"]))
        if problem:
            problems.append(problem)
    return problems, diverged


def complete_reference_prompt(engine, ref: dict, params: SamplingParams):
    """The engine's completion of a reference prompt, fed the reference's own prompt ids: as text
    where the engine tokenizes it the same way, else as ids. A str says why it cannot be given."""
    prompt_ids = list(ref["prompt_ids"])
    if engine.tokenize(ref["text"]) == prompt_ids:
        return engine.generate([ref["text"]], params)[0]
    if engine.capabilities.token_input:  # tokenization is its own property
        return engine.generate_from_ids([prompt_ids], params)[0]
    return (f"{engine.id} tokenizes {ref['text']!r} differently and takes no token ids, so the "
            "same input cannot be given")


def logprob_problems(step: dict[int, float], token: int, n: int, tol: float) -> list[str]:
    """What is wrong with one greedy step's {id: log-probability}, judged on its own."""
    problems = []
    if token not in step:
        problems.append(f"the generated token {token} is missing")
    if not n <= len(step) <= n + 1:
        problems.append(f"{len(step)} entries for logprobs={n} (want the top {n}, plus the token)")
    values = np.array(list(step.values()), dtype=np.float64)
    if not np.isfinite(values).all() or values.max() > 1e-6:
        problems.append(f"values are not log-probabilities (finite, <= 0): max {values.max():.4g}")
    elif np.log(np.exp(values).sum()) > tol:
        problems.append(f"probabilities sum to {np.exp(values).sum():.6f} > 1: not a log-softmax")
    if token in step and step[token] < values.max() - tol:
        best = max(step, key=step.get)
        problems.append(f"greedy token {token} ({step[token]:.4f}) is not the most likely "
                        f"({best}: {step[best]:.4f})")
    return problems


def reference_problems(step: dict[int, float], ids: list[int], values: list[float], n: int,
                       tol: float) -> tuple[list[str], float]:
    """How one step differs from the reference's top ids and log-probabilities; the worst |Δ|."""
    ref = dict(zip(ids, values))
    problems, worst = [], 0.0
    for token, value in step.items():
        if token in ref:
            worst = max(worst, abs(value - ref[token]))
            if abs(value - ref[token]) > tol:
                problems.append(f"token {token}: {value:.5f} vs the reference's {ref[token]:.5f}")
        elif value > min(values) + tol:
            problems.append(f"token {token} ({value:.4f}) is not in the reference's top-{len(ids)} "
                            f"(lowest {min(values):.4f})")
    floor = min(sorted(step.values(), reverse=True)[:n])
    missed = [t for t, v in list(ref.items())[:n] if t not in step and v > floor + tol]
    if missed:
        problems.append(f"the reference's top-{n} ids {missed} are missing")
    return problems, worst


def quality_record(engine, measured: Drift, kernels: tuple[Drift, Drift] | None
                   ) -> tuple[PropertyFigures, str]:
    """quantization_quality's figures and its one-line note."""
    figures = QualityFigures(quantization=engine.quantization, weights_bytes=engine.weights.bytes,
                             **measured.to_json())
    note = f"{engine.quantization}: {measured.describe()}"
    if kernels is not None:  # the engine against its own weights, and those against float32
        figures.kernel_kl_mean, figures.kernel_kl_p99 = kernels[0].kl_mean, kernels[0].kl_p99
        figures.weights_kl_mean = kernels[1].kl_mean
        note += (f"; its weights dequantized: KL mean {kernels[1].kl_mean:.2e} from float32, "
                 f"the engine {kernels[0].kl_mean:.2e} from them")
    return PropertyFigures(quality=figures), note


def logprobs_against(engine, reference: dict, n: int, tol: float) -> tuple[list[str], float, int]:
    """Generate each reference prompt with logprobs=n: the problems found (each step a valid
    log-softmax, and equal to the reference's within `tol` while the ids agree), the largest
    difference from the reference, and the number of steps compared."""
    params = SamplingParams(max_new_tokens=reference["max_new_tokens"], logprobs=n)
    problems, worst, steps = [], 0.0, 0
    for i, ref, completion in completed(engine, reference, params, problems):
        got = list(completion.token_ids)
        if completion.logprobs is None or len(completion.logprobs) != len(got):
            count = None if completion.logprobs is None else len(completion.logprobs)
            problems.append(f"prompt {i}: {count} log-probability steps for {len(got)} tokens")
            continue
        for pos, (token, step) in enumerate(zip(got, completion.logprobs)):
            found = logprob_problems(step, token, n, tol)
            if pos < len(ref["top_logprobs"]) and got[:pos] == list(ref["ids"][:pos]):
                against, diff = reference_problems(step, ref["top_k"][pos], ref["top_logprobs"][pos],
                                                   n, tol)
                found += against
                worst, steps = max(worst, diff), steps + 1
            problems += [f"prompt {i}, position {pos}: {p}" for p in found]
    return problems, worst, steps
