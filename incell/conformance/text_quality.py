"""text_quality: the trained model on real text (bench/perplexity.py). Perplexity on the
committed text in llama-perplexity's windows, KL and top-1 agreement against the pinned float32
reference (fixtures/parity.py), and the greedy answers to the committed questions compared with
the reference's, for every engine and quantization; an engine with no log-probabilities at every
position is measured on its answers alone."""

from __future__ import annotations

import json

import pytest

from bench.perplexity import TextScorer, answers_changed, perplexity_problem
from core.details import PropertyFigures, TextFigures
from core.records import to_json
from engines.base import ChatMessage, SamplingParams
from engines.formats.gguf_files import threads
from fixtures.scored_text import ANSWER_TOKENS, TEXT, windows
from incell.conformance import reference as tokenizer
from incell.referee import llama_perplexity


def answer(engine, row: dict) -> str:
    """The engine's greedy answer to one question: from the template's ids where it takes ids,
    else through its own chat path (chat_template_turns holds that to the same ids)."""
    params = SamplingParams(max_new_tokens=ANSWER_TOKENS)
    if engine.capabilities.token_input:
        return engine.generate_from_ids([row["prompt_ids"]], params)[0].text
    return engine.chat([ChatMessage("user", row["question"])], params).text


def referee(engine, figures: TextFigures, text: dict) -> None:
    """llama-perplexity on the engine's own GGUF, the same text and windows, where the cell has
    llama.cpp's tools (compat/llama_tools.py): its figure beside ours."""
    gguf = engine.weights.file
    if gguf is None or gguf.suffix != ".gguf":
        return
    found = llama_perplexity(gguf, TEXT, text["n_ctx"], text["chunks"], threads())
    if found is not None:
        figures.tool_perplexity, figures.tool_perplexity_pm, figures.tool_command = found


def test_text_quality(engine, model_dir, fixture_name: str, record_property) -> None:
    """On the trained model: perplexity, KL and top-1 on the scored text against the float32
    reference, within the quantization's bound (PERPLEXITY_BOUNDS), then the answers that
    changed (not asked where the perplexity already failed)."""
    from fixtures.parity import load_reference

    ref = load_reference(fixture_name)
    if "text" not in ref:
        pytest.skip("this fixture's reference keeps no scored text")
    figures = TextFigures(quantization=engine.quantization, answers=len(ref["answers"]))
    problem, score = None, None
    if engine.capabilities.prompt_log_probs:
        scorer = TextScorer(ref["text"]["windows"])
        ids = tokenizer.encode(model_dir, TEXT.read_text(encoding="utf-8"))
        for window in windows(ids, ref["text"]["n_ctx"], ref["text"]["chunks"]):
            scorer.add(window, engine.prompt_log_probs(window))
        score = scorer.score()
        for name, value in score.to_json().items():
            setattr(figures, name, value)
        problem = perplexity_problem(score, engine.quantization, engine.dtype)
        referee(engine, figures, ref["text"])
    else:
        figures.no_perplexity = (f"{engine.id} gives no log-probabilities at every position "
                                 "(capability prompt_log_probs)")
    if problem is None:  # a perplexity beyond its bound fails at once: no answers asked
        figures.changed = answers_changed(ref["answers"], [answer(engine, r) for r in ref["answers"]])
        figures.answers_same = figures.answers - len(figures.changed)
    record_property("figures", json.dumps(to_json(PropertyFigures(text=figures))))
    record_property("note", f"{engine.quantization}: "
                    + (score.describe() if score else figures.no_perplexity)
                    + ("" if problem else f"; answers: {figures.answers_same} of "
                       f"{figures.answers} the reference's"))
    assert problem is None, problem
