"""The fixed inputs the generation and embedding suites share with their fixtures (a fresh
instance's first answers are computed on these)."""

from __future__ import annotations

from engines.base import SamplingParams

# Different lengths on purpose: inside one batch they need left padding.
PROMPTS = (
    "The cat sat",
    "Once upon a time there was a small village at the edge of a great forest, and",
    "Hello",
    "Numbers: 1 2 3 4 5 6",
)
GREEDY = SamplingParams(max_new_tokens=12)

TEXTS = (
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "Two men pushed carts through the woods.",
)
