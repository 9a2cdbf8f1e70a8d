"""API-surface conformance: what "OpenAI compatible" means, checked against every server.

Each test is one named property (core/properties.py, kind "api"), run on the raw HTTP API of a
server the adapter started (engines/http/client.py): SSE framing, usage, finish reasons, the
parameters honoured, bad input answered with a 4xx and an error object, and parity across the
wire with the same engine in process. A property for the other kind of server is skipped.
"""

from __future__ import annotations

import base64
import json
import re

import httpx
import numpy as np
import pytest

from engines import load_engine_class
from engines.base import SamplingParams, UnsupportedCapabilityError
from engines.http.wire import DONE, sse_events
from incell.conformance.compare import check_embeddings_close
from incell.conformance.wire import agree_before_a_cut, held_undecided, wire_divergence

PROMPT = "Once upon a time there was a small village at the edge of a great forest, and"
PROMPTS = ("The cat sat", PROMPT, "Hello")
TEXTS = ("A man is eating food.", "A cat sits on the mat.", "Numbers: 1 2 3")


def needs(engine, kind: str) -> None:
    if engine.kind != kind:
        pytest.skip(f"a property of {kind} servers; {engine.id} serves {engine.kind}")


def post(engine, path: str, body: dict | bytes):
    """A raw POST to the server's OpenAI route `path` (under its prefix)."""
    if isinstance(body, bytes):
        return engine.client.http.post(engine.client.url(path), content=body,
                                       headers={"content-type": "application/json"})
    return engine.client.http.post(engine.client.url(path), json=body)


def completion_body(engine, max_tokens: int = 8, temperature: float = 0.0, seed: int | None = None,
                    **fields) -> dict:
    """A completion request of PROMPT, EOS out of the way (the adapter's own fields for that)."""
    params = SamplingParams(max_new_tokens=max_tokens, temperature=temperature, seed=seed,
                            ignore_eos=True)
    return {**engine._body(params), "prompt": PROMPT, **fields}


def stream_events(engine, path: str, body: dict):
    """The raw events of a streamed answer, and the response's content type. Each stream on a
    connection of its own (`Connection: close`), as a one-shot client sends it: a server may close
    a kept-alive connection after a stream (llama-server did, between two tests), which would
    fail the next request on it before the server saw it."""
    url = engine.client.url(path)
    with engine.client.http.stream("POST", url, json={**body, "stream": True},
                                   headers={"Connection": "close"}) as response:
        assert response.status_code == 200, f"{path} streamed HTTP {response.status_code}"
        return list(sse_events(response.iter_bytes())), response.headers.get("content-type", "")


def test_models_endpoint(engine) -> None:
    """GET /v1/models answers a list that names the served model (OpenAI clients use /v1)."""
    response = engine.client.http.get(engine.client.origin + "/v1/models")
    assert response.status_code == 200, (
        f"/v1/models answered HTTP {response.status_code}; the server's routes are under "
        f"{engine.api_prefix or '/'}")
    ids = [m.get("id") for m in response.json().get("data", [])]
    assert engine.model_name in ids, f"/v1/models lists {ids}, not {engine.model_name!r}"


def test_sse_framing(engine) -> None:
    """A stream is text/event-stream, each event one `data:` JSON object, ended by [DONE]."""
    needs(engine, "generation")
    events, content_type = stream_events(engine, "/completions", completion_body(engine))
    assert content_type.startswith("text/event-stream"), f"content type {content_type!r}"
    stray = [line for event in events for line in event.stray]
    assert not stray, f"lines outside the SSE format: {stray[:3]}"
    last = re.sub(r'"(id|created)":[^,]*,', "", events[-1].data)[:120] if events else "none"
    assert events and events[-1].data == DONE, (
        f"the stream does not end with data: {DONE} (its last event: {last!r})")
    for event in events[:-1]:
        event.json()


def test_stream_usage(engine) -> None:
    """With stream_options.include_usage, a usage chunk comes, counting the tokens generated."""
    needs(engine, "generation")
    body = completion_body(engine, max_tokens=6, stream_options={"include_usage": True})
    events, _ = stream_events(engine, "/completions", body)
    chunks = [e.json() for e in events if e.data != DONE]
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert usage, "no chunk carries usage although stream_options.include_usage was asked"
    assert usage[-1].get("completion_tokens") == 6, f"usage {usage[-1]} for 6 tokens generated"


