"""Broken Embedders: the real sentence-transformers adapter with one bug each. BROKEN maps
each to the one property that must fail."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from engines.base import Deviation
from engines.sentence_transformers import SentenceTransformersEmbedder


class Float64Rows(SentenceTransformersEmbedder):
    """Returns float64 instead of float32."""

    def embed(self, texts, *, normalize=True):
        return super().embed(texts, normalize=normalize).astype(np.float64)


class ScrambledDimensions(SentenceTransformersEmbedder):
    """Pooling writes the dimensions in the wrong order (cosines between outputs survive)."""

    def embed(self, texts, *, normalize=True):
        vectors = super().embed(texts, normalize=normalize)
        return vectors[:, ::-1].copy()


class ScaledNormalized(SentenceTransformersEmbedder):
    """normalize=True leaves rows at 1.5x unit length."""

    def embed(self, texts, *, normalize=True):
        vectors = super().embed(texts, normalize=normalize)
        return vectors * np.float32(1.5) if normalize else vectors


class SingleTextPath(SentenceTransformersEmbedder):
    """One text takes another code path that nudges the vector."""

    def embed(self, texts, *, normalize=True):
        vectors = super().embed(texts, normalize=normalize)
        if len(texts) == 1:
            vectors = vectors + np.float32(1e-3)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors


class SetCache(SentenceTransformersEmbedder):
    """Caches results by the set of texts and returns them in the first-seen order."""

    def embed(self, texts, *, normalize=True):
        self._cache = getattr(self, "_cache", {})
        key = (frozenset(texts), len(texts), normalize) if isinstance(texts, list | tuple) else None
        if key is None or key not in self._cache:
            result = super().embed(texts, normalize=normalize)
            if key is None:
                return result
            self._cache[key] = result
        return self._cache[key]


class NoTruncation(SentenceTransformersEmbedder):
    """Reads up to the model's 512 positions instead of its trained 256-token limit."""

    def load(self, *args, **kwargs) -> None:
        super().load(*args, **kwargs)
        self._model.max_seq_length = 512


class TabsAsWords(SentenceTransformersEmbedder):
    """A pre-processor spells tabs out as a word."""

    def embed(self, texts, *, normalize=True):
        if isinstance(texts, list | tuple) and all(isinstance(t, str) for t in texts):
            texts = [t.replace("\t", " tab ") for t in texts]
        return super().embed(texts, normalize=normalize)


class SixWords(SentenceTransformersEmbedder):
    """Cuts every input to its first six words (a max length counted in words)."""

    def embed(self, texts, *, normalize=True):
        if isinstance(texts, list | tuple) and all(isinstance(t, str) for t in texts):
            texts = [" ".join(t.split()[:6]) for t in texts]
        return super().embed(texts, normalize=normalize)


class FlagBlindCache(SentenceTransformersEmbedder):
    """Caches vectors by text alone: a normalize=False answer is served to normalize=True."""

    def embed(self, texts, *, normalize=True):
        self._cache = getattr(self, "_cache", {})
        vectors = super().embed(texts, normalize=normalize)
        rows = []
        for text, row in zip(texts, vectors, strict=True):
            if text not in self._cache:
                self._cache[text] = row if normalize else row * np.float32(2)
            rows.append(self._cache[text])
        return np.stack(rows).astype(np.float32)


class NoInputChecks(SentenceTransformersEmbedder):
    """Bad inputs go straight to the model."""

    def embed(self, texts, *, normalize=True):
        vectors = self._model.encode(list(texts), normalize_embeddings=normalize,
                                        convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


BROKEN = {
    Float64Rows: "shape_and_dimension",
    ScrambledDimensions: ("reference_parity", "quantization_quality"),  # wrong vectors, any bound
    ScaledNormalized: "unit_norm",
    SingleTextPath: "batch_size_invariance",
    SetCache: "order_invariance",
    NoTruncation: "truncation_contract",
    TabsAsWords: "whitespace_contract",
    SixWords: ("known_value", "quantization_quality"),  # the known similarity drifts
    FlagBlindCache: "call_order_independence",
    NoInputChecks: "typed_errors",
}


class DeclaredTabsAsWords(TabsAsWords):
    """The same bug, declared: the property must show as a deviation, not a failure."""

    deviations: ClassVar[dict[str, Deviation]] = {
        "whitespace_contract": Deviation(reason="tabs are spelled out as a word",
                                         link="https://example.org/tabs"),
    }


DEVIATING = {DeclaredTabsAsWords: "whitespace_contract"}
