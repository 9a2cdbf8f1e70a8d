"""The generation properties only a trained model can test (core/properties.TRAINED_MODEL): its
tokenizer on real text, special tokens inside text, the chat template's turns, greedy parity
with the margin where a continuation departs, EOS and stop strings on real answers, whole
UTF-8 characters in a stream. They run on the trained fixture only (conftest); the generation
suite (test_generation.py) takes them in, so that a cell runs them with the others.
"""

from __future__ import annotations

import json

import pytest

from bench.quality import tolerance
from engines.base import ChatMessage, SamplingParams
from fixtures.corpora import real_text
from incell.conformance import reference
from incell.conformance.compare import check_ids_equal, check_prompt_fed
from incell.conformance.parity import (
    completed,
    unquantized_only,
)
from incell.conformance.plumbing import requires


def own_tokenizer(engine) -> None:
    if engine.tokenizer_is_reference:
        pytest.skip("tokenize() is tokenizer.json itself here (no tokenize endpoint): nothing of "
                    "the engine's to compare; its chat prompts are held by chat_template_turns")


def test_tokenizer_real_text(engine, model_dir, record_property) -> None:
    """On the trained model, every sample of the real-text corpus (fixtures/real_text: prose,
    code with tabs, runs of spaces and newlines, digits, emoji with joiners, CJK, accented and
    right-to-left scripts): the engine's own tokenizer gives tokenizer.json's ids, and those ids
    decode back to the text. Special-token strings are special_tokens_in_text's."""
    own_tokenizer(engine)
    samples = [s for s in real_text() if s.kind != "specials"]
    problems, tokens = [], 0
    for sample in samples:
        expected = reference.encode(model_dir, sample.text)
        tokens += len(expected)
        try:
            check_ids_equal(a=[engine.tokenize(sample.text)], b=[expected], name_a=engine.id,
                            name_b="tokenizer.json")
        except AssertionError as exc:
            problems.append(f"{sample.kind} ({sample.source}): {exc}")
        if reference.decode(model_dir, expected) != sample.text:
            problems.append(f"{sample.kind}: tokenizer.json does not decode its ids back")
    record_property("note", f"{len(samples) - len(problems)}/{len(samples)} real-text samples "
                            f"token-exact ({tokens} tokens)")
    assert not problems, "\n".join(problems)


def test_special_tokens_in_text(engine, model_dir, record_property) -> None:
    """Special-token strings typed in user text (<|im_end|>, <|im_start|>, <|endoftext|>) are a
    mode, not a bug: the engine's tokenize() either parses them as the special tokens or keeps
    them as text, and its ids equal the reference's in that mode; the note names the mode. An
    engine that parses them lets a user message end its own turn (prompt injection)."""
    own_tokenizer(engine)
    text = next(s.text for s in real_text() if s.kind == "specials")
    parsed, as_text = reference.encode(model_dir, text), reference.encode_as_text(model_dir, text)
    assert parsed != as_text, "the sample holds no special-token string of this tokenizer"
    got = engine.tokenize(text)
    modes = {"parses them as special tokens (a user message can end its turn: prompt injection "
             "unless the caller escapes them)": parsed, "keeps them as text": as_text}
    mode = next((name for name, ids in modes.items() if got == ids), None)
    if mode is None:
        first = next((i for i, (a, b) in enumerate(zip(got, parsed)) if a != b), len(got))
        raise AssertionError(f"neither mode: {engine.id} gave {got[max(0, first - 2):first + 6]} "
                             f"at position {first}, where parsing gives "
                             f"{parsed[max(0, first - 2):first + 6]} and keeping them as text "
                             f"{as_text[max(0, first - 2):first + 6]}")
    record_property("note", f"special-token strings in text: tokenize() {mode}")


CHAT_TURNS = {
    "a system turn": [ChatMessage("system", "You are a terse assistant."),
                      ChatMessage("user", "Name a prime number.")],
    "no system turn (the template's own default)": [
        ChatMessage("user", "What is the capital of France?")],
    "several turns": [ChatMessage("system", "Answer in one word."), ChatMessage("user", "Hi!"),
                      ChatMessage("assistant", "Hello."), ChatMessage("user", "Count to three.")],
}


def test_chat_template_turns(engine, model_dir, record_property) -> None:
    """On the trained model (its own template: SmolLM2's writes a default system turn where the
    messages have none), the engine's chat path feeds exactly the template's ids (jinja2 +
    tokenizer.json, with the generation prompt) for each conversation in CHAT_TURNS; a doubled
    BOS or a dropped turn is a difference in the ids."""
    requires(engine, "chat")
    problems, how = [], set()
    for case, messages in CHAT_TURNS.items():
        completion = engine.chat(messages, SamplingParams(max_new_tokens=1))
        expected = reference.chat_prompt_ids(model_dir, [m.__dict__ for m in messages])
        try:
            how.add(check_prompt_fed(completion, expected, name=engine.id,
                                     reference="template reference"))
        except AssertionError as exc:
            problems.append(f"{case}: {exc}")
    record_property("note", f"{len(CHAT_TURNS) - len(problems)}/{len(CHAT_TURNS)} conversations "
                            f"equal to the template's ids, {' and '.join(sorted(how)) or 'compared'}")
    assert not problems, "\n".join(problems)


