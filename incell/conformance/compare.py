"""Comparison helpers with named sides and stated tolerances.

Failure messages carry both names and the item index, so a footnote in the
report says which input, which position, and who said what.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_ids_equal(*, a: Sequence[Sequence[int]], b: Sequence[Sequence[int]],
                    name_a: str, name_b: str) -> None:
    """Token id lists must be identical, row by row."""
    assert len(a) == len(b), f"{name_a} has {len(a)} rows, {name_b} has {len(b)}"
    for i, (row_a, row_b) in enumerate(zip(a, b)):
        row_a, row_b = list(row_a), list(row_b)
        if row_a == row_b:
            continue
        pos = next((k for k, (x, y) in enumerate(zip(row_a, row_b)) if x != y),
                   min(len(row_a), len(row_b)))
        got_a = row_a[pos] if pos < len(row_a) else "<end>"
        got_b = row_b[pos] if pos < len(row_b) else "<end>"
        raise AssertionError(
            f"item {i}: first divergence at position {pos}: {name_a}={got_a!r} {name_b}={got_b!r} "
            f"(lengths {len(row_a)} vs {len(row_b)})"
        )


def check_prompt_fed(completion, expected: Sequence[int], *, name: str, reference: str) -> str:
    """The prompt a completion was fed against the reference's ids: by id where the engine gives
    its prompt ids back, else by the engine's own count (an HTTP API's usage.prompt_tokens: a
    doubled BOS or a dropped turn changes it); how it was compared, for the property's note."""
    if completion.prompt_token_ids:
        check_ids_equal(a=[completion.prompt_token_ids], b=[expected], name_a=name, name_b=reference)
        return "token-exact"
    assert completion.prompt_tokens is not None, f"{name} gives neither the prompt's ids nor its count"
    assert completion.prompt_tokens == len(expected), (
        f"{name} counts {completion.prompt_tokens} prompt tokens, {reference} has {len(expected)}")
    return "by count (the server returns no prompt ids, only usage.prompt_tokens)"


def check_embeddings_close(*, a: np.ndarray, b: np.ndarray, name_a: str, name_b: str,
                           atol: float) -> None:
    """Embeddings must agree element-wise within `atol`, row by row."""
    assert a.shape == b.shape, f"shapes differ: {name_a}{a.shape} vs {name_b}{b.shape}"
    for i, (row_a, row_b) in enumerate(zip(a, b)):
        diff = float(np.max(np.abs(row_a.astype(np.float64) - row_b.astype(np.float64))))
        if diff > atol:
            raise AssertionError(f"item {i}: max |{name_a} - {name_b}| = {diff:.3g} > atol {atol:g}")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def check_logits_close(*, a: np.ndarray, b: np.ndarray, name_a: str, name_b: str,
                       atol: float) -> None:
    """Logits must agree within `atol` and pick the same argmax, row by row."""
    assert a.shape == b.shape, f"shapes differ: {name_a}{a.shape} vs {name_b}{b.shape}"
    for i, (row_a, row_b) in enumerate(zip(a, b)):
        diff = float(np.max(np.abs(row_a.astype(np.float64) - row_b.astype(np.float64))))
        if diff > atol or int(row_a.argmax()) != int(row_b.argmax()):
            raise AssertionError(f"item {i}: max |{name_a} - {name_b}| = {diff:.3g} (atol {atol:g}), "
                                 f"argmax {int(row_a.argmax())} vs {int(row_b.argmax())}")


def check_similar(*, a: np.ndarray, b: np.ndarray, name_a: str, name_b: str, tol: float) -> None:
    """Cosine similarity of each row pair must be >= 1 - tol."""
    assert a.shape == b.shape, f"shapes differ: {name_a}{a.shape} vs {name_b}{b.shape}"
    for i, (row_a, row_b) in enumerate(zip(a, b)):
        sim = cosine(row_a, row_b)
        if sim < 1 - tol:
            raise AssertionError(f"item {i}: cosine({name_a}, {name_b}) = {sim:.6f} < 1 - {tol:g}")
