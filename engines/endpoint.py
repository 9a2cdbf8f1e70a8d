"""A server someone else runs, checked where it stands (`nox -s endpoint`, incell/endpoint.py).

The OpenAI adapters (engines/http/client.py) pointed at a URL: nothing is started or stopped.
The suites run in pytest processes of their own, so the endpoint comes from the environment:

    INFERMATRIX_ENDPOINT_URL      the OpenAI base URL, e.g. http://host:8000/v1
    INFERMATRIX_ENDPOINT_MODEL    the served model's name
    INFERMATRIX_ENDPOINT_KEY_ENV  the name of the variable that holds the API key (optional)
    INFERMATRIX_ENDPOINT_FIELDS   the fields beyond OpenAI's the server accepted (ignore_eos, top_k)
    INFERMATRIX_ENDPOINT_REFERENCE  an in-process engine to hold it to (wire_parity), if any

The key goes as `Authorization: Bearer <key>` and is read from its variable when a client is
made: it is never in a result, a log, a report or an error (`scrub` takes it out of any text
that leaves the process). The fixture folder (`--tokenizer DIR`) is the served model's
tokenizer.json (and config.json for its EOS id); without one, only the API-surface suite and
what needs no token count run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from tokenizers import Tokenizer

from core.errors import InfermatrixError
from engines.base import Capabilities, Deviation, SamplingParams, UnsupportedCapabilityError
from engines.http.client import (
    TEXT_API,
    TEXT_API_DEVIATIONS,
    TEXT_API_UNSUPPORTED,
    ServerEmbedder,
    ServerGenerator,
)
from engines.http.wire import OpenAIClient, ServerError

URL_ENV, MODEL_ENV, KEY_ENV, FIELDS_ENV, REFERENCE_ENV = (
    f"INFERMATRIX_ENDPOINT_{k}" for k in ("URL", "MODEL", "KEY_ENV", "FIELDS", "REFERENCE"))
SCHEMES = ("http", "https")
EXTRA_FIELDS = ("ignore_eos", "top_k", "prompt_ids")
"""What a server may take beyond a text prompt and OpenAI's fields: ignore_eos and top_k (vLLM,
SGLang, llama.cpp's server), and prompt_ids: a prompt given as token ids, which OpenAI's API
allows and not every server takes. Each is used only where the server accepted it when the run
began."""


class EndpointError(InfermatrixError):
    """The endpoint cannot be checked as given: the message says what to change."""


class NoTokenizerError(EndpointError, UnsupportedCapabilityError):
    """Counting tokens without the served model's tokenizer (a property that needs it is ➖)."""

    def __init__(self) -> None:
        InfermatrixError.__init__(self, "counting tokens needs the served model's tokenizer: "
                                        "nox -s endpoint -- ... --tokenizer DIR (its tokenizer.json)")
        self.engine, self.capability = "endpoint", "tokenize"


def public_url(url: str) -> str:
    """`url` without credentials, query or fragment: what may be written down."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    port = parts.netloc.rpartition("@")[2].removeprefix(f"[{host}]").removeprefix(host)
    return urlunsplit((parts.scheme, netloc + port, parts.path.rstrip("/"), "", ""))


def check_url(url: str) -> str:
    """The URL to use (credentials, query and fragment dropped), or an EndpointError naming
    what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise EndpointError(f"--url {public_url(url)!r}: scheme {parts.scheme!r} is not one of "
                            f"{', '.join(SCHEMES)} (e.g. http://127.0.0.1:8000/v1)")
    if not parts.hostname:
        raise EndpointError(f"--url {public_url(url)!r} names no host (e.g. http://127.0.0.1:8000/v1)")
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise EndpointError(f"--url {public_url(url)!r}: the port is not a number from 0 to "
                            "65535") from None
    return public_url(url)


