"""ONNX Runtime through optimum-onnx (ORTModelForCausalLM) as a Generator.

The fixture is exported to ONNX once per content and exporter version
(fixtures/convert.py); the adapter then drives ORTModelForCausalLM with the
same generate() machinery as transformers, so any difference in the report
comes from ONNX Runtime's kernels, not from different decoding code.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from optimum.onnxruntime import ORTModelForCausalLM

from engines.base import InvalidParameterError
from engines.transformers import TransformersGenerator
from fixtures.convert import converted


def _export(model_dir: Path, out: Path) -> None:
    ORTModelForCausalLM.from_pretrained(str(model_dir), export=True, local_files_only=True) \
        .save_pretrained(str(out))


def exporter_version() -> str:
    names = ("optimum-onnx", "transformers", "torch", "onnx")
    return " ".join(f"{n}=={importlib.metadata.version(n)}" for n in names)


class OnnxRuntimeGenerator(TransformersGenerator):
    """ORTModelForCausalLM on the exported fixture, CPUExecutionProvider."""

    # everything transformers' generate() offers (CUDA needs the onnxruntime-gpu build, so the
    # registry declares it on the CPU only)

    def _load_model(self, model_dir: Path, device: str, dtype: str):
        if dtype != "float32":
            raise InvalidParameterError(f"onnxruntime: the exported graph is float32, not {dtype!r}")
        onnx_dir = converted(model_dir, "optimum-onnx", exporter_version(), _export)
        return ORTModelForCausalLM.from_pretrained(str(onnx_dir), local_files_only=True,
                                                   provider="CPUExecutionProvider")
