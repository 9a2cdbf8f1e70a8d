"""Generation conformance: every Generator must satisfy these, on every fixture."""

from __future__ import annotations

import pytest

from engines.base import ChatMessage, SamplingParams
from tests.conformance import reference
from tests.conformance.compare import check_ids_equal
from tests.conformance.conftest import requires

# Different lengths on purpose: inside one batch they need left padding.
PROMPTS = (
    "The cat sat",
    "Once upon a time there was a small village at the edge of a great forest, and",
    "Hello",
    "Numbers: 1 2 3 4 5 6",
)
GREEDY = SamplingParams(max_new_tokens=12)


def ids(completions) -> list[tuple[int, ...]]:
    return [c.token_ids for c in completions]


def test_greedy_determinism(engine) -> None:
    """The same greedy call twice gives identical token ids."""
    first = engine.generate(PROMPTS, GREEDY)
    second = engine.generate(PROMPTS, GREEDY)
    check_ids_equal(a=ids(first), b=ids(second), name_a="first call", name_b="second call")


def test_batch_invariance(engine) -> None:
    """A prompt alone and inside a padded batch gives the same greedy ids."""
    requires(engine, "batching")
    batched = engine.generate(PROMPTS, GREEDY)
    alone = [engine.generate([p], GREEDY)[0] for p in PROMPTS]
    check_ids_equal(a=ids(alone), b=ids(batched), name_a="alone", name_b="in batch")


def test_streaming_equals_generate(engine) -> None:
    """Streamed text deltas, joined, equal the non-streaming text."""
    requires(engine, "streaming")
    for i, prompt in enumerate(PROMPTS):
        streamed = "".join(engine.stream(prompt, GREEDY))
        whole = engine.generate([prompt], GREEDY)[0].text
        assert streamed == whole, f"prompt {i}: stream {streamed!r} != generate {whole!r}"


@pytest.mark.parametrize("max_new_tokens", [1, 7, 20])
def test_length_contract(engine, max_new_tokens: int) -> None:
    """With EOS ignored, every row has exactly max_new_tokens tokens."""
    params = SamplingParams(max_new_tokens=max_new_tokens, ignore_eos=True)
    for i, completion in enumerate(engine.generate(PROMPTS, params)):
        assert len(completion.token_ids) == max_new_tokens, (
            f"prompt {i}: {len(completion.token_ids)} tokens, asked for exactly {max_new_tokens}"
        )
        assert completion.finish_reason == "length", f"prompt {i}: {completion.finish_reason}"


def test_chat_template(engine, model_dir) -> None:
    """chat() feeds exactly the template's ids (reference: jinja2 + tokenizer.json), one BOS."""
    requires(engine, "chat")
    messages = [ChatMessage("system", "Answer briefly."), ChatMessage("user", "What is a cat?")]
    completion = engine.chat(messages, SamplingParams(max_new_tokens=4))
    expected = reference.chat_prompt_ids(model_dir, [m.__dict__ for m in messages])
    check_ids_equal(a=[completion.prompt_token_ids], b=[expected],
                    name_a=engine.id, name_b="template reference")
    bos = reference.bos_token_id(model_dir)
    if bos is not None:
        count = completion.prompt_token_ids.count(bos)
        assert count == 1 and completion.prompt_token_ids[0] == bos, (
            f"expected exactly one BOS ({bos}) at position 0, found {count}"
        )
