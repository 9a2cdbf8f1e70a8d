"""llama.cpp's own C++ server (`llama-server`) on the GGUF file the in-process adapter writes
from the fixture (engines/llama_cpp.py), built from the tree llama-cpp-python vendors
(compat/llama_tools.py: the same llama.cpp commit as the binding; found through
INFERMATRIX_LLAMA_TOOLS, which the cell sets).

It is started as people serve GGUF models: continuous batching (its default) over `--parallel`
slots that share the context, `/metrics` on. Its OpenAI layer takes a prompt as token ids and
its own sampling fields (top_k, min_p, ignore_eos, ...): the adapter sends every sampling field,
so greedy means greedy (its defaults are temperature 0.8, top_k 40, min_p 0.05). Generated ids
are its text encoded with the fixture's tokenizer (the OpenAI answer carries text only).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

from engines import LLAMA_TOOLS_ENV as TOOLS_ENV
from engines.base import Capabilities, Deviation, InvalidParameterError, SamplingParams
from engines.gguf_files import GGUF_NAME, converter_version, threads, write_gguf
from engines.openai_api import TEXT_API_DEVIATIONS, TEXT_API_UNSUPPORTED, ServerGenerator
from fixtures.convert import converted

SLOTS = 4
"""Parallel slots (`--parallel`): requests decoded together; the context is split among them."""


def tool(name: str) -> Path:
    """One of llama.cpp's tools, from the folder the cell's install rung built them into."""
    folder = os.environ.get(TOOLS_ENV, "")
    path = Path(folder) / "bin" / name
    if not folder or not path.is_file():
        raise InvalidParameterError(f"{name} not found ({TOOLS_ENV}={folder!r}): the cell's "
                                    "install rung builds it (python -m compat.llama_tools VERSION)")
    return path


class LlamaServerGenerator(ServerGenerator):
    """`llama-server -m <fixture>.gguf --parallel 4 --metrics`."""

    server_name = "llama-server"
    in_process = "llama_cpp"
    prefix_cache = "switch"  # a slot keeps its last prompt's cache and reuses its prefix
    prefix_cache_switch = "llama-server --no-cache-prompt"
    capabilities = Capabilities(
        streaming=True,
        chat=False,
        seeded_sampling=True,
        stop_strings=True,
        stop_string_kept=False,
        logprobs=False,
        token_input=True,
        min_new_tokens=False,
        stop_token_ids=False,
        batching=True,
    )
    logprob_tolerance = 2e-2  # as the in-process adapter (float16 KV cache)
    prompt_as_ids = True
    unsupported: ClassVar[dict[str, str]] = {
        **{k: why for k, why in TEXT_API_UNSUPPORTED.items() if k != "token_input"},  # it takes ids
        "logprobs": "log-probabilities come keyed by token text, which does not name an id",
        "min_new_tokens": "no minimum length (only ignore_eos)",
        "stop_token_ids": "the API has no stop token ids",
    }
    deviations: ClassVar[dict[str, Deviation]] = dict(TEXT_API_DEVIATIONS)

    def _command(self, model_dir: Path, port: int, device: str, dtype: str) -> list[str]:
        if dtype != "float32":
            raise InvalidParameterError(f"llama_server: the GGUF is written in float32, not {dtype!r}")
        folder = converted(model_dir, "gguf", converter_version(), write_gguf)
        context = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        return [str(tool("llama-server")), "-m", str(folder / GGUF_NAME), "--alias",
                model_dir.name, "--host", "127.0.0.1", "--port", str(port),
                "-c", str(context["max_position_embeddings"] * SLOTS), "--parallel", str(SLOTS),
                "-t", str(threads()), "--metrics", "--no-webui",
                *(() if self.cache_prefixes else ("--no-cache-prompt",))]

    def _tokenize(self, text: str) -> list[int]:
        """The server's own tokenizer (/tokenize, beside /v1), BOS as it adds it."""
        answer = self._call(self.client.post, "//tokenize", {"content": text, "add_special": True})
        return list(answer["tokens"])

    def _extra(self, params: SamplingParams) -> dict[str, Any]:
        return {"top_k": params.top_k or 0, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0,
                "presence_penalty": 0.0, "frequency_penalty": 0.0, "ignore_eos": params.ignore_eos}
