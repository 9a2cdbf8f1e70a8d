"""sentence-transformers as Embedders: the torch backend (the embedding reference), and its
ONNX and OpenVINO backends as engines of their own.

The ONNX and OpenVINO backends export the model the first time; the export is
kept in the conversion cache (fixtures/convert.py), once per content and
exporter version, and loaded from there afterwards.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import ClassVar

import numpy as np
from sentence_transformers import SentenceTransformer

from engines.base import Capabilities, Deviation, Embedder, InvalidParameterError
from fixtures.convert import converted

QINT8_FILE = "model_quint8_avx2.onnx"  # what export_dynamic_quantized_onnx_model(..., "avx2") writes


class SentenceTransformersEmbedder(Embedder):
    """SentenceTransformer(model_dir).encode(), loaded from a local folder only."""

    capabilities = Capabilities(batching=True)
    batch_size = 32

    def __init__(self) -> None:
        self._model: SentenceTransformer | None = None

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        self._model = SentenceTransformer(
            str(model_dir), device=device, local_files_only=True, model_kwargs={"dtype": dtype}
        )

    def _embed(self, texts: list[str], normalize: bool) -> np.ndarray:
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def _dimension(self) -> int:
        return int(self._model.get_embedding_dimension())

    def _close(self) -> None:
        self._model = None


class _ExportedBackend(SentenceTransformersEmbedder):
    """SentenceTransformer(backend=...) on the model exported once into the conversion cache."""

    backend: ClassVar[str]
    exporter: ClassVar[tuple[str, ...]]
    """Distributions whose versions key the cached export."""
    parity_tolerance = 1e-4

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        if dtype != "float32":
            raise InvalidParameterError(f"{self.id}: the exported graph is float32, not {dtype!r}")
        folder, kwargs = self.exported(model_dir), {}
        if self.quantization == "int8":  # ONNX Runtime's dynamic int8 (weights; activations on the fly)
            folder = self.quantized(model_dir)
            kwargs = {"model_kwargs": {"file_name": f"onnx/{QINT8_FILE}"}}
        graphs = [folder / self.backend / QINT8_FILE] if kwargs else \
            [p for p in (folder / self.backend).iterdir() if p.is_file()]
        self.weights_bytes = sum(p.stat().st_size for p in graphs)
        self._model = SentenceTransformer(str(folder), device=device, backend=self.backend,
                                          local_files_only=True, **kwargs)

    @classmethod
    def quantized(cls, model_dir: Path) -> Path:
        """The export with sentence-transformers' dynamic int8 ONNX graph beside it (avx2)."""
        def quantize(src: Path, out: Path) -> None:
            from sentence_transformers import export_dynamic_quantized_onnx_model

            cls._export(src, out)
            model = SentenceTransformer(str(out), device="cpu", backend="onnx", local_files_only=True)
            export_dynamic_quantized_onnx_model(model, "avx2", str(out))

        return converted(model_dir, f"st-{cls.backend}-int8", cls.exporter_version(), quantize)

    @classmethod
    def exported(cls, model_dir: Path) -> Path:
        """The folder of the model exported to this backend (sentence-transformers' own save:
        the graph under onnx/ or openvino/, with the tokenizer and pooling files)."""
        return converted(model_dir, f"st-{cls.backend}", cls.exporter_version(), cls._export)

    @classmethod
    def exporter_version(cls) -> str:
        """What keys the cached exports: the exporting distributions' versions."""
        return " ".join(f"{n}=={importlib.metadata.version(n)}" for n in cls.exporter)

    @classmethod
    def _export(cls, model_dir: Path, out: Path) -> None:
        SentenceTransformer(str(model_dir), device="cpu", backend=cls.backend,
                            local_files_only=True).save(str(out))


class SentenceTransformersOnnxEmbedder(_ExportedBackend):
    backend = "onnx"
    exporter = ("sentence-transformers", "optimum-onnx", "onnxruntime", "transformers")
    quantized_deviations: ClassVar[dict[str, dict[str, Deviation]]] = {"int8": {
        "batch_size_invariance": Deviation(
            "ONNX Runtime's dynamic int8 quantizes each MatMul's input with one scale for the "
            "whole tensor (DynamicQuantizeLinear), so a text's vector depends on the texts "
            "batched with it: measured up to 0.025 apart, alone and in a batch of two",
            "https://onnx.ai/onnx/operators/onnx__DynamicQuantizeLinear.html")}}


class SentenceTransformersOpenVinoEmbedder(_ExportedBackend):
    backend = "openvino"
    exporter = ("sentence-transformers", "optimum-intel", "openvino", "transformers")
