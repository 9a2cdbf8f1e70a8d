"""engines/base.py and the registry: typed errors, lazy imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engines import UnknownEngineError, check_engine
from engines.base import (
    Capabilities,
    Completion,
    EngineNotLoadedError,
    Generator,
    InvalidParameterError,
    SamplingParams,
    UnsupportedCapabilityError,
    check_prompts,
    top_logprobs,
)


@pytest.mark.parametrize(("params", "pattern"), [
    ({"max_new_tokens": -1}, r"max_new_tokens must be an int >= 0, got -1"),
    ({"temperature": -0.5}, r"temperature must be a finite float >= 0, got -0.5"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\], got 0.0"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\], got 1.5"),
    ({"top_k": -3}, r"top_k must be an int >= 0, got -3"),
    ({"logprobs": -1}, r"logprobs must be None or an int in \[0, 20\], got -1"),
    ({"logprobs": 21}, r"logprobs must be None or an int in \[0, 20\], got 21"),
    ({"logprobs": True}, r"logprobs must be None or an int in \[0, 20\], got True"),
    ({"max_tokens": 3}, r"Unknown parameter\(s\) \['max_tokens'\]. Valid: .*max_new_tokens"),
])
def test_bad_sampling_params_name_the_value(params: dict, pattern: str) -> None:
    with pytest.raises(InvalidParameterError, match=pattern):
        SamplingParams.from_dict(params)


@given(st.lists(st.floats(-1e4, 1e4), min_size=3, max_size=50), st.integers(0, 2), st.data())
def test_top_logprobs_is_a_log_softmax_holding_the_chosen_token(logits, n, data) -> None:
    chosen = data.draw(st.integers(0, len(logits) - 1))
    step = top_logprobs(np.array(logits, dtype=np.float32), chosen, n)
    full = np.array(logits, dtype=np.float32).astype(np.float64)  # what the engine holds
    want = full - full.max() - np.log(np.exp(full - full.max()).sum())
    assert chosen in step and n <= len(step) <= n + 1
    for token, value in step.items():
        assert value == pytest.approx(want[token], abs=1e-6)
    assert sorted(step.values(), reverse=True)[:n] == pytest.approx(sorted(want, reverse=True)[:n])


def test_bare_stop_string_is_one_stop_string() -> None:
    assert SamplingParams(stop="\n").stop == ("\n",)


@pytest.mark.parametrize(("prompts", "pattern"), [
    ([], "prompts is empty"),
    ("hello", "got a single str"),
    (["ok", 3], r"prompts\[1\] must be a str, got int"),
])
def test_bad_prompts(prompts, pattern: str) -> None:
    with pytest.raises(InvalidParameterError, match=pattern):
        check_prompts(prompts)


def test_unknown_engine_suggests() -> None:
    with pytest.raises(UnknownEngineError, match=r"Unknown engine 'sentence-transformers'. "
                                                 r"Did you mean 'sentence_transformers'\?"):
        check_engine("sentence-transformers")


def test_listing_engines_imports_no_engine_library(repo_env: dict[str, str]) -> None:
    code = ("import sys, engines, compat.matrix; compat.matrix.load(); "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=repo_env)
    assert out.stdout.strip() == "[]"


class Counting(Generator):
    """A toy Generator for the base class's own checks: each row continues by counting up."""

    id = "counting"
    capabilities = Capabilities(chat=False, streaming=False, stop_strings=False, token_input=True)

    def _load(self, model_dir, device, dtype) -> None:
        self.calls = []

    def _tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def _generate(self, prompt_ids, params):
        self.calls.append(prompt_ids)
        return [Completion("", tuple(range(ids[-1] + 1, ids[-1] + 1 + params.max_new_tokens)),
                           tuple(ids), "length") for ids in prompt_ids]


