"""OpenVINO through optimum-intel (OVModelForCausalLM) as a Generator.

The fixture is exported once per content, exporter version and weight format
(fixtures/convert.py) by optimum-intel's `optimum-cli export openvino`; the adapter then
drives OVModelForCausalLM with transformers' generate(), as engines/onnxruntime.py does
ONNX Runtime's, so a difference in the report comes from OpenVINO's CPU plugin. OpenVINO
GenAI (engines/openvino_genai.py) runs the same export through its own pipeline.

Quantization: NNCF's weight compression at export (`--weight-format`): "int8" (8-bit
asymmetric, one scale per output channel) and "int4" (4-bit asymmetric in groups of 128, or
64 where 128 does not divide the model's sizes; the embedding and the head kept in 8 bits);
the plugin dequantizes in its kernels.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from engines.base import LoadedWeights
from engines.formats.w4_checkpoints import GROUP, group_size
from engines.transformers import TransformersGenerator
from fixtures.convert import converted

WEIGHT_FORMATS = {"none": "fp32", "int8": "int8", "int4": "int4"}
"""Quantization -> optimum-cli's --weight-format."""


def export(model_dir: Path, out: Path, weight_format: str = "fp32") -> None:
    """optimum-intel's exporter, with the tokenizer converted to OpenVINO (openvino-tokenizers).
    int4 groups 128 inputs per scale, or 64 where 128 does not divide the model's sizes (NNCF
    refuses SmolLM2-135M's 576 channels in groups of 128)."""
    extra = []
    if weight_format == "int4":
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        if (group := group_size(config)) != GROUP:
            extra = ["--group-size", str(group)]
    done = subprocess.run([sys.executable, "-m", "optimum.commands.optimum_cli", "export", "openvino",
                           "--model", str(model_dir), "--task", "text-generation-with-past",
                           "--weight-format", weight_format, *extra, str(out)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0 or not (out / "openvino_tokenizer.xml").is_file():
        raise RuntimeError(f"optimum-cli export openvino --weight-format {weight_format} failed: "
                           f"{done.stderr.strip()[-800:]}")


def exporter_version() -> str:
    names = ("optimum-intel", "openvino", "openvino-tokenizers", "nncf", "transformers", "torch")
    return " ".join(f"{n}=={importlib.metadata.version(n)}" for n in names)


def exported(model_dir: Path, quantization: str = "none") -> Path:
    """The cached export of `model_dir`, its weights compressed as `quantization` says."""
    fmt = WEIGHT_FORMATS[quantization]
    name = "openvino-genai" if quantization == "none" else f"openvino-{quantization}"
    return converted(model_dir, name, exporter_version(), lambda src, out: export(src, out, fmt))


class OpenVinoGenerator(TransformersGenerator):
    """OVModelForCausalLM on the exported fixture, CPU plugin, float32 inference."""

    capabilities = replace(TransformersGenerator.capabilities, lora=False)
    # compressed weights: the CPU plugin quantizes each FC's activations to int8 in groups of 32
    # (its DYNAMIC_QUANTIZATION_GROUP_SIZE default, read here: 32) and multiplies integers
    quantized_compute: ClassVar[dict[str, str]] = {"int8": "int8", "int4": "int8"}
    unsupported: ClassVar[dict[str, str]] = {
        "lora": "OVModelForCausalLM runs the exported IR, which has no LoRA layers (OpenVINO "
                "GenAI's LLMPipeline applies adapters at run time; optimum-intel merges them "
                "before export)"}
    # The CPU plugin keeps its KV cache in u8 by default: decode-time log-probabilities move by
    # up to 7.3e-3 nats on small-llama (3.9e-5 with KV_CACHE_PRECISION f32). The adapter runs
    # the default, as deployments do; teacher-forced logits (no cache) are exact.
    logprob_tolerance = 1e-2

    def _load_model(self, model_dir: Path, device: str, dtype: str):
        from optimum.intel import OVModelForCausalLM  # here: openvino_genai shares export()

        folder = exported(model_dir, self.quantization)
        self.weights = LoadedWeights(bytes=(folder / "openvino_model.bin").stat().st_size)
        # float32 asked, float32 computed: on a CPU with AVX-512 BF16 the plugin's default
        # inference precision is bf16 (measured on small-llama: 1e-3 nats mean KL from float32)
        return OVModelForCausalLM.from_pretrained(str(folder), export=False, device=device.upper(),
                                                  ov_config={"INFERENCE_PRECISION_HINT": "f32"},
                                                  local_files_only=True)
