"""infinity-emb's async embedding engine (torch backend) as an Embedder.

The adapter owns one asyncio event loop and drives AsyncEmbeddingEngine
through it, the way a service calls `await engine.embed(...)`. EngineArgs
keep the library's defaults (bettertransformer=True among them), so the
matrix tests what a user gets; only the start-up warm-up is skipped.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from infinity_emb import AsyncEmbeddingEngine, EngineArgs

from engines.base import Capabilities, Embedder, as_rows


class InfinityEmbedder(Embedder):
    """AsyncEmbeddingEngine.from_args(EngineArgs(engine="torch")) on a local folder."""

    capabilities = Capabilities(batching=True)
    parity_tolerance = 1e-4  # BetterTransformer's fused kernels reorder float sums

    def __init__(self) -> None:
        self._engine: AsyncEmbeddingEngine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dim = 0

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        args = EngineArgs(model_name_or_path=str(model_dir), engine="torch", device=device,
                          dtype=dtype, model_warmup=False)
        self._loop = asyncio.new_event_loop()
        self._engine = AsyncEmbeddingEngine.from_args(args)
        self._loop.run_until_complete(self._engine.astart())
        self._dim = int(self._embed(["dimension probe"], normalize=True).shape[1])

    def _embed(self, texts: list[str], normalize: bool) -> np.ndarray:
        vectors, _usage = self._loop.run_until_complete(self._engine.embed(sentences=texts))
        return as_rows(vectors, normalize=normalize)

    def _dimension(self) -> int:
        return self._dim

    def _close(self) -> None:
        self._loop.run_until_complete(self._engine.astop())
        self._loop.close()
        self._engine = None
        self._loop = None
