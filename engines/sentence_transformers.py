"""sentence-transformers (torch backend) as an Embedder: the embedding reference."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

from engines.base import Capabilities, Embedder, check_prompts


class SentenceTransformersEmbedder(Embedder):
    """SentenceTransformer(model_dir).encode(), loaded from a local folder only."""

    id = "sentence_transformers"
    capabilities = Capabilities(batching=True, devices=("cpu", "cuda"))
    batch_size = 32

    def __init__(self) -> None:
        self._model: SentenceTransformer | None = None

    def load(self, model_dir: Path, *, device: str = "cpu", dtype: str = "float32") -> None:
        self.check_device(device)
        self._model = SentenceTransformer(
            str(model_dir), device=device, local_files_only=True, model_kwargs={"dtype": dtype}
        )

    def _loaded(self) -> SentenceTransformer:
        if self._model is None:
            raise RuntimeError("sentence_transformers: call load() before using the engine")
        return self._model

    def embed(self, texts: Sequence[str], *, normalize: bool = True) -> np.ndarray:
        check_prompts(texts)
        vectors = self._loaded().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    @property
    def dimension(self) -> int:
        return int(self._loaded().get_embedding_dimension())

    def close(self) -> None:
        self._model = None