def test_usage_counts(engine) -> None:
    """usage counts the prompt's tokens and the generated ones, and their sum."""
    needs(engine, "generation")
    try:
        want = len(engine.tokenize(PROMPT))
    except UnsupportedCapabilityError as exc:  # an endpoint checked without its tokenizer
        pytest.skip(str(exc))
    answer = post(engine, "/completions", completion_body(engine, max_tokens=5)).json()
    usage = answer.get("usage") or {}
    assert usage.get("prompt_tokens") == want, f"prompt_tokens {usage.get('prompt_tokens')}, want {want}"
    assert usage.get("completion_tokens") == 5, f"completion_tokens {usage.get('completion_tokens')}, want 5"
    assert usage.get("total_tokens") == want + 5, f"total_tokens {usage.get('total_tokens')}"


def stop_in(text: str) -> str:
    """A two-letter piece of `text` past its start, to stop at (the fixtures' text is noise)."""
    for i in range(2, len(text) - 1):
        if text[i:i + 2].isalpha() and text[i:i + 2].isascii():
            return text[i:i + 2]
    pytest.skip(f"no two letters in {text!r} to stop at")


def test_finish_reasons(engine) -> None:
    """finish_reason is "length" at max_tokens and "stop" at a stop string."""
    needs(engine, "generation")
    free = post(engine, "/completions", completion_body(engine, max_tokens=8)).json()["choices"][0]
    assert free["finish_reason"] == "length", f"finish_reason {free['finish_reason']!r} at max_tokens"
    stop = stop_in(free["text"])
    cut = post(engine, "/completions", completion_body(engine, stop=[stop])).json()["choices"][0]
    assert cut["finish_reason"] == "stop", f"finish_reason {cut['finish_reason']!r} at stop {stop!r}"


def test_max_tokens(engine) -> None:
    """max_tokens bounds the tokens generated: usage says exactly that many with EOS off."""
    needs(engine, "generation")
    for limit in (1, 3, 10):
        answer = post(engine, "/completions", completion_body(engine, max_tokens=limit)).json()
        got = (answer.get("usage") or {}).get("completion_tokens")
        assert got == limit, f"max_tokens={limit}: completion_tokens {got}"


def test_stop(engine) -> None:
    """A stop string ends the text before it (OpenAI: the string is not returned)."""
    needs(engine, "generation")
    text = post(engine, "/completions", completion_body(engine, max_tokens=10)).json()["choices"][0]["text"]
    stop = stop_in(text)
    cut = post(engine, "/completions", completion_body(engine, max_tokens=10, stop=[stop])).json()
    got = cut["choices"][0]["text"]
    assert got == text[:text.find(stop)], f"stop {stop!r}: text {got!r}, want {text[:text.find(stop)]!r}"


def test_n_choices(engine) -> None:
    """n=2 returns two choices, indexed 0 and 1."""
    needs(engine, "generation")
    answer = post(engine, "/completions", completion_body(engine, n=2, temperature=1.0, seed=3)).json()
    indexes = sorted(c.get("index") for c in answer.get("choices", []))
    assert indexes == [0, 1], f"n=2 gave choices with indexes {indexes}"


def test_seed(engine) -> None:
    """The same seed at temperature 1 gives the same text; another seed another."""
    needs(engine, "generation")

    def text(seed: int) -> str:
        body = completion_body(engine, max_tokens=12, temperature=1.0, seed=seed)
        return post(engine, "/completions", body).json()["choices"][0]["text"]

    assert text(5) == text(5), "seed 5 gave two different texts"
    assert len({text(5), text(6), text(7)}) > 1, "seeds 5, 6 and 7 gave the same text"


def test_logprobs_fields(engine) -> None:
    """logprobs=2: per generated token its log-probability and at most 2 (+ itself) alternatives."""
    needs(engine, "generation")
    answer = post(engine, "/completions", completion_body(engine, max_tokens=4, logprobs=2)).json()
    logprobs = answer["choices"][0].get("logprobs") or {}
    values, tops = logprobs.get("token_logprobs") or [], logprobs.get("top_logprobs") or []
    assert len(values) == 4 and len(tops) == 4, (
        f"{len(values)} token_logprobs, {len(tops)} top_logprobs for 4 tokens")
    assert all(v <= 1e-6 for v in values), f"not log-probabilities: {values}"
    assert all(1 <= len(t) <= 3 for t in tops), f"top_logprobs sizes {[len(t) for t in tops]} for logprobs=2"


