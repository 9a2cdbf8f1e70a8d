"""The `embed` package (BatchedInference, a sync API over infinity-emb) as an Embedder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from embed import BatchedInference

from engines.base import Capabilities, Embedder, as_rows, check_prompts


class EmbedEmbedder(Embedder):
    """BatchedInference(model_id=<folder>, engine="torch").embed(...).result()."""

    id = "embed"
    capabilities = Capabilities(batching=True, devices=("cpu", "cuda"))
    parity_tolerance = 1e-4  # BetterTransformer's fused kernels reorder float sums

    def __init__(self) -> None:
        self._register: BatchedInference | None = None
        self._model_id = ""
        self._dimension = 0

    def load(self, model_dir: Path, *, device: str = "cpu", dtype: str = "float32") -> None:
        self.check_device(device)
        self._model_id = str(model_dir)
        self._register = BatchedInference(model_id=self._model_id, engine="torch", device=device,
                                          dtype=dtype)
        self._dimension = int(self.embed(["dimension probe"]).shape[1])

    def embed(self, texts: Sequence[str], *, normalize: bool = True) -> np.ndarray:
        check_prompts(texts)
        if self._register is None:
            raise RuntimeError("embed: call load() before using the engine")
        future = self._register.embed(sentences=list(texts), model_id=self._model_id)
        vectors, _usage = future.result()
        return as_rows(vectors, normalize=normalize)

    @property
    def dimension(self) -> int:
        return self._dimension

    def close(self) -> None:
        if self._register is not None:
            self._register.stop()
        self._register = None
