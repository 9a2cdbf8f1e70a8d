"""Lazy engine registry: listing engines never imports an engine library.

Each entry maps an engine id to "module:Class". Only engines/<id>.py imports
its engine library, and only when `load_engine_class(id)` is called.
"""

from __future__ import annotations

import importlib

from compat.errors import InfermatrixError, unknown

ENGINES: dict[str, str] = {
    "transformers": "engines.transformers:TransformersGenerator",
    "onnxruntime": "engines.onnxruntime:OnnxRuntimeGenerator",
    "ctranslate2": "engines.ctranslate2:CTranslate2Generator",
    "llama_cpp": "engines.llama_cpp:LlamaCppGenerator",
    "vllm": "engines.vllm:VllmGenerator",
    "sentence_transformers": "engines.sentence_transformers:SentenceTransformersEmbedder",
    "infinity_emb": "engines.infinity_emb:InfinityEmbedder",
    "embed": "engines.embed:EmbedEmbedder",
    "sentence_transformers_onnx": "engines.sentence_transformers:SentenceTransformersOnnxEmbedder",
    "sentence_transformers_openvino": "engines.sentence_transformers:SentenceTransformersOpenVinoEmbedder",
    "vllm_embed": "engines.vllm:VllmEmbedder",
}


class UnknownEngineError(InfermatrixError, KeyError):
    """An engine id that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def check_engine(engine_id: str) -> str:
    """Return `engine_id` if registered, else raise with a "did you mean" message."""
    if engine_id not in ENGINES:
        raise UnknownEngineError(unknown("engine", engine_id, ENGINES))
    return engine_id


def load_engine_class(engine_id: str) -> type:
    """Import and return the adapter class of `engine_id` (this imports the engine library)."""
    module_name, _, class_name = ENGINES[check_engine(engine_id)].partition(":")
    return getattr(importlib.import_module(module_name), class_name)
