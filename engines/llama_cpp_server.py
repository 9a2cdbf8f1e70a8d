"""llama-cpp-python's server (`python -m llama_cpp.server`, the [server] extra) on the GGUF
file the in-process adapter writes from the fixture (engines/llama_cpp.py).

Its API returns text only (token ids are the text encoded with the fixture's tokenizer), takes
prompts as text, and keys log-probabilities by token text, which does not name an id. Its
sampling defaults are not OpenAI's (temperature 0.8, top_k 40, min_p 0.05, repeat_penalty 1.1):
the adapter sends every one, so greedy means greedy. It is run with its defaults, as users get
it: `interrupt_requests` is on, so a request arriving while another streams cuts that stream
short (under load, the load benchmark counts those as errors).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import llama_cpp.server.app  # noqa: F401  (the import rung imports the server)

from engines.base import Deviation, SamplingParams
from engines.formats.gguf_files import context_length, float32_gguf, threads
from engines.http.client import TEXT_API, TEXT_API_DEVIATIONS, TEXT_API_UNSUPPORTED, ServerGenerator


class LlamaCppServerGenerator(ServerGenerator):
    """`python -m llama_cpp.server --model <fixture>.gguf`."""

    server_name = "llama_cpp.server"
    in_process = "llama_cpp"
    prefix_cache = "no switch"  # the server's one Llama keeps the longest prefix evaluated
    prefix_cache_switch = "none: Llama.generate(reset=True) reuses it, and no server setting stops it"
    # chat: /v1/chat/completions, the template from the model's own metadata
    capabilities = replace(TEXT_API, min_new_tokens=True)
    logprob_tolerance = 2e-2  # as the in-process adapter (float16 KV cache)
    unsupported: ClassVar[dict[str, str]] = {
        **TEXT_API_UNSUPPORTED,
        "logprobs": "log-probabilities come keyed by token text, which does not name an id",
        "stop_token_ids": "the API has no stop token ids",
    }
    deviations: ClassVar[dict[str, Deviation]] = {
        **TEXT_API_DEVIATIONS,
        "n_choices": Deviation("`n` is among the request fields its server marks \"ignored or "
                               "currently unsupported\"", "https://github.com/abetlen/"
                               "llama-cpp-python/blob/main/llama_cpp/server/types.py"),
    }

    def _command(self, model_dir: Path, port: int, device: str, dtype: str) -> list[str]:
        gguf, context = float32_gguf(model_dir), context_length(model_dir)
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
                "--model_alias", model_dir.name, "--host", "127.0.0.1", "--port", str(port),
                "--n_ctx", str(context), "--n_threads", str(threads())]

    tokenizer_is_reference = False

    def _tokenize(self, text: str) -> list[int]:
        """The server's own tokenizer (/extras/tokenize, beside /v1)."""
        return list(self._call(self.client.post, "//extras/tokenize", {"input": text})["tokens"])

    def _extra(self, params: SamplingParams) -> dict[str, Any]:
        extra = {"top_k": params.top_k, "min_p": 0.0, "repeat_penalty": 1.0,
                 "min_tokens": params.min_new_tokens}
        if params.ignore_eos:  # OpenAI's way: a bias that EOS can never win against
            extra["logit_bias"] = {str(self._eos): -1e9}
        return extra
