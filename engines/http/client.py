"""One HTTP adapter: a Generator and an Embedder over the OpenAI API of a server they start.

A server module (engines/*_server.py) says how to start its server (`_command`) and what its
API offers (Capabilities, and the few switches below); everything else is here once:
load starts the server on a free loopback port and waits for `/models` (time-limited), close
stops it with its process group; generation goes through `/completions` (each row one request,
sent together, as concurrent users would), streaming through its server-sent events, chat
through `/chat/completions`, embeddings through `/embeddings`. The conformance suite then runs
unchanged against every server.

Where an API returns text only, the token ids the contract asks for are the text encoded with
the fixture's own tokenizer (tokenizer.json): `ids_from_text` says so, and the report shows it.
"""

from __future__ import annotations

import abc
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
from tokenizers import Tokenizer

from engines.base import (
    Capabilities,
    ChatMessage,
    Completion,
    Deviation,
    Embedder,
    Generator,
    SamplingParams,
    StreamDelta,
    as_rows,
)
from engines.http.server import ServerProcess, free_port
from engines.http.wire import OpenAIClient, ServerError

READY_LIMIT_S = float(os.environ.get("INFERMATRIX_SERVER_READY_S", "300"))
"""How long a server may take to answer /models after its start (INFERMATRIX_SERVER_READY_S)."""
TEXT_ONLY = ("the API returns text only: a token that is part of a UTF-8 character comes back as "
             "U+FFFD, so ids re-encoded from the text can differ from those generated")
"""The deviation a text-only API declares for the properties that count or compare ids."""
TEXT_API_UNSUPPORTED = {
    "token_input": "/v1/completions takes the prompt as a string only",
    "logits": "the OpenAI API has no logits",
    "lora": "an adapter is a served model of its own (vllm serve --lora-modules, llama.cpp's "
            "server --lora): the suite starts servers without one",
}
"""What a text-only API cannot offer the engine contract, and why."""
TEXT_API_DEVIATIONS = {name: Deviation(TEXT_ONLY)
                       for name in ("length_contract", "greedy_parity", "stop_strings")}
"""The properties whose ids a text-only API cannot give back exactly."""
TEXT_API = Capabilities(streaming=True, chat=True, seeded_sampling=True, stop_strings=True,
                        stop_string_kept=False, logprobs=False, token_input=False,
                        min_new_tokens=False, stop_token_ids=False, batching=True)
"""What an OpenAI-compatible text API offers: streaming, chat, seeded sampling, stop strings cut
as OpenAI cuts them (the matched string not returned), batches of prompts; no logprobs, ids in or
floors unless a server says otherwise (`dataclasses.replace(TEXT_API, ...)`, with why)."""


