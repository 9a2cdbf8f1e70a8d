"""A fixture conversion that fails is a failed load rung carrying the converter's message,
and the conversion cache keeps nothing of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.ask import Ask
from core.results import read_rung, write_rung
from engines import ENGINES, EngineEntry
from engines.base import Capabilities, Generator
from fixtures.convert import converted
from incell.worker import climb


def _broken_writer(model_dir: Path, out: Path) -> None:
    (out / "model.gguf").write_bytes(b"GGUF partial")
    raise ValueError("the GGUF writer handles model_type 'llama', not 'gpt2'")


class ConvertingEngine(Generator):
    """Loads through the conversion cache, like llama_cpp; its converter always fails."""

    id = "converting"  # not registered: the test registers it under this id
    capabilities = Capabilities()

    def _load(self, model_dir: Path, device: str, dtype: str) -> None:
        converted(model_dir, "toy-gguf", "1", _broken_writer)

    def _tokenize(self, text):
        return [1]

    def _generate(self, prompt_ids, params):
        raise NotImplementedError

    def _logits(self, prompt_ids):
        return np.zeros((len(prompt_ids), 1), np.float32)


def test_failed_conversion_is_a_load_failure_with_the_converters_message(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("INFERMATRIX_CACHE", str(cache))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "gpt2"}')
    monkeypatch.setitem(ENGINES, "converting", EngineEntry(f"{__name__}:ConvertingEngine", "generation"))
    monkeypatch.setattr("fixtures.catalog.locate", lambda name: model)
    record = tmp_path / "load.json"
    write_rung(record, climb("load", Ask(engine="converting", fixtures=("tiny-gpt2",))))
    rung = read_rung(record)  # as the driver reads it: typed, through the one reader
    assert rung.name == "load" and rung.status == "fail"
    error = rung.error  # the root cause is the converter's own error; the chain is kept
    assert error.type == "ValueError"
    assert "model_type 'llama', not 'gpt2'" in error.message
    assert "ConversionError: toy-gguf 1 could not convert" in error.text
    leftovers = [p.name for p in (cache / "converted").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []
