"""fixtures/convert.py: converted once per content and converter version, never half-written."""

from __future__ import annotations

import pytest

from fixtures.convert import COMPLETE, ConversionError, converted, entry_dir


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setenv("INFERMATRIX_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\x00\x01\x02")
    return folder


def test_converts_once_and_reuses(model) -> None:
    calls = []

    def convert(src, out):
        calls.append(src)
        (out / "model.onnx").write_bytes((src / "weights.bin").read_bytes() * 2)

    first = converted(model, "toy", "1.0", convert)
    second = converted(model, "toy", "1.0", convert)
    assert first == second
    assert len(calls) == 1
    assert (first / "model.onnx").read_bytes() == b"\x00\x01\x02" * 2
    assert (first / COMPLETE).is_file()


def test_new_content_or_converter_version_makes_a_new_entry(model) -> None:
    before = entry_dir(model, "toy", "1.0")
    assert entry_dir(model, "toy", "2.0") != before
    (model / "weights.bin").write_bytes(b"\x09")
    assert entry_dir(model, "toy", "1.0") != before


def test_a_failing_converter_leaves_nothing_in_the_cache(model) -> None:
    def convert(src, out):
        (out / "model.gguf").write_bytes(b"half")  # written before the failure
        raise ValueError("the GGUF writer handles model_type 'llama', not 'gpt2'")

    with pytest.raises(ConversionError, match=r"toy 1\.0 could not convert .*model_type 'llama'"):
        converted(model, "toy", "1.0", convert)
    parent = entry_dir(model, "toy", "1.0").parent
    assert [p.name for p in parent.iterdir() if not p.name.endswith(".lock")] == []


def test_an_entry_without_its_marker_is_rebuilt(model) -> None:
    stale = entry_dir(model, "toy", "1.0")
    stale.mkdir(parents=True)
    (stale / "model.onnx").write_bytes(b"truncated")  # e.g. copied in by hand, no marker

    def convert(src, out):
        (out / "model.onnx").write_bytes(b"whole")

    assert (converted(model, "toy", "1.0", convert) / "model.onnx").read_bytes() == b"whole"
