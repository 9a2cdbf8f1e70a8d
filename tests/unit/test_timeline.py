"""core/timeline.py: every run writes when each cell's rungs started and ended, and the README's
sample lines and docs' wall times are rendered from that record."""

from __future__ import annotations

from pathlib import Path

from compat.drive import run_matrix
from compat.matrix import parse
from core.timeline import Recorder, Span, Timeline, load
from pages.includes import rewrite, stale
from tests.conftest import matrix_data


def test_a_run_writes_its_timeline(tmp_path: Path) -> None:
    data = matrix_data()
    data["defaults"]["python"] = "3.99"  # resolves, then fails to install at once
    data["engines"]["sentence_transformers"]["requires"] = ["six"]
    data["harness"]["requires"] = []
    data["devices"]["cpu"]["constraints"] = []
    cell = parse(data).cell("sentence_transformers-numpy2")
    logged: list[str] = []
    run_matrix([cell], venv_root=tmp_path / "venvs", results_dir=tmp_path / "results",
               log=logged.append, workers=1)
    [path] = (tmp_path / "results" / "run").glob("timeline-*.json")
    timeline = load(path)
    assert [s.rung for s in timeline.spans] == ["resolve", "install"]
    assert [s.status for s in timeline.spans] == ["pass", "fail"]
    first, second = timeline.spans
    assert 0 <= first.start_s <= first.end_s <= second.start_s <= second.end_s <= timeline.wall_s
    assert timeline.verdicts["sentence_transformers-numpy2"] >= second.end_s
    assert timeline.first_verdicts() == {
        "sentence_transformers": ("sentence_transformers-numpy2",
                                  timeline.verdicts["sentence_transformers-numpy2"])}
    assert timeline.finished_at >= timeline.started_at and timeline.cells == 1
    # the lines it renders are the lines the run logged
    assert timeline.lines(2) == [line for line in logged if line.startswith("[")][:2]


def test_a_timeline_block_renders_and_goes_stale(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    recorder = Recorder(reports / "records/run/timeline-x.json",
                        Timeline(started_at="2026-12-07T00:00:00+00:00", selection="default",
                                 workers=3, cells=2))
    recorder.timeline.spans = [Span("b-1", "b", "resolve", "pass", 0.0, 2.5),
                               Span("a-1", "a", "resolve", "pass", 0.0, 1.25, " - Fallback: x")]
    recorder.timeline.verdicts = {"a-1": 40.0, "b-1": 30.0}
    recorder.write()
    (tmp_path / "README.md").write_text(
        "<!-- timeline records/run/timeline-x.json lines 2 -->\nold\n<!-- /timeline -->\n"
        "first: <!-- fig records/run/timeline-x.json#verdicts.a-1 value min-s -->?<!-- /fig -->\n"
        "all: <!-- fig records/run/timeline-x.json#summary.all_engines_s value min-s -->?<!-- /fig -->\n")
    text = rewrite((tmp_path / "README.md").read_text(), reports)
    assert "```text\nnox > [a-1] resolve     ok (1.2s) - Fallback: x\n" \
           "nox > [b-1] resolve     ok (2.5s)\n```\n<!-- /timeline -->" in text
    assert "-->40 s<!-- /fig -->" in text
    summary = recorder.timeline.summary()
    assert summary["first_verdict_s"] == 30.0 and summary["all_engines_s"] == 40.0
    assert summary["rung_sums"] == {"resolve": 3.75} and summary["cells_climbed"] == 2
    found = sorted(str(p) for p in stale([tmp_path / "README.md"], reports, tmp_path))
    assert found[0].startswith("README.md:1: the include shows 'old\\n")
    assert found[1] == "README.md:4: the include shows '?', its record gives '40 s'"
    assert found[2] == "README.md:5: the include shows '?', its record gives '40 s'"
    (tmp_path / "README.md").write_text(text)
    assert stale([tmp_path / "README.md"], reports, tmp_path) == []
