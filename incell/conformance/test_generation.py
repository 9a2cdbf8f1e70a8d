"""Generation conformance: every Generator must satisfy these, on every fixture.

Each test is one named property (the name without "test_" is what the report
shows). Inputs for the invariance properties are drawn by hypothesis with a
fixed seed and a bounded number of examples (conftest: --hypothesis-budget).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bench.quality import tolerance
from core.details import PropertyFigures
from core.records import to_json
from engines.base import ChatMessage, InvalidParameterError, SamplingParams, UnsupportedCapabilityError
from incell.conformance import reference
from incell.conformance.compare import check_ids_equal, check_logits_close, check_prompt_fed
from incell.conformance.inputs import GREEDY, PROMPTS
from incell.conformance.lora import lora_check
from incell.conformance.parity import (
    logprobs_against,
    parity_problems,
    quality_record,
    teacher_forced_drift,
    unquantized_only,
)
from incell.conformance.plumbing import requires
from incell.conformance.text_quality import test_text_quality  # noqa: F401

# the trained-model properties: pytest collects the test functions in this module's namespace
from incell.conformance.trained import (  # noqa: F401
    test_chat_template_turns,
    test_eos_and_stops,
    test_greedy_margins,
    test_special_tokens_in_text,
    test_streaming_utf8,
    test_tokenizer_real_text,
)

MAX_PROMPT_TOKENS = 200  # keeps prompt + generation well inside every fixture's context

# unicode letters and marks, digits, punctuation, spaces, tabs and newlines
TEXT = st.text(st.characters(codec="utf-8", categories=("L", "M", "N", "P", "Zs", "Cc"),
                             exclude_characters="\x00\r"), min_size=1, max_size=40)
LONG_TEXT = st.text(st.sampled_from("abcdefghij klmnopqrstuvwxyz.,"), min_size=150, max_size=300)
PROMPT = st.one_of(TEXT, LONG_TEXT, st.sampled_from(PROMPTS))


def ids(completions) -> list[tuple[int, ...]]:
    return [c.token_ids for c in completions]


def fits(engine, *prompts: str) -> None:
    """Skip drawn prompts the tiny fixtures cannot hold (or that encode to nothing)."""
    for prompt in prompts:
        assume(0 < len(engine.tokenize(prompt)) <= MAX_PROMPT_TOKENS)


def test_greedy_determinism(engine) -> None:
    """The same greedy call twice gives identical token ids."""
    first = engine.generate(PROMPTS, GREEDY)
    second = engine.generate(PROMPTS, GREEDY)
    check_ids_equal(a=ids(first), b=ids(second), name_a="first call", name_b="second call")


@given(prompt=PROMPT, fillers=st.lists(st.sampled_from(PROMPTS), min_size=1, max_size=4),
       position=st.integers(0, 4))
def test_batch_invariance(engine, prompt: str, fillers: list[str], position: int) -> None:
    """A prompt alone and at any position inside a padded batch gives the same greedy ids."""
    requires(engine, "batching")
    fits(engine, prompt)
    batch = list(fillers)
    at = min(position, len(batch))
    batch.insert(at, prompt)
    alone = engine.generate([prompt], GREEDY)[0]
    inside = engine.generate(batch, GREEDY)[at]
    check_ids_equal(a=[alone.token_ids], b=[inside.token_ids], name_a="alone",
                    name_b=f"at position {at} of {len(batch)}")


@given(prompt=PROMPT, longer=LONG_TEXT)
def test_padding_invariance(engine, prompt: str, longer: str) -> None:
    """Left padding (a longer prompt beside it) changes neither next-token logits nor their argmax."""
    requires(engine, "logits")
    fits(engine, prompt, longer)
    assume(len(engine.tokenize(longer)) > len(engine.tokenize(prompt)))
    alone = engine.next_token_logits([prompt]).copy()
    padded = engine.next_token_logits([prompt, longer])[:1]
    check_logits_close(a=alone, b=padded, name_a="alone", name_b="left-padded",
                       atol=tolerance(engine.dtype, "logits", 1e-4))


@given(order=st.permutations(range(len(PROMPTS))))
def test_order_invariance(engine, order: list[int]) -> None:
    """Permuting the batch permutes the outputs, nothing else."""
    requires(engine, "batching")
    assume(list(order) != sorted(order))
    base = ids(engine.generate(PROMPTS, GREEDY))
    permuted = ids(engine.generate([PROMPTS[i] for i in order], GREEDY))
    check_ids_equal(a=[base[i] for i in order], b=permuted, name_a="permuted reference",
                    name_b="permuted batch")


@given(prompt=PROMPT)
def test_streaming_equals_generate(engine, prompt: str) -> None:
    """Streamed deltas, joined, equal the non-streaming completion: text and token ids."""
    requires(engine, "streaming")
    fits(engine, prompt)
    deltas = list(engine.stream(prompt, GREEDY))
    whole = engine.generate([prompt], GREEDY)[0]
    text = "".join(d.text for d in deltas)
    assert text == whole.text, f"stream {text!r} != generate {whole.text!r} for prompt {prompt!r}"
    check_ids_equal(a=[tuple(i for d in deltas for i in d.token_ids)], b=[whole.token_ids],
                    name_a="stream", name_b="generate")


@pytest.mark.parametrize("max_new_tokens", [1, 7, 20])
def test_length_contract(engine, max_new_tokens: int) -> None:
    """EOS ignored: exactly max_new_tokens per row. min_new_tokens: no stop before it."""
    params = SamplingParams(max_new_tokens=max_new_tokens, ignore_eos=True)
    for i, completion in enumerate(engine.generate(PROMPTS, params)):
        assert len(completion.token_ids) == max_new_tokens, (
            f"prompt {i}: {len(completion.token_ids)} tokens, asked for exactly {max_new_tokens}")
        assert completion.finish_reason == "length", f"prompt {i}: {completion.finish_reason}"
    requires(engine, "min_new_tokens")
    requires(engine, "stop_token_ids")
    first = engine.generate([PROMPTS[0]], GREEDY)[0].token_ids[0]  # would stop at once
    floor = min(max_new_tokens, 5)
    held = engine.generate([PROMPTS[0]], SamplingParams(max_new_tokens=max_new_tokens,
                                                        min_new_tokens=floor,
                                                        stop_token_ids=(first,)))[0]
    assert len(held.token_ids) >= floor, (
        f"min_new_tokens={floor} but {len(held.token_ids)} tokens came back")


def test_eos_stop(engine) -> None:
    """A stop token id (int or list form) ends the row at its first occurrence, excluded."""
    requires(engine, "stop_token_ids")
    full = engine.generate([PROMPTS[1]], SamplingParams(max_new_tokens=16, ignore_eos=True))[0]
    target = full.token_ids[3]
    cut = full.token_ids.index(target)
    for form in (target, [target, 10_000_000]):
        out = engine.generate([PROMPTS[1]], SamplingParams(max_new_tokens=16,
                                                           stop_token_ids=form))[0]
        assert out.token_ids == full.token_ids[:cut], (
            f"stop_token_ids={form!r}: got {out.token_ids}, expected {full.token_ids[:cut]}")
        assert out.finish_reason == "eos", f"stop_token_ids={form!r}: {out.finish_reason}"


def test_stop_strings(engine, model_dir) -> None:
    """Stop strings apply per row, match across token boundaries, and keep/drop as declared."""
    requires(engine, "stop_strings")
    kept = engine.capabilities.stop_string_kept
    free = SamplingParams(max_new_tokens=16, ignore_eos=True)
    for i, prompt in enumerate(PROMPTS):
        pair = [prompt, PROMPTS[(i + 1) % len(PROMPTS)]]
        row, other = engine.generate(pair, free)  # the same batch, without the stop string
        stop = reference.straddling_stop(model_dir, row.token_ids, row.text)
        params = SamplingParams(max_new_tokens=16, ignore_eos=True, stop=(stop,))
        out, beside = engine.generate(pair, params)
        where = f"prompt {i}, stop {stop!r}"
        assert out.finish_reason == "stop", f"{where}: finish_reason {out.finish_reason!r}"
        assert row.token_ids[:len(out.token_ids)] == out.token_ids, f"{where}: left the greedy path"
        end = row.text.find(stop)
        if kept:  # text runs to the end of the token that completes the stop string
            assert out.text.startswith(row.text[:end + len(stop)]), f"{where}: got {out.text!r}"
            assert stop not in reference.decode(model_dir, out.token_ids[:-1]), \
                f"{where}: did not stop at the first token completing the string"
        else:
            assert out.text == row.text[:end], f"{where}: got {out.text!r}, want {row.text[:end]!r}"
        if stop not in other.text:  # the other row must not be cut at this row's stop
            assert beside.token_ids == other.token_ids, f"{where}: the other row was cut too"


@given(text=PROMPT)
def test_tokenization_parity(engine, model_dir, text: str) -> None:
    """Prompt ids equal the reference tokenizer's (tokenizer.json), with exactly one BOS."""
    expected = reference.encode(model_dir, text)
    check_ids_equal(a=[engine.tokenize(text)], b=[expected], name_a=engine.id,
                    name_b="tokenizer.json")
    bos = reference.bos_token_id(model_dir)
    if bos is not None:
        got = engine.tokenize(text)
        assert got[:1] == [bos] and bos not in got[1:], f"BOS {bos} not once at the start: {got}"


