"""sentence-transformers as Embedders: the torch backend (the embedding reference), and its
ONNX and OpenVINO backends as engines of their own.

The ONNX and OpenVINO backends export the model the first time; the export is
kept in the conversion cache (fixtures/convert.py), once per content and
exporter version, and loaded from there afterwards.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
from sentence_transformers import SentenceTransformer

from engines.base import Capabilities, Deviation, Embedder, LoadedWeights
from fixtures.convert import converted, converter_version


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
        folder, options = self.exported(model_dir), dict(self.model_options)
        quantized = self.quantization != "none"
        if quantized:
            q = self.quantization
            folder = converted(model_dir, f"st-{self.backend}-{q}", self.exporter_version(),
                               lambda src, out: self._export_quantized(src, out, q))
            options["file_name"] = f"{self.backend}/{self.quantized_files[q]}"
        kwargs = {"model_kwargs": options} if options else {}
        graph = folder / options.get("file_name", "")
        files = [graph, graph.with_suffix(".bin")] if quantized else (folder / self.backend).iterdir()
        self.weights = LoadedWeights(  # OpenVINO: .xml + .bin
            bytes=sum(p.stat().st_size for p in files if p.is_file()))
        self._model = SentenceTransformer(str(folder), device=device, backend=self.backend,
                                          local_files_only=True, **kwargs)

    quantized_files: ClassVar[dict[str, str]]
    """Quantization -> the graph written beside the float32 one in the export's folder."""
    model_options: ClassVar[dict] = {}
    """model_kwargs for the backend's model class, on every load."""

    @classmethod
    @abstractmethod
    def _export_quantized(cls, model_dir: Path, out: Path, quantization: str) -> None:
        """The export with the backend's graph of `quantization` beside it."""

    @classmethod
    def exported(cls, model_dir: Path) -> Path:
        """The folder of the model exported to this backend (sentence-transformers' own save:
        the graph under onnx/ or openvino/, with the tokenizer and pooling files)."""
        return converted(model_dir, f"st-{cls.backend}", cls.exporter_version(), cls._export)

    @classmethod
    def exporter_version(cls) -> str:
        """What keys the cached exports: the exporting distributions' versions."""
        return converter_version(*cls.exporter)

    @classmethod
    def _export(cls, model_dir: Path, out: Path) -> None:
        SentenceTransformer(str(model_dir), device="cpu", backend=cls.backend,
                            local_files_only=True).save(str(out))


class SentenceTransformersOnnxEmbedder(_ExportedBackend):
    backend = "onnx"
    exporter = ("sentence-transformers", "optimum-onnx", "onnxruntime|onnxruntime-gpu", "transformers")
    # what export_dynamic_quantized_onnx_model(.., "avx2") writes
    quantized_files: ClassVar[dict[str, str]] = {"int8": "model_quint8_avx2.onnx"}

    @classmethod
    def _export_quantized(cls, model_dir: Path, out: Path, quantization: str) -> None:
        """ONNX Runtime's dynamic int8 (weights; each MatMul's input quantized on the fly), by
        sentence-transformers' own export_dynamic_quantized_onnx_model, AVX2 preset."""
        from sentence_transformers import export_dynamic_quantized_onnx_model

        cls._export(model_dir, out)
        model = SentenceTransformer(str(out), device="cpu", backend="onnx", local_files_only=True)
        export_dynamic_quantized_onnx_model(model, "avx2", str(out))
    quantized_deviations: ClassVar[dict[str, dict[str, Deviation]]] = {"int8": {
        "batch_size_invariance": Deviation(
            "ONNX Runtime's dynamic int8 quantizes each MatMul's input with one scale for the "
            "whole tensor (DynamicQuantizeLinear), so a text's vector depends on the texts "
            "batched with it: measured up to 0.025 apart, alone and in a batch of two",
            "https://onnx.ai/onnx/operators/onnx__DynamicQuantizeLinear.html")}}


class SentenceTransformersOpenVinoEmbedder(_ExportedBackend):
    backend = "openvino"
    exporter = ("sentence-transformers", "optimum-intel", "openvino", "nncf", "transformers")
    quantized_files: ClassVar[dict[str, str]] = {"int8": "openvino_model_int8.xml",
                                                 "int4": "openvino_model_int4.xml"}
    # float32 asked, float32 computed: on a CPU with AVX-512 BF16 the plugin's default inference
    # precision is bf16 (measured on MiniLM: cosine 0.99998 to float32, the known similarity
    # 0.0010 off, at the "none" bound's edge)
    model_options: ClassVar[dict] = {"ov_config": {"INFERENCE_PRECISION_HINT": "f32"}}

    @classmethod
    def _export_quantized(cls, model_dir: Path, out: Path, quantization: str) -> None:
        """NNCF's weight compression of the exported graph, as optimum-intel's `--weight-format`
        does it (activations stay float32): int8, 8-bit asymmetric with a scale per output
        channel; int4, 4-bit asymmetric in groups of 128 (the embedding and what NNCF keeps out
        of the ratio in 8 bits)."""
        import nncf
        import openvino

        cls._export(model_dir, out)
        graph = openvino.Core().read_model(out / cls.backend / "openvino_model.xml")
        mode = {"int8": {"mode": nncf.CompressWeightsMode.INT8_ASYM},
                "int4": {"mode": nncf.CompressWeightsMode.INT4_ASYM, "group_size": 128,
                         "ratio": 1.0}}[quantization]
        compressed = nncf.compress_weights(graph, **mode)
        openvino.save_model(compressed, out / cls.backend / cls.quantized_files[quantization])
