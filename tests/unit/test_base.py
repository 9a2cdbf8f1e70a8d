"""engines/base.py and the registry: typed errors, lazy imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engines import UnknownEngineError, check_engine
from engines.base import InvalidParameterError, SamplingParams, check_prompts, top_logprobs


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