def test_chat_template(engine, model_dir, record_property) -> None:
    """chat() feeds exactly the template's ids (reference: jinja2 + tokenizer.json), one BOS."""
    requires(engine, "chat")
    messages = [ChatMessage("system", "Answer briefly."), ChatMessage("user", "What is a cat?")]
    completion = engine.chat(messages, SamplingParams(max_new_tokens=4))
    expected = reference.chat_prompt_ids(model_dir, [m.__dict__ for m in messages])
    how = check_prompt_fed(completion, expected, name=engine.id, reference="template reference")
    record_property("note", f"the prompt {how}")
    bos = reference.bos_token_id(model_dir)
    if bos is not None and completion.prompt_token_ids:
        count = completion.prompt_token_ids.count(bos)
        assert count == 1 and completion.prompt_token_ids[0] == bos, (
            f"expected exactly one BOS ({bos}) at position 0, found {count}")


def test_seeded_sampling(engine) -> None:
    """Same seed, same output; different seeds differ; no seed leaks into the next call."""
    requires(engine, "seeded_sampling")

    def sample(seed):
        params = SamplingParams(max_new_tokens=16, temperature=1.0, seed=seed, ignore_eos=True)
        return engine.generate([PROMPTS[0]], params)[0].token_ids

    assert sample(1) == sample(1), "seed 1 gave two different outputs"
    assert len({sample(s) for s in (1, 2, 3)}) > 1, "seeds 1, 2 and 3 gave the same output"
    first = (sample(7), sample(None))
    second = (sample(7), sample(None))
    assert first[1] != second[1], "an unseeded call repeated the previous seeded call's stream"


