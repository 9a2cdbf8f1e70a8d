"""Prompts a run has never sent before: cache-cold by construction.

The k-th prompt is "<k>. " followed by the shipped corpus (fixtures/corpus.txt) read from the
k-th offset of a seeded permutation of its words, wrapping round, cut to the length asked in the
engine's own tokens. The number at its head makes every prompt differ from its first tokens
on, so no prefix cache (vLLM's, llama.cpp's, OpenVINO GenAI's) can serve any part of it from
an earlier one; the texts are the same for every engine. Each benchmark round, each serving
request, takes the next k: a timed input is never one the engine has seen.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "corpus.txt"


class FreshPrompts:
    """The k-th prompt text, or ids of exactly `length` tokens, and the next unused ones."""

    def __init__(self, tokenize: Callable[[str], list[int]], seed: int = 0) -> None:
        self.tokenize = tokenize
        self.words = CORPUS.read_text(encoding="utf-8").split()
        self.order = list(range(len(self.words)))
        random.Random(seed).shuffle(self.order)
        self.used = 0

    def text(self, k: int, words: int) -> str:
        """The k-th prompt's text, `words` words of the corpus after its number."""
        start = self.order[k % len(self.order)]
        body = [self.words[(start + i) % len(self.words)] for i in range(words)]
        return f"{k}. " + " ".join(body)

    def ids(self, k: int, length: int) -> list[int]:
        """The k-th prompt as exactly `length` of the engine's tokens."""
        words = length
        while len(ids := self.tokenize(self.text(k, words))) < length:
            words *= 2
        return ids[:length]

    def batch(self, n: int, length: int) -> list[list[int]]:
        """The next `n` prompts never handed out before, `length` tokens each."""
        rows = [self.ids(k, length) for k in range(self.used, self.used + n)]
        self.used += n
        return rows

    def text_of(self, k: int, length: int) -> str:
        """The k-th prompt as the longest text of whole words within `length` of the engine's
        tokens (an engine that takes no ids: its own usage counts what it fed)."""
        low, high = 1, length
        while len(self.tokenize(self.text(k, high))) <= length:
            low, high = high, 2 * high
        while high - low > 1:  # the most words whose tokens fit
            middle = (low + high) // 2
            low, high = (middle, high) if len(self.tokenize(self.text(k, middle))) <= length \
                else (low, middle)
        return self.text(k, low)

    def texts(self, n: int, length: int) -> list[str]:
        """The next `n` prompts never handed out before, as text within `length` tokens each."""
        rows = [self.text_of(k, length) for k in range(self.used, self.used + n)]
        self.used += n
        return rows

    def next_text(self, words: int) -> str:
        """The next prompt never handed out before, as text of `words` corpus words."""
        self.used += 1
        return self.text(self.used - 1, words)
