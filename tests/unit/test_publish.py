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
from pages.includes import BLOCK, INCLUDE, IncludeError, field_of, figure, formatted, prose_files
from pages.publish import check, publish

ROOT = Path(__file__).resolve().parents[2]
CUDA = "reports/cuda/records"
RECORD = "cuda/records/transformers-cuda-here-gpucheck.json"
DECODE = "rungs[name=bench].detail.metrics[name=decode_tokens_per_s].samples"


@pytest.fixture(scope="module")
def matrix():
    return load_matrix(ROOT / "compat" / "matrix.toml")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, matrix) -> Path:
    """A repository holding the committed CUDA records (the smallest published render), rendered,
    and a README quoting one of its figures through an include: rendered once, copied per test."""
    root = tmp_path_factory.mktemp("rendered")
    shutil.copytree(ROOT / CUDA, root / CUDA)
    wanted = figure(root / "reports", RECORD, DECODE, "median", ".1f")
    (root / "README.md").write_text(
        f"Decodes at <!-- fig {RECORD}#{DECODE} median .1f -->0<!-- /fig --> tok/s.\n")
    publish(root, matrix, log=lambda _: None)
    assert f"-->{wanted}<!--" in (root / "README.md").read_text()
    return root


@pytest.fixture
def repo(tmp_path: Path, rendered: Path) -> Path:
    shutil.copytree(rendered, tmp_path / "repo")
    return tmp_path / "repo"


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


NUMBER = r"\d[\d,]*(?:\.\d+)?"
UNITS = (r"tok/s|tokens/s|sentences/s|sent/s|req/s|GB/s|TB/s|TFLOP/s|GFLOP/s|ms|µs|s|min|"
         r"minutes?|seconds?|hours?|%|×")
FIGURE = re.compile(rf"(?<![\w.\-/=]){NUMBER}\s?(?:{UNITS})(?![\w/])")
BOUND_BEFORE = re.compile(r"(?:≥|≤|>|<|±|\+|within|above|below|more than|less than|at least|"
                          r"at most|past|over|under|every|each|the first|of|by)\s*$")
DEFINED_AFTER = re.compile(r"^\s*(?:\+|interval|bootstrap|order-statistic|the last-level|576|of the "
                           r"truth|late|of a core|of throughput|of the streams|of what)")
"""A number with a unit that states a bound, a tolerance or a shape (CV above 10%, a 95%
interval, 8 × the cache), not something measured."""


def hand_figures(text: str) -> list[str]:
    """Measured-looking figures in prose outside includes and code spans."""
    text = INCLUDE.sub("", BLOCK.sub("", text))
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = re.sub(r"`[^`]*`", "``", line)  # a code span quotes a command or a message
        for m in FIGURE.finditer(line):
            if BOUND_BEFORE.search(line[:m.start()]) or DEFINED_AFTER.search(line[m.end():]):
                continue
            found.append(f"{number}: {m.group(0)!r} in {line.strip()[:120]!r}")
    return found


def test_prose_quotes_no_measured_figure_by_hand() -> None:
    """README.md and docs/ hold no measured figure outside an include that the report renders
    from its record: a figure typed by hand goes stale the day the tables move."""
    found = {path.name: hand_figures(path.read_text(encoding="utf-8"))
             for path in prose_files(ROOT)}
    assert not {name: lines for name, lines in found.items() if lines}


def test_the_figure_finder_finds_a_typed_figure_and_spares_a_bound() -> None:
    assert hand_figures("decodes at 35.8 tok/s, TTFT 27 ms") == [
        "1: '35.8 tok/s' in 'decodes at 35.8 tok/s, TTFT 27 ms'",
        "1: '27 ms' in 'decodes at 35.8 tok/s, TTFT 27 ms'"]
    assert hand_figures("a ⚠️ mark above 10%; its 95% interval; `timeout 300 s`") == []
    assert hand_figures("<!-- fig a.json#x value -->35.8<!-- /fig --> tok/s") == []
