"""incell/conformance: what a failing property's report footnote keeps (plumbing.py), and how a chat
prompt is held to the template (compare.py)."""

from __future__ import annotations

import pytest

from incell.conformance.plumbing import hypothesis_example

NEWER = """AssertionError: item 0: first divergence at position 0
Failing test case: test_batch_invariance(
    engine=<tests.broken.generation.RightPadding object at 0x7fdb75431990>,
    prompt='0',
    fillers=['The cat sat'],
    position=0,
)

You can reproduce this test case by temporarily adding @reproduce_failure('6.170.15', b'AEE=') \
as a decorator on your test function
"""


def test_the_shrunk_example_and_its_replay_line_are_kept() -> None:
    example = hypothesis_example(NEWER)
    assert example.startswith("Failing test case: test_batch_invariance(")
    assert "prompt='0', fillers=['The cat sat'], position=0, )" in example
    assert "@reproduce_failure('6.170.15', b'AEE=')" in example
    assert "object at 0x" not in example


def test_older_hypothesis_wording_and_no_example() -> None:
    older = NEWER.replace("Failing test case", "Falsifying example")
    assert hypothesis_example(older).startswith("Falsifying example: test_batch_invariance(")
    assert hypothesis_example("AssertionError: plain failure") == ""


def test_a_chat_prompt_is_held_by_id_or_by_the_servers_own_count() -> None:
    """A completion with its prompt ids is compared id by id; one without (an HTTP chat API's
    answer) by usage.prompt_tokens, which a doubled BOS or a dropped turn changes; one with
    neither cannot pass."""
    from engines.params import Completion
    from incell.conformance.compare import check_prompt_fed

    expected = [1, 5, 6, 7]
    fed = lambda ids, count=None: Completion("x", (9,), tuple(ids), "length", None, count)  # noqa: E731
    assert check_prompt_fed(fed(expected), expected, name="e", reference="r") == "token-exact"
    with pytest.raises(AssertionError, match="first divergence at position 1: e=2 r=5"):
        check_prompt_fed(fed([1, 2, 6, 7]), expected, name="e", reference="r")
    assert check_prompt_fed(fed([], 4), expected, name="e", reference="r").startswith("by count")
    with pytest.raises(AssertionError, match="e counts 5 prompt tokens, r has 4"):
        check_prompt_fed(fed([], 5), expected, name="e", reference="r")  # a doubled BOS
    with pytest.raises(AssertionError, match="neither the prompt's ids nor its count"):
        check_prompt_fed(fed([]), expected, name="e", reference="r")
