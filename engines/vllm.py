"""vLLM's offline `LLM` API as a Generator, and its pooling runner as an Embedder.

Needs CUDA: on a CPU machine its cells resolve, and the rungs from install
upwards show "not run: needs CUDA". Offline `LLM` has no token streaming and
returns log-probabilities rather than logits, so `streaming` and `logits` are
declared unsupported, with their reasons; the suite skips those properties.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import ClassVar

import numpy as np
from vllm import LLM
from vllm import SamplingParams as VllmSamplingParams

from engines.base import (
    Capabilities,
    Completion,
    Embedder,
    Generator,
    SamplingParams,
    as_rows,
)
from engines.text import HfTokenizer

COMMON = {"enforce_eager": True, "gpu_memory_utilization": 0.3, "seed": 0}


class VllmGenerator(HfTokenizer, Generator):
    """LLM(model=<folder>).generate / .chat, eager mode, a small memory share."""

    capabilities = Capabilities(
        streaming=False,
        chat=True,
        seeded_sampling=True,
        stop_strings=True,
        stop_string_kept=False,  # include_stop_str_in_output defaults to False
        logprobs=True,
        token_input=True,
        min_new_tokens=True,
        stop_token_ids=True,
        batching=True,
    )
    logprob_tolerance = 1e-2  # CUDA kernels (and TF32 where enabled) against CPU float32
    unsupported: ClassVar[dict[str, str]] = {
        "streaming": "the offline LLM API returns whole completions (streaming is the server's)",
        "logits": "the offline LLM API returns log-probabilities (top-k), not raw logits",
    }

    def __init__(self) -> None:
        self._llm: LLM | None = None

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        self._llm = LLM(model=str(model_dir), tokenizer=str(model_dir), dtype=dtype,
                        max_model_len=512, **COMMON)
        self._tok = self._llm.get_tokenizer()

    def _close(self) -> None:
        self._llm = None
        self._tok = None
        gc.collect()

    @staticmethod
    def _params(params: SamplingParams) -> VllmSamplingParams:
        return VllmSamplingParams(
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k or -1,
            seed=params.seed,
            stop=list(params.stop) or None,
            stop_token_ids=list(params.stop_token_ids) or None,
            min_tokens=params.min_new_tokens,
            ignore_eos=params.ignore_eos,
            logprobs=params.logprobs,  # raw log-softmax: vLLM's default logprobs_mode
        )

    @staticmethod
    def _completion(output) -> Completion:
        out = output.outputs[0]
        if out.finish_reason == "length":
            reason = "length"
        else:  # vLLM says "stop" for both; stop_reason is the matched string, None for EOS
            reason = "stop" if isinstance(out.stop_reason, str) else "eos"
        logprobs = None if out.logprobs is None else tuple(
            {int(t): float(lp.logprob) for t, lp in step.items()} for step in out.logprobs)
        return Completion(out.text, tuple(out.token_ids), tuple(output.prompt_token_ids), reason,
                          logprobs)

    def _generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        prompts = [{"prompt_token_ids": ids} for ids in prompt_ids]
        outputs = self._llm.generate(prompts, self._params(params), use_tqdm=False)
        return [self._completion(o) for o in outputs]


class VllmEmbedder(Embedder):
    """LLM(model=<folder>, runner="pooling").embed(): the Sentence Transformers pooling of the folder."""

    capabilities = Capabilities(batching=True)
    parity_tolerance = 1e-3  # CUDA kernels in float32; declared, shown in the report

    def __init__(self) -> None:
        self._llm: LLM | None = None

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        self._llm = LLM(model=str(model_dir), runner="pooling", dtype=dtype, **COMMON)

    def _close(self) -> None:
        self._llm = None
        gc.collect()

    def _embed(self, texts: list[str], normalize: bool) -> np.ndarray:
        outputs = self._llm.embed(texts, use_tqdm=False)
        return as_rows([np.asarray(o.outputs.embedding) for o in outputs], normalize=normalize)

    def _dimension(self) -> int:
        return int(self._llm.llm_engine.model_config.get_hidden_size())
