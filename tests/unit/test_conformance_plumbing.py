"""incell/conformance/plumbing.py: what a failing property's report footnote keeps."""

from __future__ import annotations

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
