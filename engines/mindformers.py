"""MindFormers (Huawei's MindSpore model suite) as a Generator.

What installs from PyPI here is MindFormers 1.9.0 on MindSpore 2.9.0: the newest MindFormers
needs a MindSpore (>= 2.11) that PyPI does not carry, so the resolver falls back (the resolve
rung records its words). The adapter loads the fixture the way a user would try,
`AutoModelForCausalLM.from_pretrained(<folder>)`; MindFormers 1.9.0 refuses a Hugging Face
folder (it wants a MindSpore checkpoint in its own YAML-configured directory, or a model name it
downloads), so the cell stops at load with MindFormers' own message, declared in
compat/matrix.toml. With numpy 2 the resolver falls back to MindFormers 0.8.0, which does not
declare MindSpore: that cell stops at import. Generation
follows its transformers-like generate(); it has not run here, since no model loads.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import ClassVar

import numpy as np

# MindFormers writes its logs under ./output/log at import; keep them out of the working tree
os.environ.setdefault("LOG_MF_PATH", os.path.join(tempfile.gettempdir(), "infermatrix-mindformers-log"))
from mindformers import AutoModelForCausalLM
from tokenizers import Tokenizer

from engines.base import (
    Capabilities,
    Completion,
    Generator,
    SamplingParams,
)


class MindFormersGenerator(Generator):
    """AutoModelForCausalLM.from_pretrained(<folder>).generate(); the fixture's tokenizer.json."""

    capabilities = Capabilities(token_input=True, batching=True)
    unsupported: ClassVar[dict[str, str]] = {
        "lora": "MindFormers' LoRA is part of the network's configuration (pet_config) when it is "
                "built; there is no adapter to set on a loaded model"}

    def __init__(self) -> None:
        self._model = None
        self._tok: Tokenizer | None = None
        self._eos: int | None = None

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        self._model = AutoModelForCausalLM.from_pretrained(str(model_dir))
        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._eos = self._tok.token_to_id("<|eos|>")

    def _close(self) -> None:
        self._model = self._tok = None

    @property
    def eos_token_id(self) -> int | None:
        return self._eos

    def _tokenize(self, text: str) -> list[int]:
        return list(self._tok.encode(text).ids)

    def _generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        completions = []
        for ids in prompt_ids:
            out = self._model.generate(np.asarray([ids], dtype=np.int32), do_sample=False,
                                       max_new_tokens=params.max_new_tokens)
            generated = [int(t) for t in np.asarray(out[0]).reshape(-1)[len(ids):]]
            end = next((i for i, t in enumerate(generated) if t == self._eos), None)
            generated = generated[:end] if end is not None and not params.ignore_eos else generated
            reason = "eos" if end is not None and not params.ignore_eos else "length"
            completions.append(Completion(self._tok.decode(generated), tuple(generated), tuple(ids),
                                          reason))
        return completions
