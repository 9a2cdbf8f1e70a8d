"""Embedding conformance: every Embedder must satisfy these, on every fixture."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.quality import tolerance
from core.details import PropertyFigures, QualityFigures
from core.records import to_json
from engines.base import InvalidParameterError
from incell.conformance.compare import check_embeddings_close, check_similar, cosine
from incell.conformance.inputs import TEXTS

# Short on purpose (six words at most): the published value below covers longer text.
PARITY_TEXTS = ("A man is eating food.", "The girl is carrying a baby.",
                "A man is riding a horse.", "Two men pushed carts.")
# all-MiniLM-L6-v2's model card shows this pair's cosine similarity as 0.7553.
KNOWN_PAIR = ("A man is eating food.", "A man is eating a piece of bread.")
KNOWN_COSINE = 0.7553
KNOWN_TOL = 0.001
SENTENCE = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")),
                   min_size=1, max_size=80)


def test_shape_and_dimension(engine) -> None:
    """embed() returns float32 (n, dimension)."""
    vectors = engine.embed(TEXTS)
    assert vectors.dtype == np.float32, f"dtype {vectors.dtype}, expected float32"
    assert vectors.shape == (len(TEXTS), engine.dimension), (
        f"shape {vectors.shape}, expected ({len(TEXTS)}, {engine.dimension})")


@functools.cache
def reference_model(model_dir: str):
    """sentence-transformers and the reference model on `model_dir` (torch, float32), loaded once
    for the properties that compare with it; skips where the reference is not installed."""
    st_module = pytest.importorskip("sentence_transformers",
                                    reason="the reference (sentence-transformers) is not installed")
    return st_module, st_module.SentenceTransformer(model_dir, device="cpu", local_files_only=True)


def elementwise(engine) -> float:
    """Element-wise agreement of two embeddings: 1e-5 in float32 (bench/quality.tolerance)."""
    return tolerance(engine.dtype, "embedding", 1e-5)


def test_reference_parity(engine, model_dir, record_property) -> None:
    """Cosine with sentence-transformers (torch) >= 1 - the tolerance the adapter declares (or,
    computing in a reduced dtype, the dtype's: bench/quality.tolerance)."""
    if engine.quantization != "none":
        pytest.skip(f"quantized ({engine.quantization}): judged by quantization_quality")
    st_module, ref = reference_model(str(model_dir))
    expected = ref.encode(list(PARITY_TEXTS), normalize_embeddings=True, convert_to_numpy=True)
    got = engine.embed(PARITY_TEXTS)
    tol = tolerance(engine.dtype, "cosine", engine.parity_tolerance)
    check_similar(a=got, b=expected, name_a=engine.id,
                  name_b="sentence-transformers", tol=tol)
    lowest = min(cosine(a, b) for a, b in zip(got, expected))
    record_property("note", f"min cosine {lowest:.7f} vs sentence-transformers "
                            f"{st_module.__version__} (tolerance {tol:g}, {engine.dtype})")


@given(texts=st.lists(SENTENCE, min_size=1, max_size=6))
def test_unit_norm(engine, texts: list[str]) -> None:
    """normalize=True gives rows of unit L2 norm."""
    norms = np.linalg.norm(engine.embed(texts, normalize=True).astype(np.float64), axis=1)
    tol = tolerance(engine.dtype, "norm", 1e-5)
    bad = [(i, round(float(n), 7)) for i, n in enumerate(norms) if abs(n - 1) > tol]
    assert not bad, f"rows with |norm - 1| > {tol:g} ({engine.dtype}): {bad}"


@given(texts=st.lists(SENTENCE, min_size=2, max_size=6))
def test_batch_size_invariance(engine, texts: list[str]) -> None:
    """Each text embedded alone equals its row in a batch (atol 1e-5 in float32)."""
    batched = engine.embed(texts)
    alone = np.stack([engine.embed([t])[0] for t in texts])
    check_embeddings_close(a=alone, b=batched, name_a="alone", name_b="in batch", atol=elementwise(engine))


@given(order=st.permutations(range(len(TEXTS))))
def test_order_invariance(engine, order: list[int]) -> None:
    """Permuting the inputs permutes the rows, nothing else."""
    base = engine.embed(TEXTS)
    permuted = engine.embed([TEXTS[i] for i in order])
    check_embeddings_close(a=base[list(order)], b=permuted, name_a="permuted reference",
                           name_b="permuted batch", atol=elementwise(engine))


def test_truncation_contract(engine, model_dir) -> None:
    """Over-long inputs embed as their truncation: same first max-length tokens, same vector."""
    config = json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
    # just past the limit (a word is one token here), so the tails differ only beyond it
    words = " ".join(["word"] * (config["max_seq_length"] + 16))
    a, b = engine.embed([words + " the ending one", words + " another tail entirely"])
    check_embeddings_close(a=a[None], b=b[None], name_a="long + tail 1", name_b="long + tail 2",
                           atol=elementwise(engine))


def test_whitespace_contract(engine) -> None:
    """Extra whitespace changes nothing, or something, as the adapter declares."""
    plain = engine.embed(["A man is eating food."])
    spaced = engine.embed(["  A man   is eating\tfood.  "])
    if engine.capabilities.whitespace_insensitive:
        check_embeddings_close(a=spaced, b=plain, name_a="extra whitespace", name_b="plain",
                               atol=elementwise(engine))
    else:
        assert not np.allclose(spaced, plain, atol=1e-5), "declared whitespace-sensitive"


def test_known_value(engine, fixture_name: str) -> None:
    """On the real all-MiniLM-L6-v2, the model card's cosine 0.7553 within 0.001."""
    if fixture_name != "all-minilm-l6-v2":
        pytest.skip(f"no published value for fixture {fixture_name!r}")
    if engine.quantization != "none":
        pytest.skip(f"quantized ({engine.quantization}): its drift is quantization_quality's")
    a, b = engine.embed(KNOWN_PAIR)
    value = cosine(a, b)
    assert abs(value - KNOWN_COSINE) <= KNOWN_TOL, (
        f"cosine{KNOWN_PAIR} = {value:.4f}, published {KNOWN_COSINE} ± {KNOWN_TOL}")


@given(batches=st.lists(st.tuples(st.lists(st.one_of(SENTENCE, st.sampled_from(TEXTS)),
                                          min_size=1, max_size=5), st.booleans()),
                        min_size=1, max_size=3))
def test_call_order_independence(engine, fresh_engine, batches: list) -> None:
    """embed(TEXTS) after any prior calls (any sizes, either normalize) equals a fresh instance's."""
    raw = engine.embed(list(TEXTS[:2]), normalize=False)  # a fixed prefix, then drawn calls
    check_embeddings_close(a=raw, b=fresh_engine("embed_raw"), name_a="after prior calls",
                           name_b="fresh instance", atol=elementwise(engine))
    for batch, normalize in batches:
        engine.embed(batch, normalize=normalize)
    check_embeddings_close(a=engine.embed(TEXTS), b=fresh_engine("embed"),
                           name_a="after prior calls", name_b="fresh instance", atol=elementwise(engine))


def test_quantization_quality(engine, model_dir, fixture_name: str, record_property) -> None:
    """The engine's vectors against sentence-transformers' float32 ones (cosine: mean and least)
    and, on the real MiniLM, the drift of the model card's known similarity, within the bound
    the engine's quantization declares (bench/quality.py COSINE_BOUNDS)."""
    from bench.quality import COSINE_BOUNDS, cosine_drift

    _, ref = reference_model(str(model_dir))
    texts = [*PARITY_TEXTS, *KNOWN_PAIR]
    figures = QualityFigures(quantization=engine.quantization, weights_bytes=engine.weights.bytes,
                             **cosine_drift(ref.encode(texts, normalize_embeddings=True,
                                                       convert_to_numpy=True), engine.embed(texts)))
    if fixture_name == "all-minilm-l6-v2":
        figures.known_drift = abs(cosine(*engine.embed(KNOWN_PAIR)) - KNOWN_COSINE)
    least, drift_limit = COSINE_BOUNDS[engine.quantization]
    record_property("figures", json.dumps(to_json(PropertyFigures(quality=figures))))
    record_property("note", f"{engine.quantization}: min cosine {figures.min_cosine:.5f}, mean "
                    f"{figures.mean_cosine:.5f}" + (f", known similarity off by "
                    f"{figures.known_drift:.4f}" if figures.known_drift is not None else ""))
    assert figures.min_cosine >= least, (f"{engine.quantization}: min cosine "
                                         f"{figures.min_cosine:.5f} < {least}")
    assert (figures.known_drift or 0.0) <= drift_limit, (
        f"{engine.quantization}: the known similarity drifted {figures.known_drift:.4f} "
        f"> {drift_limit}")


@pytest.mark.parametrize("bad", [[], "a bare string", ["ok", 3], [None]])
def test_typed_errors(engine, bad) -> None:
    """Bad input raises InvalidParameterError; the empty string behaves as declared."""
    with pytest.raises(InvalidParameterError):
        engine.embed(bad)
    if engine.capabilities.empty_string == "error":
        with pytest.raises(InvalidParameterError):
            engine.embed([""])
    else:
        vector = engine.embed([""])
        assert vector.shape == (1, engine.dimension) and np.isfinite(vector).all()
