"""How an engine's run-time LoRA adapter is judged (the property lora_adapter): against the
fixture's base weights with the same adapter merged, run in float64 (fixtures/lora.py,
bench/reference_forward.py), greedy and teacher-forced along the reference's own ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.quality import Drift, drift, log_softmax, quality_bound, tolerance
from core.details import LoraFigures
from engines.base import SamplingParams

STEPS = 8
"""Greedy tokens generated after each prompt (fewer where EOS comes first, which ends both)."""
NEAR_TIE = 0.01
"""Where the engine's greedy id first differs from the reference's, the two ids' reference
log-probabilities may differ by at most this (nats): a near tie, which rounding may break."""
EFFECT = 0.01
"""The adapter must move the reference's next-token distributions by at least this mean KL
(nats): an adapter that changes nothing would let an engine that ignores it pass."""


def greedy_reference(weights: dict, config: dict, prompts: list[list[int]], eos: int | None
                     ) -> tuple[list[list[int]], list[list[int]], np.ndarray]:
    """The float64 forward's greedy ids after each prompt (ending with EOS where it takes it),
    the prefixes it saw, and its log-probabilities there (one row per prefix)."""
    from bench.reference_forward import llama_logits

    ids, prefixes, rows = [], [], []
    for prompt in prompts:
        seq = list(prompt)
        while len(seq) - len(prompt) < STEPS and (len(seq) == len(prompt) or seq[-1] != eos):
            row = log_softmax(llama_logits(weights, config, seq))
            prefixes.append(list(seq))
            rows.append(row)
            seq.append(int(row.argmax()))
        ids.append(seq[len(prompt):])
    return ids, prefixes, np.array(rows)


def greedy_ids(engine, prompts: list[list[int]]) -> list[list[int]]:
    """Up to STEPS greedy ids after each prompt, one prompt per call (no padding involved),
    with the EOS that ended a row (engines differ in whether ignore_eos masks it)."""
    rows = []
    for prompt in prompts:
        done = engine.generate_from_ids([prompt], SamplingParams(max_new_tokens=STEPS))[0]
        rows.append([*done.token_ids, *([engine.eos_token_id] if done.finish_reason == "eos" else [])])
    return rows


def id_problems(got: list[list[int]], expected: list[list[int]], logprobs: np.ndarray) -> list[str]:
    """Where the engine's greedy ids leave the reference's other than at a near tie (`logprobs`:
    the reference's rows, prompt after prompt, one per id it took)."""
    problems, start = [], 0
    for p, (row, want) in enumerate(zip(got, expected)):
        t = next((i for i, (a, b) in enumerate(zip(row, want)) if a != b), None)
        step = logprobs[start + t] if t is not None else None
        start += len(want)
        if step is not None and (gap := float(step[want[t]] - step[row[t]])) > NEAR_TIE:
            problems.append(f"prompt {p}: greedy id {row[t]} at position {t} where the merged "
                            f"reference takes {want[t]} ({gap:.3g} nats more likely)")
        elif step is None and len(row) != len(want):
            problems.append(f"prompt {p}: {len(row)} greedy ids where the merged reference "
                            f"takes {len(want)}")
    return problems


def logprob_problems(engine, prompts: list[list[int]], expected: np.ndarray) -> tuple[list[str], float]:
    """An engine without logits: its log-probabilities of the reference's greedy ids, teacher-
    forced one step at a time, against the reference's (within its logprob_tolerance)."""
    params = SamplingParams(max_new_tokens=1, ignore_eos=True, logprobs=1)
    worst, problems = 0.0, []
    for i, prefix in enumerate(prompts):
        step = engine.generate_from_ids([prefix], params)[0]
        token = step.token_ids[0]
        worst = max(worst, abs(step.logprobs[0][token] - float(expected[i][token])))
    tol = tolerance(engine.dtype, "logprob", engine.logprob_tolerance)
    if worst > tol:
        problems.append(f"log-probabilities {worst:.3g} nats from the merged reference's "
                        f"(tolerance {tol}, {engine.dtype})")
    return problems, worst


def along_reference(engine, prefixes: list[list[int]], merged: np.ndarray) -> tuple[dict, list[str]]:
    """The engine teacher-forced along the reference's prefixes: its logits within the
    unquantized bound of the merged reference, else its log-probabilities within tolerance.
    Returns LoraFigures' fields that this measures, and the problems."""
    if not engine.capabilities.logits:
        problems, worst = logprob_problems(engine, prefixes, merged)
        return {"logprob_max_diff": worst}, problems
    logits = np.concatenate([engine.next_token_logits_from_ids([p]) for p in prefixes])
    measured: Drift = drift(merged, logits)
    bound = quality_bound("none", engine.dtype)
    problems = [f"vs the merged reference: {v}" for v in bound.violations(measured)]
    return {"kl_mean": measured.kl_mean, "kl_p99": measured.kl_p99, "top1": measured.top1}, problems


def lora_check(engine, model_dir: Path, prompts: list[list[int]]) -> tuple[LoraFigures, list[str]]:
    """Figures and problems of `engine` with the fixture's adapter set, then removed."""
    from safetensors.numpy import load_file

    from bench.reference_forward import llama_logits
    from fixtures.lora import adapter, merged_weights

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        pytest.skip(f"the LoRA fixture is written for Llama fixtures, not {config.get('model_type')!r}")
    adapter_dir = adapter(model_dir)
    base = load_file(str(model_dir / "model.safetensors"))
    base.setdefault("lm_head.weight", base["model.embed_tokens.weight"])
    expected, prefixes, merged = greedy_reference(merged_weights(model_dir, adapter_dir), config,
                                                  prompts, engine.eos_token_id)
    effect = drift(np.array([llama_logits(base, config, p) for p in prefixes]), merged)
    before = greedy_ids(engine, prompts)
    engine.set_adapter(adapter_dir)
    try:
        problems = id_problems(greedy_ids(engine, prompts), expected, merged)
        measured, more = along_reference(engine, prefixes, merged)
        problems += more
        figures = LoraFigures(positions=len(prefixes), effect_kl_mean=effect.kl_mean, **measured)
    finally:
        engine.set_adapter(None)
    after = greedy_ids(engine, prompts)
    if after != before:
        problems.append("with the adapter removed, greedy ids differ from the engine's own before it")
    if effect.kl_mean < EFFECT:
        problems.append(f"the adapter barely changes the reference (mean KL {effect.kl_mean:.3g} "
                        f"< {EFFECT}): the property could not tell it applied")
    return figures, problems
