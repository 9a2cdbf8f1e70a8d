"""compat/live.py: the verdict pages written again as cells land, while the run goes on."""

from __future__ import annotations

import json
import sys
import threading

from compat.live import LivePages
from core.results import ErrorInfo, save
from tests.unit.builders import cell, failing_at, passing


def landed(results_dir, *cells) -> None:
    for one in cells:
        save(one, results_dir)


def test_each_landing_writes_the_verdicts_so_far_with_a_banner_and_leaves_the_rest(tmp_path) -> None:
    results, out = tmp_path / "results", tmp_path / "reports"
    results.mkdir()
    out.mkdir()
    (out / "results.json").write_text('{"cells": []}\n')  # the last finished run's
    (out / "THROUGHPUT.md").write_text("# Throughput\n")
    lines: list[str] = []
    pages = LivePages(sys.executable, results, out, total=3, log=lines.append)

    landed(results, cell("fastembed", "numpy2", "embedding", passing()))
    pages.land("fastembed-numpy2")
    pages.close()
    first = (out / "COMPATIBILITY.md").read_text()
    assert "1 of 3 cells have landed" in first and "`fastembed-numpy2`" in first
    index = (out / "site" / "index.html").read_text()
    assert "1 of 3 cells have landed" in index and "fastembed-numpy2" in index

    broken = ErrorInfo.from_message("ModuleNotFoundError", "No module named 'optimum.bt'")
    landed(results, cell("embed", "numpy1", "embedding", failing_at("import", broken)))
    pages.land("embed-numpy1")
    pages.land("embed-numpy1")  # its bench rung landed too: the same cell, counted once
    pages.close()
    second = (out / "COMPATIBILITY.md").read_text()
    assert "2 of 3 cells have landed" in second and "ModuleNotFoundError" in second
    assert "embed-numpy1" in (out / "site" / "index.html").read_text()
    # what only the finished run writes is left as it was
    assert json.loads((out / "results.json").read_text()) == {"cells": []}
    assert (out / "THROUGHPUT.md").read_text() == "# Throughput\n"
    assert not (out / "history.jsonl").exists()
    assert 2 <= pages.renders <= 3 and any("1/3" in line for line in lines)


def test_landings_during_a_render_are_taken_together_by_the_next(tmp_path) -> None:
    results, out = tmp_path / "results", tmp_path / "reports"
    results.mkdir()
    out.mkdir()
    pages = LivePages(sys.executable, results, out, total=20, log=lambda line: None)
    ids = [f"fastembed-n{i}" for i in range(20)]
    for i in range(len(ids)):
        landed(results, cell("fastembed", f"n{i}", "embedding", passing()))
    workers = [threading.Thread(target=pages.land, args=(cid,)) for cid in ids]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    pages.close()
    assert pages.renders < len(ids)  # one render at a time, never one per landing queued up
    assert "20 of 20 cells have landed" in (out / "COMPATIBILITY.md").read_text()


def test_a_render_that_fails_is_said_once_and_the_run_goes_on(tmp_path) -> None:
    lines: list[str] = []
    pages = LivePages(sys.executable, tmp_path / "missing", tmp_path, total=2, log=lines.append)
    pages.land("a")
    pages.close()
    pages.land("b")
    pages.close()
    assert pages.renders == 2
    said = [line for line in lines if "could not be written" in line]
    assert len(said) == 1 and "does not exist" in said[0]
