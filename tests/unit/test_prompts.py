"""incell/prompts.py: every prompt new, from its first tokens on; exact lengths; the same texts
for every engine."""

from __future__ import annotations

from incell.prompts import FreshPrompts


def words(text: str) -> list[str]:
    return text.split()  # a stand-in tokenizer: one token a word


def test_prompts_are_never_repeated_and_differ_from_their_first_token() -> None:
    pool = FreshPrompts(words)
    rows = pool.batch(50, 16) + pool.batch(50, 16)
    assert all(len(r) == 16 for r in rows)
    assert len({tuple(r) for r in rows}) == 100
    assert len({r[0] for r in rows}) == 100, "a shared first token lets a prefix cache match"


def test_long_prompts_wrap_the_corpus_and_the_texts_are_the_same_everywhere() -> None:
    corpus_words = len(FreshPrompts(words).words)
    long = FreshPrompts(words).ids(3, 3 * corpus_words)
    assert len(long) == 3 * corpus_words
    assert FreshPrompts(words).batch(5, 20) == FreshPrompts(words).batch(5, 20)
    assert FreshPrompts(words, seed=1).batch(5, 20) != FreshPrompts(words).batch(5, 20)
    pool = FreshPrompts(words)
    assert pool.next_text(10) != pool.next_text(10)