CALLS = {
    "tokenize": lambda e: e.tokenize("a"),
    "generate": lambda e: e.generate(["a"], SamplingParams()),
    "generate_from_ids": lambda e: e.generate_from_ids([[1]], SamplingParams()),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_call_before_load_is_one_typed_error(call: str, tmp_path) -> None:
    engine = Counting()
    with pytest.raises(EngineNotLoadedError, match=r"counting: call load\(\) before using the engine"):
        CALLS[call](engine)
    engine.load(tmp_path)
    CALLS[call](engine)
    engine.close()
    with pytest.raises(EngineNotLoadedError):
        CALLS[call](engine)


def test_prompts_and_parameters_are_checked_once_in_the_base_class(tmp_path) -> None:
    engine = Counting()
    engine.load(tmp_path)
    with pytest.raises(InvalidParameterError, match="prompt 1 encodes to no tokens"):
        engine.generate(["a", ""], SamplingParams())
    with pytest.raises(InvalidParameterError, match="prompt_ids is empty"):
        engine.generate_from_ids([], SamplingParams())
    with pytest.raises(UnsupportedCapabilityError, match="'stop_strings'"):
        engine.generate(["a"], SamplingParams(stop=("x",)))
    for call, capability in ((lambda: list(engine.stream("a", SamplingParams())), "streaming"),
                             (lambda: list(engine.stream_from_ids([1], SamplingParams())),
                              "streaming"),
                             (lambda: engine.chat([], SamplingParams()), "chat"),
                             (lambda: engine.next_token_logits(["a"]), "logits")):
        with pytest.raises(UnsupportedCapabilityError, match=repr(capability)):
            call()
    assert engine.calls == []  # nothing bad reached the adapter
    empty = engine.generate(["ab"], SamplingParams(max_new_tokens=0))
    assert empty[0].token_ids == () and empty[0].finish_reason == "length" and engine.calls == []
    assert engine.generate(["ab"], SamplingParams(max_new_tokens=2))[0].token_ids == (99, 100)
    with pytest.raises(InvalidParameterError, match=r"counting: device 'cuda' is not one of"):
        Counting().load(tmp_path, device="cuda")


class Streaming(Counting):
    """The toy Generator that streams: one delta a token."""

    capabilities = Capabilities(chat=False, streaming=True, stop_strings=False, token_input=True)

    def _stream(self, prompt_ids, params):
        from engines.base import StreamDelta

        for token in self._generate([prompt_ids], params)[0].token_ids:
            yield StreamDelta(str(token), (token,))


def test_a_stream_from_ids_feeds_the_ids_as_they_are_and_checks_them(tmp_path) -> None:
    """What the throughput suite times at batch 1: the ids reach the adapter unchanged."""
    engine = Streaming()
    engine.load(tmp_path)
    deltas = list(engine.stream_from_ids([5, 7], SamplingParams(max_new_tokens=3)))
    assert [d.token_ids for d in deltas] == [(8,), (9,), (10,)] and engine.calls == [[[5, 7]]]
    assert list(engine.stream_from_ids([5], SamplingParams(max_new_tokens=0))) == []
    with pytest.raises(InvalidParameterError, match="prompt 0 encodes to no tokens"):
        list(engine.stream_from_ids([], SamplingParams()))


class Adapting(Counting):
    """The toy Generator with run-time adapters: it remembers the folder it was given."""

    capabilities = Capabilities(chat=False, streaming=False, stop_strings=False, token_input=True,
                                lora=True)

    def _set_adapter(self, adapter_dir) -> None:
        self.adapter = adapter_dir


def test_an_adapter_is_a_peft_folder_asked_of_an_engine_that_applies_one(tmp_path) -> None:
    counting, adapting = Counting(), Adapting()
    for engine in (counting, adapting):
        engine.load(tmp_path)
    with pytest.raises(UnsupportedCapabilityError, match="'lora'"):
        counting.set_adapter(tmp_path)
    with pytest.raises(InvalidParameterError, match=rf"{tmp_path} is not a peft adapter folder "
                                                    r"\(no adapter_config.json in it\)"):
        adapting.set_adapter(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    adapting.set_adapter(str(tmp_path))
    assert adapting.adapter == tmp_path
    adapting.set_adapter(None)
    assert adapting.adapter is None
