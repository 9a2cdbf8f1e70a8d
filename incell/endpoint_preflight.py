"""Before any suite runs against an endpoint (incell/endpoint.py): what the server says of itself.

The URL answers, it serves the model asked for (else the models it lists are named), it answers
the kind asked (/completions or /embeddings; where none was asked, the kind it answers), and
which of the fields beyond OpenAI's (engines/endpoint.EXTRA_FIELDS) it takes. Each failure is an
EndpointError that says what to change: the URL, --model, --kind or --api-key-env.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from core.details import EndpointDetail
from engines.endpoint import EXTRA_FIELDS, Endpoint, EndpointError

TIMEOUT_S = 30.0

def preflight(endpoint: Endpoint, kind: str | None, tokenizer: Path | None) -> EndpointDetail:
    """What the server says of itself, or an EndpointError that says what to change."""
    with endpoint.client(timeout=TIMEOUT_S) as client:
        try:
            response = client.http.get(client.url("/models"))
        except httpx.TransportError as exc:
            raise EndpointError(f"{endpoint.url} is unreachable ({type(exc).__name__}): is the "
                                "server running there, and is its OpenAI prefix (/v1) in --url?") from None
        if response.status_code in (401, 403):
            raise EndpointError(f"{endpoint.url}/models answered HTTP {response.status_code}: the "
                                "server wants a key; name its variable with --api-key-env VAR"
                                + (f" (${endpoint.key_env} was sent)" if endpoint.key_env else ""))
        models, status = None, response.status_code
        if status == 200:
            models = listed(response)
            names = [str(m.get("id")) for m in models]
            if names and endpoint.model not in names:
                raise EndpointError(f"--model {endpoint.model!r} is not served at {endpoint.url}; "
                                    f"it serves: {', '.join(names)}")
        found = answers(client, endpoint.model)
        if kind is None:
            kind = next((k for k in ("generation", "embedding") if found[k] == 200), None)
            if kind is None:
                raise EndpointError(f"{endpoint.url} answered neither /completions (HTTP "
                                    f"{found['generation']}) nor /embeddings (HTTP "
                                    f"{found['embedding']}) for model {endpoint.model!r}")
        elif found[kind] != 200:
            other = "embedding" if kind == "generation" else "generation"
            hint = (f": it answers {'/embeddings' if other == 'embedding' else '/completions'}, "
                    f"use --kind {other}") if found[other] == 200 else ""
            raise EndpointError(f"--kind {kind}, but {endpoint.url} answered "
                                f"{'/completions' if kind == 'generation' else '/embeddings'} with "
                                f"HTTP {found[kind]}{hint}")
        fields, refused = ([], {}) if kind == "embedding" else accepted(client, endpoint.model)
    return EndpointDetail(url=endpoint.url, model=endpoint.model, kind=kind, models=models,
                          models_status=status, headers=identity(response.headers),
                          fields=fields, refused=refused,
                          tokenizer=str(tokenizer.resolve()) if tokenizer else "")


def listed(response: httpx.Response) -> list[dict]:
    try:
        data = response.json().get("data")
    except (ValueError, AttributeError):
        return []
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def answers(client, model: str) -> dict[str, int]:
    """The HTTP status of the smallest request of each kind."""
    asks = {"generation": ("/completions", {"model": model, "prompt": "Hello", "max_tokens": 1}),
            "embedding": ("/embeddings", {"model": model, "input": ["Hello"]})}
    found = {}
    for kind, (path, body) in asks.items():
        try:
            found[kind] = client.http.post(client.url(path), json=body).status_code
        except httpx.TransportError:
            found[kind] = 0
    return found


def accepted(client, model: str) -> tuple[list[str], dict[str, str]]:
    """The fields beyond OpenAI's (EXTRA_FIELDS) the server takes, and its answer to each refused."""
    tries = {"ignore_eos": {"ignore_eos": True}, "top_k": {"top_k": 1},
             "prompt_ids": {"prompt": [1, 2, 3]}}
    fields, refused = [], {}
    for name in EXTRA_FIELDS:
        body = {"model": model, "prompt": "Hello", "max_tokens": 1, **tries[name]}
        response = client.http.post(client.url("/completions"), json=body)
        if response.status_code == 200:
            fields.append(name)
        else:
            refused[name] = f"HTTP {response.status_code}: {response.text[:200]}"
    return fields, refused


def identity(headers: httpx.Headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() == "server" or "version" in k.lower()}
