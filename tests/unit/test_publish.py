"""The published reports are a function of their committed records: the check renders them again
and fails on a page edited by hand, a record edited without re-rendering, and a docs figure
include gone stale."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from compat.matrix import load as load_matrix
from pages.includes import IncludeError, field_of, figure, formatted
from pages.publish import check, publish

ROOT = Path(__file__).resolve().parents[2]
CUDA = "reports/cuda/records"
RECORD = "cuda/records/transformers-cuda-here-gpucheck.json"
DECODE = "rungs[name=bench].detail.metrics[name=decode_tokens_per_s].samples"


@pytest.fixture(scope="module")
def matrix():
    return load_matrix(ROOT / "compat" / "matrix.toml")


@pytest.fixture
def repo(tmp_path: Path, matrix) -> Path:
    """A repository holding the committed CUDA records (the smallest published render), rendered,
    and a README quoting one of its figures through an include."""
    shutil.copytree(ROOT / CUDA, tmp_path / CUDA)
    wanted = figure(tmp_path / "reports", RECORD, DECODE, "median", ".1f")
    (tmp_path / "README.md").write_text(
        f"Decodes at <!-- fig {RECORD}#{DECODE} median .1f -->0<!-- /fig --> tok/s.\n")
    publish(tmp_path, matrix, log=lambda _: None)
    assert f"-->{wanted}<!--" in (tmp_path / "README.md").read_text()
    return tmp_path


def test_a_fresh_render_passes(repo: Path, matrix) -> None:
    assert check(repo, matrix) == []
    assert (repo / "reports/cuda/THROUGHPUT.md").is_file()
    assert (repo / "reports/cuda/throughput.png").is_file()


def test_a_page_edited_by_hand_fails(repo: Path, matrix) -> None:
    page = repo / "reports/cuda/THROUGHPUT.md"
    page.write_text(page.read_text().replace("194.6 tok/s", "210.0 tok/s", 1))
    found = check(repo, matrix)
    assert len(found) == 1 and "reports/cuda/THROUGHPUT.md" in found[0]
    assert "-| `transformers`" in found[0] and "210.0 tok/s" in found[0]


def test_a_record_edited_without_rendering_fails(repo: Path, matrix) -> None:
    path = repo / CUDA / "transformers-cuda-here-gpucheck.json"
    data = json.loads(path.read_text())
    bench = next(r for r in data["rungs"] if r["name"] == "bench")["detail"]
    metric = next(m for m in bench["metrics"] if m["name"] == "decode_tokens_per_s")
    metric["samples"] = [s * 1.5 for s in metric["samples"]]
    metric["stats"] = {k: v * 1.5 if k not in ("n", "cv") else v for k, v in metric["stats"].items()}
    path.write_text(json.dumps(data))
    found = "\n".join(check(repo, matrix))
    assert "reports/cuda/THROUGHPUT.md (committed)" in found
    assert "reports/cuda/results.json" in found
    assert "README.md:1: the include shows" in found  # the include read the record too


def test_a_stale_docs_include_fails(repo: Path, matrix) -> None:
    readme = repo / "README.md"
    readme.write_text(re.sub(r"-->[^<]*<!-- /fig", "-->99.9<!-- /fig", readme.read_text()))
    found = check(repo, matrix)
    assert len(found) == 1 and found[0].startswith("README.md:1: the include shows '99.9'")


def test_a_page_its_records_no_longer_render_fails(repo: Path, matrix) -> None:
    (repo / "reports/cuda/SERVING.md").write_text("# Serving\n")
    assert check(repo, matrix) == [
        "reports/cuda/SERVING.md: committed, but its records render no such page"]


def test_field_paths_and_formats() -> None:
    data = {"rungs": [{"name": "a", "v": [1, 2]}, {"name": "b", "v": [3.0, 5.0, 4.0]}]}
    assert field_of(data, "rungs[name=b].v[2]") == 4.0
    assert field_of(data, "rungs[1].name") == "b"
    assert field_of({"m": [{"n": "x", "p": {"b": 1}, "v": 1}, {"n": "x", "p": {"b": 8}, "v": 2}]},
                    "m[n=x,p.b=8].v") == 2
    with pytest.raises(IncludeError, match=r"'rungs\[name=c\]' is not in the record"):
        field_of(data, "rungs[name=c].v")
    with pytest.raises(IncludeError, match="cannot read"):
        field_of(data, "rungs..v")
    assert formatted(243.0, "min-s") == "4 min 3 s"
    assert formatted(0.04567, "ms") == "45.7"
    assert formatted(12693.4, ",.0f") == "12,693"