def test_continuation(engine) -> None:
    """Generating n tokens equals generating k, then continuing from prompt + those k ids."""
    requires(engine, "token_input")
    n, k = 12, 5
    for prompt in PROMPTS:
        prompt_ids = engine.tokenize(prompt)
        whole = engine.generate([prompt], SamplingParams(max_new_tokens=n, ignore_eos=True))[0]
        head = engine.generate([prompt], SamplingParams(max_new_tokens=k, ignore_eos=True))[0]
        rest = engine.generate_from_ids([prompt_ids + list(head.token_ids)],
                                        SamplingParams(max_new_tokens=n - k, ignore_eos=True))[0]
        check_ids_equal(a=[whole.token_ids], b=[head.token_ids + rest.token_ids],
                        name_a=f"generate {n}", name_b=f"generate {k} + continue {n - k}")


@given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       lengths=st.lists(st.integers(1, 24), min_size=1, max_size=3))
def test_call_order_independence(engine, fresh_engine, sizes: list[int],
                                 lengths: list[int]) -> None:
    """Any call gives what a fresh instance gives, after any prior generate/forward sequence."""
    expected = fresh_engine("generate")
    for size, length in zip(sizes, lengths, strict=False):
        engine.generate(list(PROMPTS[:size]), SamplingParams(max_new_tokens=length))
        if engine.capabilities.logits:
            engine.next_token_logits(list(PROMPTS[-size:]))
    check_ids_equal(a=ids(engine.generate(PROMPTS, GREEDY)), b=expected,
                    name_a="after prior calls", name_b="fresh instance")
    if engine.capabilities.logits:
        check_logits_close(a=engine.next_token_logits(PROMPTS), b=fresh_engine("logits"),
                           name_a="after prior calls", name_b="fresh instance", atol=1e-5)


