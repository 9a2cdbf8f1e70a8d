"""The `embed` package (BatchedInference, a sync API over infinity-emb) as an Embedder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from embed import BatchedInference

from engines.base import Capabilities, Embedder, as_rows


class EmbedEmbedder(Embedder):
    """BatchedInference(model_id=<folder>, engine="torch").embed(...).result()."""

    capabilities = Capabilities(batching=True)
    parity_tolerance = 1e-4  # BetterTransformer's fused kernels reorder float sums

    def __init__(self) -> None:
        self._register: BatchedInference | None = None
        self._model_id = ""
        self._dim = 0

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        self._model_id = str(model_dir)
        self._register = BatchedInference(model_id=self._model_id, engine="torch", device=device,
                                          dtype=dtype)
        self._dim = int(self._embed(["dimension probe"], normalize=True).shape[1])

    def _embed(self, texts: list[str], normalize: bool) -> np.ndarray:
        future = self._register.embed(sentences=texts, model_id=self._model_id)
        vectors, _usage = future.result()
        return as_rows(vectors, normalize=normalize)

    def _dimension(self) -> int:
        return self._dim

    def _close(self) -> None:
        self._register.stop()
        self._register = None
