"""fastembed (Qdrant's ONNX Runtime embedder) as an Embedder, on the real MiniLM exported locally.

fastembed normally downloads its models' ONNX files from a hub. Here the model is exported to
ONNX once (sentence-transformers' ONNX backend, the same conversion-cache entry the
sentence_transformers_onnx engine uses), registered with TextEmbedding.add_custom_model under a
local name and loaded from that folder (specific_model_path), so nothing is downloaded. Its
pooling and normalization are declared from the model's own sentence-transformers modules.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from fastembed import TextEmbedding
from fastembed.common.model_description import ModelSource, PoolingType

from engines.base import Capabilities, Embedder, InvalidParameterError, as_rows
from engines.sentence_transformers import SentenceTransformersOnnxEmbedder

POOLING = {"mean": PoolingType.MEAN, "cls": PoolingType.CLS}
OLD_KEYS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}


def register(model_dir: Path, name: str) -> None:
    """Declare the exported model to fastembed: its pooling, normalization and dimension, from
    its sentence-transformers modules (either form of their pooling config)."""
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    mode = pooling.get("pooling_mode") or next(OLD_KEYS[k] for k, on in pooling.items()
                                               if on is True and k in OLD_KEYS)
    if mode not in POOLING:
        raise InvalidParameterError(f"fastembed: pooling {mode!r} of {model_dir} is not one of "
                                    f"{sorted(POOLING)}")
    dim = pooling.get("embedding_dimension") or pooling["word_embedding_dimension"]
    modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
    normalize = any(m["type"].endswith("Normalize") for m in modules)
    TextEmbedding.add_custom_model(model=name, pooling=POOLING[mode], normalization=normalize,
                                   sources=ModelSource(hf=name), dim=dim, model_file="onnx/model.onnx")


class FastEmbedEmbedder(Embedder):
    """TextEmbedding(model_name=<registered>, specific_model_path=<export>).embed()."""

    capabilities = Capabilities(batching=True)
    parity_tolerance = 1e-4  # ONNX Runtime's kernels against torch's

    def __init__(self) -> None:
        self._model: TextEmbedding | None = None
        self._dim = 0

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        folder = SentenceTransformersOnnxEmbedder.exported(model_dir)
        name = f"infermatrix/{folder.name}"
        if name not in {m["model"] for m in TextEmbedding.list_supported_models()}:
            register(folder, name)
        # fastembed-gpu: the CUDA execution provider where the cell's device is cuda
        providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self._model = TextEmbedding(model_name=name, specific_model_path=str(folder),
                                    local_files_only=True, providers=providers)
        self._dim = int(self._embed(["dimension probe"], normalize=True).shape[1])

    def _embed(self, texts: list[str], normalize: bool) -> np.ndarray:
        return as_rows(list(self._model.embed(texts)), normalize=normalize)

    def _dimension(self) -> int:
        return self._dim

    def _close(self) -> None:
        self._model = None