class ServedModel(abc.ABC):
    """What both HTTP adapters share: the server's process, its client, its model's name."""

    server_name: ClassVar[str] = ""
    """How users start it, as the report names it ("vllm serve")."""
    api_prefix: ClassVar[str] = "/v1"
    """Where the OpenAI routes live on this server."""
    in_process: ClassVar[str] = ""
    """The registry id of the same engine in process, which wire_parity compares it with."""

    server: ServerProcess | None = None
    client: OpenAIClient | None = None
    model_name: str = ""
    startup_s: float = 0.0
    """Seconds from the server's start until it answered /models."""
    reuses_connections: bool = True
    """Whether a client may reuse a kept-alive connection after a streamed answer; False for a
    server that closes it although it promised not to (the load client then opens one a request)."""

    @abc.abstractmethod
    def _command(self, model_dir: Path, port: int, device: str, dtype: str) -> list[str]:
        """The command line that serves `model_dir` on 127.0.0.1:`port`."""

    def _server_env(self) -> dict[str, str]:
        return dict(os.environ)

    def _start(self, model_dir: Path, device: str, dtype: str, port: int | None = None) -> None:
        port = port or free_port()
        self.server = ServerProcess(self.server_name, self._command(model_dir, port, device, dtype),
                                    port, env=self._server_env())
        self.server.start()
        self.client = OpenAIClient(self.server.url, self.api_prefix)
        try:
            self.startup_s = self.server.wait_ready(self._answers, READY_LIMIT_S,
                                                    f"{self.api_prefix}/models")
        except BaseException:
            self._stop()
            raise

    def _answers(self) -> bool:
        try:
            models = self.client.get("/models").get("data") or []
        except (httpx.TransportError, ServerError):  # not listening yet, or still loading
            return False
        if models:
            self.model_name = str(models[0].get("id", ""))
        return bool(models)

    def _stop(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.server is not None:
            self.server.stop()
        self.client = self.server = None

    def _call(self, method, *args):
        """A client call; a dropped connection names the server and, if it died, its log."""
        try:
            return method(*args)
        except httpx.TransportError as exc:
            raise self._dropped(exc) from exc

    def _events(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """A streamed answer's JSON objects; a connection dropped mid-stream is named too."""
        try:
            yield from self.client.stream(path, body)
        except httpx.TransportError as exc:
            raise self._dropped(exc) from exc

    def _dropped(self, exc: httpx.TransportError) -> ServerError:
        self.server.check_alive()  # a dead server raises ServerExited with its log's tail
        return ServerError(f"{self.server_name} dropped the connection: {exc!r}")


class ServerGenerator(ServedModel, Generator):
    """A Generator over /completions, /chat/completions and their streams."""

    ids_from_server: ClassVar[bool] = False
    """The server returns generated and prompt ids (vLLM's return_token_ids); else the ids are
    its text encoded with the fixture's tokenizer."""
    prompt_as_ids: ClassVar[bool] = False
    """The server takes a prompt as token ids; else the ids are sent as their text."""

    _tokenizer: Tokenizer | None = None
    tokenizer_is_reference = True  # where a server has a tokenize endpoint, its adapter asks it

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._eos = self._eos_id(model_dir)
        self._start(model_dir, device, dtype)

    def _close(self) -> None:
        self._stop()

    @staticmethod
    def _eos_id(model_dir: Path) -> int | None:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        eos = config.get("eos_token_id")
        return eos[0] if isinstance(eos, list) else eos

    @property
    def eos_token_id(self) -> int | None:
        return self._eos if self._is_loaded else None

    # --- ids and text, where the API speaks text -------------------------------------------

    def _tokenize(self, text: str) -> list[int]:
        return self._tokenizer.encode(text).ids

    def _text(self, ids) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)

    def _ids(self, text: str) -> tuple[int, ...]:
        return tuple(self._tokenizer.encode(text, add_special_tokens=False).ids)

    # --- requests ----------------------------------------------------------------------------

    def _body(self, params: SamplingParams) -> dict[str, Any]:
        """The request fields of `params`: OpenAI's, then the server's own (`_extra`)."""
        body: dict[str, Any] = {"model": self.model_name, "max_tokens": params.max_new_tokens,
                                "temperature": params.temperature, "top_p": params.top_p}
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.logprobs is not None:
            body["logprobs"] = params.logprobs
        return body | self._extra(params)

    def _extra(self, params: SamplingParams) -> dict[str, Any]:
        """Fields beyond OpenAI's that this server needs for `params` (top_k, ignore_eos, ...)."""
        return {}

    def _prompt(self, ids: list[int]) -> list[int] | str:
        return ids if self.prompt_as_ids else self._text(ids)

    def _generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        body = self._body(params)

        def one(ids: list[int]) -> Completion:
            answer = self._call(self.client.post, "/completions", {**body, "prompt": self._prompt(ids)})
            return self._completion(answer, ids, params)

        with ThreadPoolExecutor(max_workers=len(prompt_ids)) as pool:
            return list(pool.map(one, prompt_ids))

    def _completion(self, answer: dict, prompt_ids: list[int], params: SamplingParams) -> Completion:
        choice = (answer.get("choices") or [{}])[0]
        text = choice.get("text")
        if text is None:
            text = (choice.get("message") or {}).get("content") or ""
        ids = tuple(choice["token_ids"]) if self.ids_from_server else self._ids(text)
        stop = choice.get("stop_reason")
        if self.ids_from_server and isinstance(stop, int) and ids and ids[-1] == stop:
            # vLLM keeps a stop token id that is not a special token; the contract ends the row
            # before it, as at EOS
            ids, text = ids[:-1], self._text(ids[:-1])
        elif self.ids_from_server and ids and ids[-1] == self._eos and \
                choice.get("finish_reason") == "stop" and stop is None:
            ids = ids[:-1]  # vLLM's chat answer keeps the EOS that ended it in its ids, not its text
        prompt = answer.get("prompt_token_ids") or choice.get("prompt_token_ids") or prompt_ids
        logprobs = self._logprobs(choice.get("logprobs"), len(ids)) if params.logprobs is not None \
            else None
        counted = (answer.get("usage") or {}).get("prompt_tokens") if not prompt else None
        return Completion(text, ids, tuple(prompt), self._finish(choice, params), logprobs, counted)

    def _finish(self, choice: dict, params: SamplingParams) -> str:
        """OpenAI says "stop" for EOS and for a stop string alike; vLLM's stop_reason tells them
        apart (the matched string); elsewhere a "stop" with stop strings asked is read as one."""
        if choice.get("finish_reason") == "length":
            return "length"
        if "stop_reason" in choice:
            return "stop" if isinstance(choice["stop_reason"], str) else "eos"
        return "stop" if params.stop else "eos"

    def _logprobs(self, logprobs: dict | None, count: int) -> tuple[dict[int, float], ...]:
        """{id: log-probability} per generated token, from either API's form."""
        if logprobs and "content" in logprobs:  # the chat form: one entry per token
            return tuple({self._token_key(top["token"]): float(top["logprob"])
                          for top in [*(step.get("top_logprobs") or []), step]}
                         for step in (logprobs["content"] or [])[:count])
        steps = (logprobs or {}).get("top_logprobs") or []
        tokens = (logprobs or {}).get("tokens") or []
        values = (logprobs or {}).get("token_logprobs") or []
        out = []
        for step, token, value in zip(steps[:count], tokens, values, strict=False):
            row = {self._token_key(key): float(v) for key, v in (step or {}).items()}
            row[self._token_key(token)] = float(value)
            out.append(row)
        return tuple(out)

    @staticmethod
    def _token_key(key: str) -> int:
        """The id of a log-probability's key: "token_id:<id>" (vLLM's return_tokens_as_token_ids;
        a server that keys by token text declares logprobs unsupported)."""
        return int(key.removeprefix("token_id:"))

    def _stream(self, prompt_ids: list[int], params: SamplingParams) -> Iterator[StreamDelta]:
        body = {**self._body(params), "prompt": self._prompt(prompt_ids)}
        text = ""
        for chunk in self._events("/completions", body):
            for choice in chunk.get("choices") or []:
                piece = choice.get("text") or ""
                ids = tuple(choice.get("token_ids") or ()) if self.ids_from_server else ()
                text += piece
                if piece or ids:
                    yield StreamDelta(piece, ids)
        if not self.ids_from_server:
            yield StreamDelta("", self._ids(text))  # the text's ids, once it is whole

    def _chat(self, messages: list[ChatMessage], params: SamplingParams) -> Completion:
        body = self._body(params) | {"messages": [{"role": m.role, "content": m.content}
                                                  for m in messages]}
        if "logprobs" in body:  # the chat API's form
            body |= {"logprobs": True, "top_logprobs": params.logprobs}
        answer = self._call(self.client.post, "/chat/completions", body)
        return self._completion(answer, [], params)


class ServerEmbedder(ServedModel, Embedder):
    """An Embedder over /embeddings."""

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        self._start(model_dir, device, dtype)
        self._dim = int(self._vectors(["dimension probe"]).shape[1])

    def _close(self) -> None:
        self._stop()

    def _extra(self) -> dict[str, Any]:
        """Fields beyond OpenAI's the server needs to embed as the contract says (truncation)."""
        return {}

    def _vectors(self, texts: list[str]) -> np.ndarray:
        body = {"model": self.model_name, "input": texts, "encoding_format": "float"}
        answer = self._call(self.client.post, "/embeddings", body | self._extra())
        rows = sorted(answer.get("data") or [], key=lambda row: row.get("index", 0))
        if len(rows) != len(texts):
            raise ServerError(f"{self.server_name}: {len(rows)} embeddings for {len(texts)} inputs")
        return np.asarray([row["embedding"] for row in rows], dtype=np.float32)

    def _embed(self, texts: list[str], normalize: bool) -> np.ndarray:
        return as_rows(list(self._vectors(texts)), normalize=normalize)

    def _dimension(self) -> int:
        return self._dim


__all__ = ["TEXT_API_DEVIATIONS", "TEXT_API_UNSUPPORTED", "TEXT_ONLY", "ServedModel",
           "ServerEmbedder", "ServerGenerator"]