def test_chat_stream(engine) -> None:
    """A chat stream: role "assistant" first, content deltas that join to the non-streamed answer."""
    needs(engine, "generation")
    body = {**completion_body(engine, max_tokens=6), "messages": [{"role": "user", "content": "Hi"}]}
    body.pop("prompt")
    whole = post(engine, "/chat/completions", body).json()["choices"][0]["message"]["content"]
    events, _ = stream_events(engine, "/chat/completions", body)
    deltas = [c["delta"] for e in events if e.data != DONE for c in e.json().get("choices", [])]
    assert deltas and deltas[0].get("role") == "assistant", f"the first delta is {deltas[:1]}"
    joined = "".join(d.get("content") or "" for d in deltas)
    assert joined == whole, f"stream {joined!r} != non-streamed {whole!r}"


BAD_GENERATION = {
    "unknown_model": {"model": "no-such-model"},
    "negative_max_tokens": {"max_tokens": -1},
    "wrong_type": {"max_tokens": "ten"},
    "prompt_too_long": {"prompt": "word " * 4096},
}


@pytest.mark.parametrize("case", [*BAD_GENERATION, "malformed_json"])
def test_bad_input(engine, case: str) -> None:
    """Bad input gets a 4xx with an OpenAI error object ({"error": {"message": ...}}), never a
    5xx or a dropped connection; the server still answers correctly afterwards."""
    path, body = bad_request(engine, case)
    before = good_answer(engine)
    response = post(engine, path, body)
    assert 400 <= response.status_code < 500, (
        f"{case}: HTTP {response.status_code} (want 4xx): {response.text[:200]}")
    try:
        error = response.json().get("error")
    except ValueError:
        error = None
    assert isinstance(error, dict) and error.get("message"), (
        f"{case}: HTTP {response.status_code} without an OpenAI error object: {response.text[:200]}")
    assert good_answer(engine) == before, f"{case}: the next good request was answered differently"


def bad_request(engine, case: str) -> tuple[str, dict | bytes]:
    if engine.kind == "embedding":
        good = {"model": engine.model_name, "input": list(TEXTS)}
        bad = {"unknown_model": {"model": "no-such-model"}, "wrong_type": {"input": 42},
               "negative_max_tokens": None, "prompt_too_long": None}
        if case == "malformed_json":
            return "/embeddings", b'{"model": '
        if bad[case] is None:
            pytest.skip(f"{case} applies to generation")
        return "/embeddings", {**good, **bad[case]}
    if case == "malformed_json":
        return "/completions", b'{"model": '
    return "/completions", {**completion_body(engine, max_tokens=4), **BAD_GENERATION[case]}


def good_answer(engine):
    if engine.kind == "embedding":
        return engine.embed(list(TEXTS)).round(5).tolist()
    return post(engine, "/completions", completion_body(engine, max_tokens=4)).json()["choices"][0]["text"]


def test_embeddings_shape(engine) -> None:
    """A batch of inputs gives one vector each, in order (index), all of one dimension."""
    needs(engine, "embedding")
    answer = post(engine, "/embeddings", {"model": engine.model_name, "input": list(TEXTS)}).json()
    rows = answer.get("data", [])
    indexes = [r.get("index") for r in rows]
    assert indexes == list(range(len(TEXTS))), f"indexes {indexes}"
    assert len({len(r["embedding"]) for r in rows}) == 1, "vectors of different lengths"
    single = post(engine, "/embeddings", {"model": engine.model_name, "input": TEXTS[1]}).json()
    check_embeddings_close(a=np.array([single["data"][0]["embedding"]]), b=np.array([rows[1]["embedding"]]),
                           name_a="a string input", name_b="its row in a batch", atol=1e-5)


def test_base64_encoding(engine) -> None:
    """encoding_format base64 decodes (float32, little-endian) to the float vectors."""
    needs(engine, "embedding")
    body = {"model": engine.model_name, "input": list(TEXTS)}
    floats = post(engine, "/embeddings", {**body, "encoding_format": "float"}).json()["data"]
    packed = post(engine, "/embeddings", {**body, "encoding_format": "base64"}).json()["data"]
    for want, got in zip(floats, packed, strict=True):
        assert isinstance(got["embedding"], str), f"base64 asked, got {type(got['embedding']).__name__}"
        decoded = np.frombuffer(base64.b64decode(got["embedding"]), dtype="<f4")
        check_embeddings_close(a=decoded[None], b=np.array([want["embedding"]]), name_a="base64",
                               name_b="float", atol=1e-6)