def test_idempotence(engine) -> None:
    """Returned results are not changed by later calls; the same logits call twice agrees."""
    first = engine.generate(PROMPTS, GREEDY)
    snapshot = [(c.text, c.token_ids, c.prompt_token_ids) for c in first]
    if engine.capabilities.logits:
        logits = engine.next_token_logits(PROMPTS)
        kept = logits.copy()
        check_logits_close(a=engine.next_token_logits(PROMPTS), b=kept, name_a="second call",
                           name_b="first call", atol=1e-6)
        engine.next_token_logits(PROMPTS[::-1])
        assert np.array_equal(logits, kept), "a returned logits array was changed by a later call"
    engine.generate(PROMPTS[::-1], SamplingParams(max_new_tokens=20, ignore_eos=True))
    assert [(c.text, c.token_ids, c.prompt_token_ids) for c in first] == snapshot, \
        "returned completions changed after later calls"


def test_lifecycle(engine, model_dir, device) -> None:
    """load, close, load again: the same results."""
    adapter = type(engine)()
    adapter.load(model_dir, device=device)
    before = ids(adapter.generate(PROMPTS, GREEDY))
    adapter.close()
    adapter.load(model_dir, device=device)
    after = ids(adapter.generate(PROMPTS, GREEDY))
    adapter.close()
    check_ids_equal(a=after, b=before, name_a="after reload", name_b="first load")


@pytest.mark.parametrize(("bad", "params"), [
    ([], {}),
    (["ok", 3], {}),
    ("a bare string", {}),
    (["ok"], {"max_new_tokens": -1}),
    (["ok"], {"temperature": -0.1}),
    (["ok"], {"top_p": 0.0}),
    (["ok"], {"top_p": 1.5}),
    (["ok"], {"no_such_parameter": 1}),
])
def test_typed_errors(engine, bad, params: dict) -> None:
    """Bad input raises InvalidParameterError naming the problem, never something else."""
    with pytest.raises(InvalidParameterError):
        engine.generate(bad, SamplingParams.from_dict(params))


def test_greedy_parity(engine, fixture_name: str, record_property) -> None:
    """Greedy ids equal transformers' (the pinned reference, fixtures/parity.py) on the same
    prompts and weights; where they first diverge, each side's token is in the other's top-k."""
    from fixtures.parity import load_reference

    unquantized_only(engine)
    reference = load_reference(fixture_name)
    problems, diverged = parity_problems(engine, reference)
    assert not problems, (f"greedy parity with {reference['reference']} (top-{engine.parity_top_k}):\n"
                          + "\n".join(problems))
    total = len(reference["prompts"])
    record_property("note", f"{total - diverged}/{total} prompts token-exact vs {reference['reference']}"
                    + (f", {diverged} diverging within top-{engine.parity_top_k}" if diverged else ""))


LOGPROBS_N = 5


def test_logprobs(engine, fixture_name: str, record_property) -> None:
    """With logprobs=N every generated token comes with its own and the N most likely
    log-probabilities: a log-softmax (finite, <= 0, mass <= 1) in which the greedy token is the
    most likely, equal to the pinned reference's (fixtures/parity.py) within the engine's
    logprob_tolerance for as long as the ids agree."""
    from fixtures.parity import load_reference

    requires(engine, "logprobs")
    unquantized_only(engine)
    reference = load_reference(fixture_name)
    n, tol = LOGPROBS_N, tolerance(engine.dtype, "logprob", engine.logprob_tolerance)
    problems, worst, steps = logprobs_against(engine, reference, n, tol)
    assert not problems, (f"log-probabilities (logprobs={n}, tolerance {tol:g} nats vs "
                          f"{reference['reference']}):\n" + "\n".join(problems[:12]))
    record_property("note", f"max Δ logprob {worst:.1e} nats over {steps} steps vs "
                    f"{reference['reference']}")