@dataclass(frozen=True)
class Endpoint:
    """Where the server is and how to talk to it; the key only by the name of its variable."""

    url: str
    model: str
    key_env: str = ""
    fields: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> Endpoint:
        missing = [name for name in (URL_ENV, MODEL_ENV) if not os.environ.get(name)]
        if missing:
            raise EndpointError(f"{', '.join(missing)} not set: run it with nox -s endpoint -- "
                                "--url URL --model NAME")
        fields = tuple(f for f in os.environ.get(FIELDS_ENV, "").split(",") if f)
        return cls(check_url(os.environ[URL_ENV]), os.environ[MODEL_ENV],
                   os.environ.get(KEY_ENV, ""), fields)

    def env(self) -> dict[str, str]:
        """The variables that hand this endpoint to another process (the key stays in its own)."""
        return {URL_ENV: self.url, MODEL_ENV: self.model, KEY_ENV: self.key_env,
                FIELDS_ENV: ",".join(self.fields)}

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, "", "", ""))

    @property
    def prefix(self) -> str:
        return urlsplit(self.url).path.rstrip("/")

    def key(self) -> str:
        if not self.key_env:
            return ""
        value = os.environ.get(self.key_env, "")
        if not value:
            raise EndpointError(f"--api-key-env {self.key_env}: that variable is not set or empty")
        return value

    def headers(self) -> dict[str, str]:
        key = self.key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def client(self, timeout: float = 120.0) -> OpenAIClient:
        return OpenAIClient(self.origin, self.prefix, timeout=timeout, headers=self.headers())

    def scrub(self, text: str) -> str:
        """`text` with the key, wherever it appears, replaced by its variable's name."""
        key = os.environ.get(self.key_env, "") if self.key_env else ""
        return text.replace(key, f"${self.key_env}") if key else text


class _AtEndpoint:
    """What both adapters change in ServedModel: connect to the endpoint instead of starting a
    server, and close only the client."""

    endpoint: Endpoint
    prefix_cache = "unknown"  # whatever its owner configured
    prefix_cache_switch = "its owner's"

    @property
    def in_process(self) -> str:
        """The reference engine given for wire parity (--reference), else none."""
        return os.environ.get(REFERENCE_ENV, "")

    def _start(self, model_dir: Path, device: str, dtype: str, port: int | None = None) -> None:
        self.endpoint = Endpoint.from_env()
        self.server_name = f"endpoint {self.endpoint.url}"
        self.client = self.endpoint.client()
        self.model_name = self.endpoint.model

    def _command(self, model_dir: Path, port: int, device: str, dtype: str) -> list[str]:
        raise EndpointError("an endpoint is started by its owner, never by infermatrix")

    def _stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None

    def _dropped(self, exc) -> ServerError:
        return ServerError(f"{self.server_name} dropped the connection: {exc!r}")


class EndpointGenerator(_AtEndpoint, ServerGenerator):
    """/v1/completions of a server at a URL; token ids are its text encoded with --tokenizer."""

    capabilities = replace(TEXT_API, chat=False)
    unsupported: ClassVar[dict[str, str]] = {
        **TEXT_API_UNSUPPORTED,
        "chat": "the model behind the endpoint is not the suite's: it has no template reference "
                "to hold its chat prompts to (the API-surface suite checks /v1/chat/completions)",
        "logprobs": "log-probabilities come keyed by token text on most servers, which does not "
                    "name an id (the API-surface suite checks their fields)",
        "min_new_tokens": "OpenAI's API has no minimum length",
        "stop_token_ids": "OpenAI's API has no stop token ids",
    }
    deviations: ClassVar[dict[str, Deviation]] = dict(TEXT_API_DEVIATIONS)

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        found = Path(model_dir) / "tokenizer.json"
        self._tokenizer = Tokenizer.from_file(str(found)) if found.is_file() else None
        self._eos = self._eos_id(model_dir) if (Path(model_dir) / "config.json").is_file() else None
        self._start(model_dir, device, dtype)

    def _tokenize(self, text: str) -> list[int]:
        if self._tokenizer is None:
            raise NoTokenizerError
        return super()._tokenize(text)

    @property
    def prompt_as_ids(self) -> bool:  # the load sweep then sends exactly the ids it counted
        return "prompt_ids" in self.endpoint.fields and self._tokenizer is not None

    def _extra(self, params: SamplingParams) -> dict[str, Any]:
        fields = {"ignore_eos": params.ignore_eos, "top_k": params.top_k or -1}
        return {k: v for k, v in fields.items() if k in self.endpoint.fields
                and (k != "ignore_eos" or v) and (k != "top_k" or v > 0)}


class EndpointEmbedder(_AtEndpoint, ServerEmbedder):
    """/v1/embeddings of a server at a URL."""

    capabilities = Capabilities(batching=True)


__all__ = ["Endpoint", "EndpointEmbedder", "EndpointError", "EndpointGenerator", "check_url",
           "public_url"]
