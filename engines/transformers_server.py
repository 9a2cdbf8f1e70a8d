"""`transformers serve`: Hugging Face's own server, the reference engine over HTTP.

Started pinned to the fixture (`transformers serve <folder>`), it answers /v1/completions with
text only, so token ids are the text encoded with the fixture's tokenizer. Its completions take
a `generation_config` (a GenerationConfig as JSON) beside OpenAI's fields: the adapter sends
one, so that EOS and a minimum length mean what the contract says. OpenAI's
`logprobs` is accepted and ignored, prompts are text only.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import transformers.cli.serving.server  # noqa: F401  (the import rung imports the server)

from engines.base import Deviation, InvalidParameterError, SamplingParams
from engines.http.client import TEXT_API, TEXT_API_DEVIATIONS, TEXT_API_UNSUPPORTED, ServerGenerator

DTYPES = ("float32", "float16", "bfloat16")
IGNORED = "/v1/completions accepts `{field}` and ignores it (UNUSED_LEGACY_COMPLETION_FIELDS)"
SOURCE = ("https://github.com/huggingface/transformers/blob/main/src/transformers/cli/serving/"
          "completion.py")


class TransformersServerGenerator(ServerGenerator):
    """`transformers serve <fixture> --device cpu --dtype float32`."""

    server_name = "transformers serve"
    in_process = "transformers"
    # it stops after the token that completes a stop string, and keeps the string
    capabilities = replace(TEXT_API, min_new_tokens=True, stop_string_kept=True)
    unsupported: ClassVar[dict[str, str]] = {
        **TEXT_API_UNSUPPORTED, "logprobs": "/v1/completions accepts `logprobs` and returns none",
        "stop_token_ids": "OpenAI's API has none; a generation_config eos_token_id ends the row "
                          "but leaves the id's text in the answer, where the contract excludes it"}
    deviations: ClassVar[dict[str, Deviation]] = {
        **TEXT_API_DEVIATIONS,
        "n_choices": Deviation(IGNORED.format(field="n"), SOURCE),
        "logprobs_fields": Deviation(IGNORED.format(field="logprobs"), SOURCE),
    }

    def _command(self, model_dir: Path, port: int, device: str, dtype: str) -> list[str]:
        if dtype not in DTYPES:
            raise InvalidParameterError(f"transformers serve: dtype {dtype!r} is not one of {DTYPES}")
        cli = shutil.which("transformers", path=str(Path(sys.executable).parent)) or "transformers"
        return [cli, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
                "--device", device, "--dtype", dtype]

    def _extra(self, params: SamplingParams) -> dict[str, Any]:
        floor = params.max_new_tokens if params.ignore_eos else params.min_new_tokens
        config = {"max_new_tokens": params.max_new_tokens, "min_new_tokens": floor,
                  "do_sample": not params.greedy, "eos_token_id": self._eos,
                  "pad_token_id": self._eos}
        if not params.greedy:
            config |= {"temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k}
        return {"generation_config": json.dumps(config)}