def test_wire_parity(engine, model_dir, device, record_property) -> None:
    """The server and the same engine in process give the same greedy ids (where they first
    differ, the server's token is in the engine's top-k there), log-probabilities within
    tolerance; embeddings within tolerance."""
    twin_id = engine.in_process
    if not twin_id:
        pytest.skip(f"{engine.id} names no in-process engine to compare with")
    twin = load_engine_class(twin_id)()
    twin.load(model_dir, device=device)
    try:
        if engine.kind == "embedding":
            wire, local = engine.embed(list(TEXTS)), twin.embed(list(TEXTS))
            record_property("note", f"max |Δ| {np.abs(wire - local).max():.2g} from {twin_id} "
                                    "in process")
            check_embeddings_close(a=wire, b=local, name_a=engine.id, name_b=twin_id,
                                   atol=engine.parity_tolerance)
            return
        params = SamplingParams(max_new_tokens=12, ignore_eos=True,
                                logprobs=2 if engine.capabilities.logprobs else None)
        # one prompt at a time on both sides: the server gets one request per prompt
        pairs = [(engine.generate([p], params)[0], twin.generate([p], params)[0]) for p in PROMPTS]
        problems = [wire_divergence(engine, twin, ours, theirs) for ours, theirs in pairs]
        exact = sum((ours.token_ids == theirs.token_ids) if engine.ids_from_server
                    else (ours.text == theirs.text) for ours, theirs in pairs)
        what = "ids" if engine.ids_from_server else "text"
        note = f"{exact}/{len(PROMPTS)} prompts the same {what} as {twin_id} in process"
        worst = 0.0 if params.logprobs is None else max(
            abs(a[t] - b[t]) for ours, theirs in pairs
            for a, b in zip(ours.logprobs, theirs.logprobs) for t in a.keys() & b.keys())
        note += f", log-probabilities within {worst:.2g}" if params.logprobs is not None else ""
        record_property("note", note)
        assert not any(problems), "; ".join(p for p in problems if p)
        assert worst <= engine.logprob_tolerance, f"log-probabilities differ by {worst:.3g}"
        undecided = sum(not engine.ids_from_server and agree_before_a_cut(ours.text, theirs.text)
                        for ours, theirs in pairs)
        held_undecided(undecided, len(pairs), note, record_property)
    finally:
        twin.close()


def test_keep_alive(engine) -> None:
    """After a streamed answer that does not say `Connection: close`, the same connection takes
    the next request (HTTP/1.1 persistent connections): a client that reuses it, as aiohttp
    does without checking, must not find it closed."""
    import http.client

    if engine.kind == "embedding":
        path, body = "/embeddings", {"model": engine.model_name, "input": ["x"]}
    else:
        path, body = "/completions", {**completion_body(engine, max_tokens=4), "stream": True}
    url = httpx.URL(engine.client.url(path))
    conn = http.client.HTTPConnection(url.host, url.port, timeout=60)
    headers = {"Content-Type": "application/json", **{k: v for k, v in engine.client.http.headers.items()
                                                      if k.lower() == "authorization"}}
    try:
        conn.request("POST", url.raw_path.decode(), json.dumps(body), headers)
        first = conn.getresponse()
        first.read()
        if first.status != 200:
            pytest.skip(f"the request that opens the check was answered HTTP {first.status}")
        closing = (first.getheader("connection") or "").lower() == "close"
        if closing:
            return  # the server said it closes: a client opens a new connection
        try:
            conn.request("POST", url.raw_path.decode(), json.dumps(body), headers)
            second = conn.getresponse()
            second.read()
        except (http.client.HTTPException, OSError) as exc:
            pytest.fail(f"the connection closed after an answer whose headers promised keep-alive "
                        f"({first.getheader('keep-alive') or 'HTTP/1.1 default'}): the next request "
                        f"on it failed with {type(exc).__name__}: {exc}")
        assert second.status == 200, f"the second request on the connection got HTTP {second.status}"
    finally:
        conn.close()


def test_json_answers(engine) -> None:
    """Non-streamed answers are JSON objects of OpenAI's shape (object, choices or data)."""
    if engine.kind == "embedding":
        answer = post(engine, "/embeddings", {"model": engine.model_name, "input": ["x"]}).json()
        assert answer.get("object") == "list" and answer.get("data"), f"{json.dumps(answer)[:200]}"
        return
    answer = post(engine, "/completions", completion_body(engine, max_tokens=2)).json()
    assert answer.get("object") == "text_completion" and answer.get("choices"), f"{json.dumps(answer)[:200]}"
