"""One limit per run: the machine's limits read before a run's first bench rung and after its
last (bench/limits.py, compat/limits_probe.py, core/run_limits.py), and the pages that divide
every row of that run by them (pages/real_shape.py, pages/throughput.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.limits import main as limits_main
from bench.stats import summarize
from compat.limits_probe import RunProbe, probe_python
from core.results import write_atomic
from core.run_limits import DRIFT, LimitReadings, RunLimits, load_all, save
from pages.real_shape import load_real_shapes, real_shape_section
from tests.unit.builders import cell, passing, shape_bench


def limits(run: str, before: list[float], after: list[float] | None) -> RunLimits:
    return RunLimits(run=run, before=LimitReadings("t0", before, {"float32": [0.40, 0.42]}),
                     after=LimitReadings("t1", after, {"float32": [0.41]}) if after else None)


def test_the_limit_is_the_best_reading_of_both_phases_and_drift_is_flagged() -> None:
    steady = limits("20261207T230000", [40.0, 41.0], [39.0, 42.0])
    assert steady.bandwidth_gb_s == 42.0 and steady.peak_tflops("float32") == 0.42
    assert steady.drift() == pytest.approx(1 / 42) and not steady.drifting
    assert steady.named() == ("42.0 GB/s, the best of 4 readings before and after the bench "
                              "rungs (the two phases' bests 2% apart)")
    moved = limits("r", [40.0], [30.0])
    assert moved.drift() == pytest.approx(0.25) and moved.drift() > DRIFT and moved.drifting
    assert "⚠️ drifting, past 15%" in moved.named()
    half = limits("r", [40.0], None)
    assert half.drift() is None and "readings before the bench rungs" in half.named()
    assert RunLimits(run="r", problem="the probe failed").named() == "not measured (the probe failed)"


def test_a_record_round_trips_and_other_files_are_not_taken(tmp_path) -> None:
    save(limits("20261207T230000", [40.0], [41.0]), tmp_path)
    (tmp_path / "timeline-20261207T230000.json").write_text("{}")
    found = load_all(tmp_path)
    assert list(found) == ["20261207T230000"] and found["20261207T230000"].bandwidth_gb_s == 41.0
    assert load_all(tmp_path / "none") == {}


def test_the_probe_reads_real_limits(capsys) -> None:
    """bench.limits on this machine: a read bandwidth and a float32 peak, every reading kept."""
    assert limits_main(["--readings", "2", "--dtypes", "float32"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["memory_bandwidth_gb_s"]) == 2 and min(data["memory_bandwidth_gb_s"]) > 0.1
    assert len(data["compute_tflops"]["float32"]) == 2
    assert "numpy" in data["params"]["libraries"]["float32"]
    with pytest.raises(SystemExit):
        limits_main(["--dtypes", "float64"])


def test_a_run_probe_saves_before_and_after_in_one_record(tmp_path) -> None:
    venv = Path(sys.prefix)  # this suite's venv: numpy, as a cell's has
    assert probe_python([tmp_path / "no-venv", venv]) == venv / "bin" / "python"
    probe = RunProbe("20261207T230000", [venv], tmp_path, log=lambda _: None, readings=2)
    probe.before()
    path = probe.after()
    record = load_all(tmp_path)["20261207T230000"]
    assert path == tmp_path / "limits-20261207T230000.json"
    assert len(record.before.memory_bandwidth_gb_s) == 2 and len(record.after.memory_bandwidth_gb_s) == 2
    nothing = RunProbe("r", [tmp_path], tmp_path / "x", log=lambda _: None)
    assert nothing.before() is None and "no venv of the run has numpy" in nothing.limits.problem


def shape_row(folder: Path, name: str, decode: float, run: str) -> None:
    bench = shape_bench(decode, 100 * 2**20)
    bench["run"] = run
    bench["metrics"].append({"name": "memory_bandwidth_gb_s", "unit": "GB/s", "better": "higher",
                             "params": {"access": "read", "device": "cpu"},
                             "samples": [20.0, 21.0], "stats": summarize([20.0, 21.0])})
    write_atomic(folder / f"{name}.json", cell(name, "numpy2", "generation",
                                                passing(bench)).to_json())


def test_a_real_shape_table_divides_by_its_runs_limit_and_splits_by_run(tmp_path) -> None:
    shape = tmp_path / "real-shape" / "smollm2-135m-shape"
    shape_row(shape, "alpha", 100.0, "20261207T230000")
    shape_row(shape, "beta", 50.0, "20261207T230000")
    save(limits("20261207T230000", [40.0], [42.0]), shape)
    runs, problems = load_real_shapes(tmp_path / "real-shape")
    assert problems == [] and len(runs) == 2  # the limits record is not read as a cell
    text = "\n".join(real_shape_section(runs))
    assert ("MBU divides every row by one limit, the run's own limit (run 20261207T230000), the "
            "host's DRAM read at 42.0 GB/s") in text
    # 100 MiB a token × 100 tok/s ÷ 42 GB/s, not ÷ the rows' own 21 GB/s probes
    assert f"{100 * 2**20 * 100 / 42e9:.1%}" in text
    shape_row(shape, "gamma", 70.0, "20261206T100000")  # a row of another run
    runs, _ = load_real_shapes(tmp_path / "real-shape")
    text = "\n".join(real_shape_section(runs))
    assert "#### Run 20261207T230000 (2 rows)" in text and "#### Run 20261206T100000 (1 rows)" in text
    assert "the best read-bandwidth reading of all the rows' probes" in text  # gamma: no record


def test_the_cells_rows_divide_by_their_runs_limit(tmp_path) -> None:
    """THROUGHPUT.md's roofline of the matrix's cells: a row of a run that recorded its limits
    divides by them (50 GB/s), not by its own probe (the record's 25 GB/s), and says so."""
    from pages.render import render

    bench = shape_bench(100.0, 100 * 2**20)
    bench["run"] = "20261207T230000"
    write_atomic(tmp_path / "r" / "gen.json", cell("gen", "numpy2", "generation",
                                                   passing(bench)).to_json())
    save(limits("20261207T230000", [48.0], [50.0]), tmp_path / "r" / "run")
    render([tmp_path / "r"], tmp_path / "out")
    page = (tmp_path / "out" / "THROUGHPUT.md").read_text()
    assert "Run 20261207T230000: 50.0 GB/s, the best of 2 readings before and after" in page
    roofline = next(ln for ln in page.splitlines() if ln.startswith("| `gen`") and "GB/s" in ln)
    assert "50.0 GB/s" in roofline and f"{100 * 2**20 * 100 / 50e9:.1%}" in roofline
    record = json.loads((tmp_path / "r" / "gen.json").read_text())
    assert record["rungs"][-1]["detail"]["roofline"]["bandwidth_gb_s"] == 25.0  # not changed


def test_the_every_cell_tables_split_by_run(tmp_path) -> None:
    """A cell reused from an earlier run keeps its run, and its row is not set against the fresh
    ones: one table per run, the newest first, the runs before run ids last."""
    from pages.render import render

    for name, run in (("alpha", "20261207T230000"), ("beta", "20261206T100000"), ("gamma", "")):
        bench = shape_bench(100.0, 100 * 2**20)
        bench["run"] = run
        write_atomic(tmp_path / "r" / f"{name}.json", cell(name, "numpy2", "generation",
                                                         passing(bench)).to_json())
    render([tmp_path / "r"], tmp_path / "out")
    page = (tmp_path / "out" / "THROUGHPUT.md").read_text()
    heads = [ln for ln in page.splitlines() if ln.startswith("### Run")]
    assert heads == ["### Run 20261207T230000 (1 cells)", "### Run 20261206T100000 (1 cells)",
                     "### Runs before run ids (1 cells)"]
    assert page.index("| `alpha`") < page.index("| `beta`") < page.index("| `gamma`")
