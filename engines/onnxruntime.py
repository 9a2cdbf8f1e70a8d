"""ONNX Runtime through optimum-onnx (ORTModelForCausalLM) as a Generator.

The fixture is exported to ONNX once per content and exporter version
(fixtures/convert.py); the adapter then drives ORTModelForCausalLM with the
same generate() machinery as transformers, so any difference in the report
comes from ONNX Runtime's kernels, not from different decoding code.
Quantization "int8": ONNX Runtime's dynamic quantization of that export, through
optimum's ORTQuantizer with its AVX2 preset (int8 weights per tensor; each MatMul's
input quantized on the fly).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from optimum.onnxruntime import ORTModelForCausalLM, ORTQuantizer
from optimum.onnxruntime.configuration import AutoQuantizationConfig

from engines.base import Deviation, LoadedWeights
from engines.formats.weights_read import onnx_read_bytes
from engines.transformers import TransformersGenerator
from fixtures.convert import converted


def _export(model_dir: Path, out: Path) -> None:
    ORTModelForCausalLM.from_pretrained(str(model_dir), export=True, local_files_only=True) \
        .save_pretrained(str(out))


def _export_int8(model_dir: Path, out: Path) -> None:
    """The export, then its dynamic int8 graph beside it (model_quantized.onnx); the float32
    graph is removed."""
    _export(model_dir, out)
    config = AutoQuantizationConfig.avx2(is_static=False, per_channel=False)
    ORTQuantizer.from_pretrained(str(out), file_name="model.onnx") \
        .quantize(save_dir=str(out), quantization_config=config)
    (out / "model.onnx").unlink()


def exporter_version() -> str:
    names = ("optimum-onnx", "transformers", "torch", "onnx")
    return " ".join(f"{n}=={importlib.metadata.version(n)}" for n in names)


class OnnxRuntimeGenerator(TransformersGenerator):
    """ORTModelForCausalLM on the exported fixture, the CPU (or CUDA) execution provider."""

    # everything transformers' generate() offers but adapters (CUDA needs the onnxruntime-gpu
    # build, so the registry declares it on the CPU only)
    capabilities = replace(TransformersGenerator.capabilities, lora=False)
    unsupported: ClassVar[dict[str, str]] = {
        "lora": "ORTModelForCausalLM runs the exported graph, which has no LoRA layers: an adapter "
                "is merged into the weights before export (peft's merge_and_unload)"}
    # dynamic int8: each MatMul's input quantized on the fly, MatMulInteger (uint8 x int8)
    quantized_compute: ClassVar[dict[str, str]] = {"int8": "int8"}
    quantized_deviations: ClassVar[dict[str, dict[str, Deviation]]] = {"int8": {
        prop: Deviation(
            "ONNX Runtime's dynamic int8 quantizes each MatMul's input with one scale for the "
            "whole tensor (DynamicQuantizeLinear), so a row's logits depend on the rows, padding "
            "and positions computed with it: measured on small-llama, generating 5 tokens and "
            "continuing from the ids diverged from generating 12 at once at position 5",
            "https://onnx.ai/onnx/operators/onnx__DynamicQuantizeLinear.html")
        for prop in ("batch_invariance", "padding_invariance", "continuation")}}

    def _load_model(self, model_dir: Path, device: str, dtype: str):
        if self.quantization == "int8":
            onnx_dir, graph = converted(model_dir, "optimum-onnx-int8", exporter_version(),
                                        _export_int8), "model_quantized.onnx"
        else:
            onnx_dir, graph = converted(model_dir, "optimum-onnx", exporter_version(),
                                        _export), "model.onnx"
        self.weights = LoadedWeights(  # the graph and its _data file
            bytes=sum(p.stat().st_size for p in onnx_dir.glob(f"{graph}*")),
            read_bytes=onnx_read_bytes(onnx_dir / graph))
        provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
        return ORTModelForCausalLM.from_pretrained(str(onnx_dir), local_files_only=True,
                                                   file_name=graph, provider=provider)
