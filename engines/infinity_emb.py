"""infinity-emb's async embedding engine (torch backend) as an Embedder.

The adapter owns one asyncio event loop and drives AsyncEmbeddingEngine
through it, the way a service calls `await engine.embed(...)`. EngineArgs
keep the library's defaults (bettertransformer=True among them), so the
matrix tests what a user gets; only the start-up warm-up is skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from infinity_emb import AsyncEmbeddingEngine, EngineArgs

from engines.base import Capabilities, Embedder, as_rows, check_prompts


class InfinityEmbedder(Embedder):
    """AsyncEmbeddingEngine.from_args(EngineArgs(engine="torch")) on a local folder."""

    id = "infinity_emb"
    capabilities = Capabilities(batching=True, devices=("cpu", "cuda"))
    parity_tolerance = 1e-4  # BetterTransformer's fused kernels reorder float sums

    def __init__(self) -> None:
        self._engine: AsyncEmbeddingEngine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dimension = 0

    def load(self, model_dir: Path, *, device: str = "cpu", dtype: str = "float32") -> None:
        self.check_device(device)
        args = EngineArgs(model_name_or_path=str(model_dir), engine="torch", device=device,
                          dtype=dtype, model_warmup=False)
        self._loop = asyncio.new_event_loop()
        self._engine = AsyncEmbeddingEngine.from_args(args)
        self._loop.run_until_complete(self._engine.astart())
        self._dimension = int(self.embed(["dimension probe"]).shape[1])

    def embed(self, texts: Sequence[str], *, normalize: bool = True) -> np.ndarray:
        check_prompts(texts)
        if self._engine is None or self._loop is None:
            raise RuntimeError("infinity_emb: call load() before using the engine")
        vectors, _usage = self._loop.run_until_complete(self._engine.embed(sentences=list(texts)))
        return as_rows(vectors, normalize=normalize)

    @property
    def dimension(self) -> int:
        return self._dimension

    def close(self) -> None:
        if self._engine is not None and self._loop is not None:
            self._loop.run_until_complete(self._engine.astop())
            self._loop.close()
        self._engine = None
        self._loop = None
