"""compat/cli.py: options shared by the sessions, and their errors."""

from __future__ import annotations

import pytest

from compat.cli import (
    UsageError,
    bisect_args,
    cell_options,
    property_names,
    report_args,
    resolve_args,
)


def test_exclude_newer_accepts_dates_and_times() -> None:
    assert cell_options(["--exclude-newer", "2025-06-01"]).exclude_newer == "2025-06-01"
    stamp = "2025-06-01T12:00:00Z"
    assert cell_options(["--exclude-newer", stamp]).exclude_newer == stamp


@pytest.mark.parametrize("bad", ["2025-13-01", "yesterday", "2025/06/01"])
def test_exclude_newer_refuses_non_dates(bad: str) -> None:
    with pytest.raises(UsageError, match=rf"{bad!r} is not a date; use YYYY-MM-DD"):
        resolve_args(["--exclude-newer", bad])


def test_from_lock_must_exist(tmp_path) -> None:
    with pytest.raises(UsageError, match="is not a file"):
        cell_options(["--from-lock", str(tmp_path / "missing.json")])


def test_unknown_posargs_meant_for_other_sessions_are_ignored_by_cells() -> None:
    assert cell_options(["results", "--out", "x"]).exclude_newer is None


def test_bisect_needs_package_and_cell() -> None:
    with pytest.raises(UsageError, match="the following arguments are required: cell"):
        bisect_args(["infinity-emb"])
    args = bisect_args(["infinity-emb", "infinity_emb-numpy2", "--good", "0.0.45"])
    assert (args.package, args.cell, args.good) == ("infinity-emb", "infinity_emb-numpy2", "0.0.45")


def test_workers_must_be_positive() -> None:
    with pytest.raises(UsageError, match="must be > 0"):
        resolve_args(["--workers", "0"])


def test_property_names_come_from_the_suite() -> None:
    names = property_names("generation")
    assert {"greedy_determinism", "call_order_independence", "typed_errors"} <= set(names)
    assert len(names) + len(property_names("embedding")) >= 20


def test_unknown_property_and_bad_budget() -> None:
    with pytest.raises(UsageError, match=r"Unknown embedding property 'unit_norms'. "
                                         r"Did you mean 'unit_norm'"):
        cell_options(["--property", "unit_norms"], "embedding")
    with pytest.raises(UsageError, match="must be > 0, got '0'"):
        cell_options(["--hypothesis-budget", "0"])
    options = cell_options(["--property", "unit_norm", "--hypothesis-budget", "3"], "embedding")
    assert options.properties == ("unit_norm",) and options.hypothesis_budget == 3


def test_report_drops_a_run_wide_exclude_newer_with_its_value() -> None:
    assert report_args(["--exclude-newer", "2025-06-01"]) == []
    assert report_args(["results/ci", "--exclude-newer=2025-06-01", "--out", "x"]) == \
        ["results/ci", "--out", "x"]


def test_report_options_check_cuda_and_folders(tmp_path) -> None:
    from compat.cli import report_options

    assert report_options(["--check", "--exclude-newer", "2025-06-01"]).check
    assert report_options(["--cuda", str(tmp_path)]).cuda == tmp_path
    args = report_options([str(tmp_path), "--out", "x", "--title", "CI"])
    assert args.folders == [tmp_path] and str(args.out) == "x" and args.title == "CI"
    with pytest.raises(UsageError, match="FOLDER needs --out DIR"):
        report_options([str(tmp_path)])
    with pytest.raises(UsageError, match="'nowhere' does not exist"):
        report_options(["--cuda", "nowhere"])
    with pytest.raises(UsageError, match="not allowed with argument"):
        report_options(["--check", "--cuda", str(tmp_path)])


def test_serve_bench_takes_its_own_options_and_hands_on_the_rest() -> None:
    from compat.cli import serve_bench_args

    servers = ["llama_server-base", "vllm_server-base"]
    args = serve_bench_args(["--cell", "vllm_server-base", "--users", "1,2", "--fixture",
                             "smollm2-135m-shape", "--chat"], servers)
    assert args.cells == ["vllm_server-base"] and args.fixture == "smollm2-135m-shape"
    assert args.chat and args.load == ["--users", "1,2", "--fixture", "smollm2-135m-shape", "--chat"]
    with pytest.raises(UsageError, match=r"--cell 'vllm_serve' is not a generation server; "
                                         r"valid: llama_server-base, vllm_server-base"):
        serve_bench_args(["--cell", "vllm_serve"], servers)