def test_greedy_margins(engine, fixture_name: str, record_property) -> None:
    """On the trained model, greedy ids against the pinned transformers reference on its prompts
    (fixtures/parity.py). Where a continuation departs, the position and the reference's top-2
    margin there (nats) are named: within the engine's numerical noise at its precision (its
    declared log-probability tolerance, widened for a reduced dtype: bench/quality.tolerance) it
    is a near tie; beyond it, or where the reference had no second choice, a real divergence."""
    from fixtures.parity import load_reference

    unquantized_only(engine)
    reference = load_reference(fixture_name)
    noise = tolerance(engine.dtype, "logprob", engine.logprob_tolerance)
    params = SamplingParams(max_new_tokens=reference["max_new_tokens"])
    problems, ties, exact = [], [], 0
    for i, ref, completion in completed(engine, reference, params, problems):
        got, want = list(completion.token_ids), list(ref["ids"])
        if got == want:
            exact += 1
            continue
        at = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        top = ref["top_logprobs"][at] if at < len(ref["top_logprobs"]) else []
        margin = top[0] - top[1] if len(top) > 1 else None
        where = (f"prompt {i} departs at position {at} (reference top-2 margin "
                 + (f"{margin:.2g} nats)" if margin is not None else "unknown)"))
        if margin is not None and margin <= noise:
            ties.append(f"{where}: a near tie")
        else:
            problems.append(f"{where}: beyond the engine's noise of {noise:g} nats: {got} vs {want}")
    record_property("note", f"{exact}/{len(reference['prompts'])} prompts token-exact vs "
                            f"{reference['reference']}" + "".join(f"; {t}" for t in ties))
    assert not problems, "\n".join(problems)


MULTI_BYTE = ("日本語: こんにちは、", "Emoji list: 🙂 😀 😃 😄")
"""Prompts whose greedy continuation on SmolLM2-135M-Instruct is Japanese or emoji: characters
of three and four bytes that its byte-level tokens split."""


def test_streaming_utf8(engine, record_property) -> None:
    """On the trained model, greedy continuations of MULTI_BYTE stream whole characters: the
    deltas, joined, equal generate()'s text (a delta never ends in half a character, which would
    come out as U+FFFD). A continuation with no multi-byte character cannot test it: skipped."""
    requires(engine, "streaming")
    params = SamplingParams(max_new_tokens=16)
    multi, problems = 0, []
    for prompt in MULTI_BYTE:
        generated = engine.generate([prompt], params)[0].text
        streamed = [d.text for d in engine.stream(prompt, params)]
        multi += any(len(c.encode()) > 1 for c in generated)
        if "".join(streamed) != generated:
            problems.append(f"{prompt!r}: streamed {streamed!r}, generate() {generated!r}")
    if not multi:
        pytest.skip("no greedy continuation here holds a multi-byte character")
    record_property("note", f"{multi}/{len(MULTI_BYTE)} continuations with multi-byte characters, "
                            f"{len(MULTI_BYTE) - len(problems)} streamed whole")
    assert not problems, "\n".join(problems)


QUESTIONS = ("What is the capital of France?", "What is 2 + 2?", "Name a prime number.")
"""Questions SmolLM2-135M-Instruct answers briefly, then ends its turn. Several: a quantized
engine may break a near tie the other way and answer one of them at length (the shipped Q4_1
GGUF answers the first "L'Étoile, la Cité, ..." past any limit, the float32 weights "The capital
of France is Paris.")."""


def test_eos_and_stops(engine, model_dir, record_property) -> None:
    """On the trained model, greedy: answers to QUESTIONS end by themselves, at the model's EOS
    (<|im_end|>: finish_reason "eos", well before max_new_tokens, the EOS neither in the ids nor
    in the text), at least one of them; an answer that runs to the limit says "length" and holds
    no EOS either. Then a stop string taken from an answer's own text ends it there
    (finish_reason "stop", the text cut before it, as stop_strings holds on the random fixtures)."""
    requires(engine, "chat")
    limit, eos = 48, engine.eos_token_id
    special = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    answers = {q: engine.chat([ChatMessage("user", q)], SamplingParams(max_new_tokens=limit))
               for q in QUESTIONS}
    for question, answer in answers.items():
        assert eos not in answer.token_ids and special["eos_token"] not in answer.text, (
            f"{question!r}: the EOS ({eos}) is in the answer: {answer.token_ids}, {answer.text!r}")
        assert (answer.finish_reason, len(answer.token_ids) < limit) in (("eos", True), ("length", False)), (
            f"{question!r}: finish_reason {answer.finish_reason!r} after {len(answer.token_ids)} of "
            f"{limit} tokens: {answer.text!r}")
    ended = {q: a for q, a in answers.items() if a.finish_reason == "eos"}
    assert ended, f"no answer ended at EOS within {limit} tokens: " + "; ".join(
        f"{q!r}: {a.text!r}" for q, a in answers.items())
    note = f"{len(ended)}/{len(answers)} answers end at EOS" + "".join(
        f"; {q!r}: {a.text!r} ran to the limit" for q, a in answers.items() if q not in ended)
    question, answer = next(iter(ended.items()))
    words = answer.text.split()
    if engine.capabilities.stop_strings and len(words) >= 3:
        stop = words[len(words) // 2]
        cut = engine.chat([ChatMessage("user", question)],
                          SamplingParams(max_new_tokens=limit, stop=(stop,)))
        assert cut.finish_reason == "stop", f"stop {stop!r}: finish_reason {cut.finish_reason!r}"
        kept = engine.capabilities.stop_string_kept
        expected = answer.text[:answer.text.index(stop) + (len(stop) if kept else 0)]
        assert cut.text == expected, (f"stop {stop!r} on {answer.text!r}: the answer came back "
                                      f"{cut.text!r}, where the stop string cuts it to {expected!r}")
        note += f"; stop {stop!r} cut {answer.text!r} to {cut.text!r}"
    record_property("note", note)