def test_quantization_quality(engine, fixture_name: str, record_property) -> None:
    """Teacher-forced along the reference's greedy ids, the engine's next-token distributions vs
    transformers' float32 ones (bench/quality.py: KL mean/p99, top-1, RMS Δp) within the bound its
    quantization declares (QUALITY_BOUNDS); where it hands over its weights dequantized, vs those
    run exactly too (KERNEL_BOUND: its kernels' error, apart from the quantization's)."""
    from bench.quality import KERNEL_BOUND, quality_bound
    from fixtures.parity import load_reference

    requires(engine, "logits")
    reference = load_reference(fixture_name)
    both = teacher_forced_drift(engine, reference)
    if both is None:
        pytest.skip("the reference keeps no whole distributions for this fixture's vocabulary")
    (measured, kernels), quantization = both, engine.quantization
    figures, note = quality_record(engine, measured, kernels)
    record_property("figures", json.dumps(to_json(figures)))
    record_property("note", f"{note} vs {reference['reference']}")
    problems = quality_bound(quantization, engine.dtype).violations(measured)
    problems += [f"vs its weights dequantized: {v}" for v in
                 (KERNEL_BOUND.violations(kernels[0]) if kernels else [])]
    assert not problems, (f"{quantization} beyond its bound against {reference['reference']}: "
                          + "; ".join(problems))


def test_lora_adapter(engine, model_dir, record_property) -> None:
    """The fixture's LoRA adapter (fixtures/lora.py) set at run time, unmerged, against the base
    weights with it merged in float64: greedy ids (but at near ties), and teacher-forced logits
    within the unquantized bound or log-probabilities within tolerance; the adapter clearly
    changes the output, and removing it gives back the engine's own."""
    requires(engine, "lora")
    unquantized_only(engine)
    figures, problems = lora_check(engine, model_dir, [engine.tokenize(p) for p in PROMPTS[:3]])
    record_property("figures", json.dumps(to_json(PropertyFigures(lora=figures))))
    assert not problems, "; ".join(problems)


UNSUPPORTED_CALLS = {
    "streaming": lambda e: list(e.stream(PROMPTS[0], GREEDY)),
    "chat": lambda e: e.chat([ChatMessage("user", "Hi")], GREEDY),
    "seeded_sampling": lambda e: e.generate([PROMPTS[0]], SamplingParams(temperature=1.0, seed=1)),
    "stop_strings": lambda e: e.generate([PROMPTS[0]], SamplingParams(stop=("x",))),
    "logits": lambda e: e.next_token_logits([PROMPTS[0]]),
    "token_input": lambda e: e.generate_from_ids([e.tokenize(PROMPTS[0])], GREEDY),
    "min_new_tokens": lambda e: e.generate([PROMPTS[0]], SamplingParams(min_new_tokens=1)),
    "logprobs": lambda e: e.generate([PROMPTS[0]], SamplingParams(logprobs=1)),
    "stop_token_ids": lambda e: e.generate([PROMPTS[0]], SamplingParams(stop_token_ids=(5,))),
    "lora": lambda e: e.set_adapter(None),
}


def test_unsupported_capabilities(engine) -> None:
    """Asking for a capability the adapter declares unsupported raises UnsupportedCapabilityError
    naming the engine and the capability (never a silent, different answer)."""
    missing = [name for name in UNSUPPORTED_CALLS if not getattr(engine.capabilities, name)]
    if not missing:
        pytest.skip(f"{engine.id} declares every capability the suite can call")
    problems = []
    for name in missing:
        try:
            UNSUPPORTED_CALLS[name](engine)
        except UnsupportedCapabilityError as exc:
            if (exc.engine, exc.capability) != (engine.id, name):
                problems.append(f"{name}: the error names {exc.engine!r}/{exc.capability!r}")
        except Exception as exc:
            problems.append(f"{name}: raised {type(exc).__name__}: {exc}")
        else:
            problems.append(f"{name}: declared unsupported, but the call returned normally")
    assert not problems, "; ".join(problems)
