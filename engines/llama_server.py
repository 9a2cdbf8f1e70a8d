"""llama.cpp's own C++ server (`llama-server`) on the GGUF file the in-process adapter writes
from the fixture (engines/llama_cpp.py), built from the tree llama-cpp-python vendors
(compat/llama_tools.py: the same llama.cpp commit as the binding; found through
INFERMATRIX_LLAMA_TOOLS, which the cell sets).

It is started as people serve GGUF models: continuous batching (its default) over `--parallel`
slots that share the context, `/metrics` on. The engine suite goes through its native
`/completion` route, which takes a prompt as token ids and gives back the generated ids
(`return_tokens`), so ids are the server's own; the API-surface suite checks its OpenAI layer
(`/v1/...`) on the raw answers, and the load sweep streams `/v1/completions`. Every sampling field
is sent, so greedy means greedy (its defaults are temperature 0.8, top_k 40, min_p 0.05).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from engines import LLAMA_TOOLS_ENV as TOOLS_ENV
from engines.base import (
    ChatMessage,
    Completion,
    Deviation,
    InvalidParameterError,
    SamplingParams,
    StreamDelta,
)
from engines.formats.gguf_files import context_length, float32_gguf, threads
from engines.http.client import TEXT_API, TEXT_API_UNSUPPORTED, ServerGenerator
from engines.http.wire import ServerError

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
    capabilities = replace(TEXT_API, token_input=True)
    logprob_tolerance = 2e-2  # as the in-process adapter (float16 KV cache)
    prompt_as_ids = True
    ids_from_server = True
    reuses_connections = False  # it closes a connection after a stream (API property keep_alive)
    unsupported: ClassVar[dict[str, str]] = {
        **{k: why for k, why in TEXT_API_UNSUPPORTED.items() if k != "token_input"},  # it takes ids
        "logprobs": "log-probabilities come keyed by token text, which does not name an id",
        "min_new_tokens": "no minimum length (only ignore_eos)",
        "stop_token_ids": "the API has no stop token ids",
    }
    deviations: ClassVar[dict[str, Deviation]] = {
        "streaming_equals_generate": Deviation(
            "a stream holds back a token that ends inside a UTF-8 character and, at the end of "
            "the stream, drops it: for the prompt '0' (16 tokens) the answer's text ends "
            "'day\ufffd', the stream's 'day' (its last event is empty, finish_reason length)"),
    }

    def _command(self, model_dir: Path, port: int, device: str, dtype: str) -> list[str]:
        gguf, context = float32_gguf(model_dir), context_length(model_dir)
        return [str(tool("llama-server")), "-m", str(gguf), "--alias",
                model_dir.name, "--host", "127.0.0.1", "--port", str(port),
                "-c", str(context * SLOTS), "--parallel", str(SLOTS),
                "-t", str(threads()), "--metrics", "--no-webui",
                *(() if self.cache_prefixes else ("--no-cache-prompt",))]

    tokenizer_is_reference = False

    def _tokenize(self, text: str) -> list[int]:
        """The server's own tokenizer (/tokenize, beside /v1), BOS as it adds it."""
        answer = self._call(self.client.post, "//tokenize", {"content": text, "add_special": True})
        return list(answer["tokens"])

    def _extra(self, params: SamplingParams) -> dict[str, Any]:
        return {"top_k": params.top_k or 0, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0,
                "presence_penalty": 0.0, "frequency_penalty": 0.0, "ignore_eos": params.ignore_eos}

    # --- the engine suite: the native /completion route, ids in and out ----------------------

    def _native(self, prompt_ids: list[int], params: SamplingParams, stream: bool) -> dict[str, Any]:
        body = {"prompt": list(prompt_ids), "n_predict": params.max_new_tokens,
                "temperature": params.temperature, "top_p": params.top_p, "return_tokens": True,
                "cache_prompt": self.cache_prefixes, "stream": stream, **self._extra(params)}
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        return body

    def _generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        def one(ids: list[int]) -> Completion:
            answer = self._call(self.client.post, "//completion", self._native(ids, params, False))
            reason = {"eos": "eos", "word": "stop", "limit": "length"}.get(answer.get("stop_type"),
                                                                          "length")
            return Completion(answer.get("content", ""),
                              self._before_eos(answer.get("tokens") or (), params), tuple(ids), reason)

        with ThreadPoolExecutor(max_workers=len(prompt_ids)) as pool:
            return list(pool.map(one, prompt_ids))

    def _stream(self, prompt_ids: list[int], params: SamplingParams) -> Iterator[StreamDelta]:
        for event in self._events("//completion", self._native(prompt_ids, params, True)):
            piece = event.get("content") or ""
            ids = self._before_eos(event.get("tokens") or (), params)
            if piece or ids:
                yield StreamDelta(piece, ids)

    def _chat(self, messages: list[ChatMessage], params: SamplingParams) -> Completion:
        """The server's own chat path with its ids: the template from the GGUF's metadata
        (/apply-template), the server's tokenizer on it (specials parsed, BOS as it adds it), then
        /completion on those ids; /v1/chat/completions, asked for one token, must count the same
        prompt (its usage), or the ids are not the ones its chat API feeds."""
        turns = [{"role": m.role, "content": m.content} for m in messages]
        prompt = self._call(self.client.post, "//apply-template", {"messages": turns})["prompt"]
        ids = list(self._call(self.client.post, "//tokenize", {"content": prompt, "add_special": True,
                                                               "parse_special": True})["tokens"])
        body = self._body(SamplingParams(max_new_tokens=1)) | {"messages": turns}
        counted = self._call(self.client.post, "/chat/completions", body)["usage"]["prompt_tokens"]
        if counted != len(ids):
            raise ServerError(f"llama-server's /v1/chat/completions counts {counted} prompt tokens, its "
                              f"/apply-template and /tokenize give {len(ids)}: {prompt!r}")
        return self._generate([ids], params)[0]

    def _before_eos(self, tokens, params: SamplingParams) -> tuple[int, ...]:
        """The server's ids up to EOS: it returns the EOS token it stopped at, which the contract
        leaves out (as every engine's generate does)."""
        tokens = tuple(tokens)
        if not params.ignore_eos and self._eos in tokens:
            return tokens[:tokens.index(self._eos)]
        return tokens
