"""engines/base.py and the registry: typed errors, lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engines import UnknownEngineError, check_engine
from engines.base import InvalidParameterError, SamplingParams, check_prompts


@pytest.mark.parametrize(("params", "pattern"), [
    ({"max_new_tokens": -1}, r"max_new_tokens must be an int >= 0, got -1"),
    ({"temperature": -0.5}, r"temperature must be a finite float >= 0, got -0.5"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\], got 0.0"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\], got 1.5"),
    ({"top_k": -3}, r"top_k must be an int >= 0, got -3"),
    ({"max_tokens": 3}, r"Unknown parameter\(s\) \['max_tokens'\]. Valid: .*max_new_tokens"),
])
def test_bad_sampling_params_name_the_value(params: dict, pattern: str) -> None:
    with pytest.raises(InvalidParameterError, match=pattern):
        SamplingParams.from_dict(params)


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
