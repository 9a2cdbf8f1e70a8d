"""Embedding conformance: every Embedder must satisfy these, on every fixture."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conformance.compare import check_embeddings_close, cosine

TEXTS = (
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "Two men pushed carts through the woods.",
)
# all-MiniLM-L6-v2's model card shows this pair's cosine similarity as 0.7553.
KNOWN_PAIR = ("A man is eating food.", "A man is eating a piece of bread.")
KNOWN_COSINE = 0.7553
KNOWN_TOL = 0.001


def test_shape_and_dimension(engine) -> None:
    """embed() returns float32 (n, dimension)."""
    vectors = engine.embed(TEXTS)
    assert vectors.dtype == np.float32, f"dtype {vectors.dtype}, expected float32"
    assert vectors.shape == (len(TEXTS), engine.dimension), (
        f"shape {vectors.shape}, expected ({len(TEXTS)}, {engine.dimension})"
    )


def test_unit_norm(engine) -> None:
    """normalize=True gives rows of unit L2 norm; normalize=False keeps the raw norm."""
    norms = np.linalg.norm(engine.embed(TEXTS, normalize=True).astype(np.float64), axis=1)
    bad = [(i, round(float(n), 7)) for i, n in enumerate(norms) if abs(n - 1) > 1e-5]
    assert not bad, f"rows with |norm - 1| > 1e-5: {bad}"


def test_batch_size_invariance(engine) -> None:
    """Each text embedded alone equals its row in a batch (atol 1e-5)."""
    batched = engine.embed(TEXTS)
    alone = np.stack([engine.embed([t])[0] for t in TEXTS])
    check_embeddings_close(a=alone, b=batched, name_a="alone", name_b="in batch", atol=1e-5)


def test_known_value(engine, fixture_name: str) -> None:
    """On the real all-MiniLM-L6-v2, the model card's cosine 0.7553 within 0.001."""
    if fixture_name != "all-minilm-l6-v2":
        pytest.skip(f"no published value for fixture {fixture_name!r}")
    a, b = engine.embed(KNOWN_PAIR)
    value = cosine(a, b)
    assert abs(value - KNOWN_COSINE) <= KNOWN_TOL, (
        f"cosine{KNOWN_PAIR} = {value:.4f}, published {KNOWN_COSINE} ± {KNOWN_TOL}"
    )
