"""fixtures/convert.py: converted once per content and converter version, never half-written."""

from __future__ import annotations

import pytest

from fixtures import manifest
from fixtures.catalog import FixtureMissingError, built_dir, locate
from fixtures.convert import COMPLETE, ConversionError, converted, entry_dir
from fixtures.manifest import problems, verify_cache, write_manifest


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


def grow(src, out) -> None:
    (out / "model.gguf").write_bytes(b"G" * 4096)


def test_a_truncated_entry_with_its_marker_is_named_and_converted_again(model, capsys) -> None:
    """As a full disk, a killed copy or a partial CI cache restore leaves it: the marker is in
    place, the bytes are not. The entry is converted again, never handed to an engine."""
    calls = []
    first = converted(model, "toy", "1.0", lambda s, o: (calls.append(1), grow(s, o)))
    with open(first / "model.gguf", "r+b") as handle:
        handle.truncate(100)
    again = converted(model, "toy", "1.0", lambda s, o: (calls.append(2), grow(s, o)))
    assert calls == [1, 2] and (again / "model.gguf").stat().st_size == 4096
    assert "model.gguf has 100 bytes, not 4,096" in capsys.readouterr().err


def test_a_changed_byte_is_found_by_the_runs_full_check(model, tmp_path) -> None:
    """Same size, one byte flipped: the per-use size check cannot see it; the driver's hash check
    once per run removes the entry (named in the log), and the next use converts it again."""
    entry = converted(model, "toy", "1.0", grow)
    data = bytearray((entry / "model.gguf").read_bytes())
    data[7] ^= 1
    (entry / "model.gguf").write_bytes(bytes(data))
    assert problems(entry, full=False, name=COMPLETE) == []
    logged: list[str] = []
    manifest._VERIFIED.clear()  # a new run
    assert verify_cache(tmp_path / "cache", logged.append) == 1
    assert not entry.exists() and "model.gguf does not have its recorded sha256" in logged[0]
    assert verify_cache(tmp_path / "cache", logged.append) == 0, "once per run"
    assert (converted(model, "toy", "1.0", grow) / "model.gguf").read_bytes() == b"G" * 4096


def test_a_damaged_built_fixture_is_named_not_loaded(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("INFERMATRIX_CACHE", str(tmp_path / "cache"))
    folder = built_dir("tiny-llama")
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"w" * 1000)
    write_manifest(folder)
    assert locate("tiny-llama") == folder
    (folder / "model.safetensors").write_bytes(b"w" * 10)
    with pytest.raises(FixtureMissingError, match=r"damaged \(model.safetensors has 10 bytes, "
                                                   r"not 1,000\)\. Build it again with: nox -s fixtures"):
        locate("tiny-llama")
