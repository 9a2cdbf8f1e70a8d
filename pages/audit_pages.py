"""The audit reads the pages: every figure a page cites (pages/sources.py) recomputed from the raw
samples of its record and found in the table cell its render printed it in (a whole figure,
not part of another); a median whose rounds spread past NOISY_CV carries its ⚠️ there. A
figure edited by hand on the page, a record whose samples no longer give the printed figure, a
cited record that is gone, a noisy median shown bare: each a finding (pages/audit.py prints
them with the records' own)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.stats import NOISY_CV, summarize
from pages.sources import SUFFIX, formatted, statistic, table_cells, token

CV_FLAG = "⚠️"


def metric_of(record: dict, figure: dict) -> dict | None:
    """The metric a citation names, at exactly its params, in a record's JSON: the bench rung's,
    or a serving figure's load run's (`load_run`, in the serve_bench rung)."""
    rung_name = "bench" if "load_run" not in figure else "serve_bench"
    rung = next((r for r in record.get("rungs", []) if r.get("name") == rung_name), None)
    detail = (rung or {}).get("detail") or {}
    if "load_run" in figure:
        runs = detail.get("runs", [])
        detail = runs[figure["load_run"]] if figure["load_run"] < len(runs) else {}
    return next((m for m in detail.get("metrics", [])
                 if m.get("name") == figure["metric"] and m.get("params") == figure["params"]),
                None)


def check_figure(figure: dict, records: dict[str, dict | None], folder: Path
                 ) -> tuple[str, float | None]:
    """One citation against its record (its path relative to the page's `folder`): "" where the
    samples give the printed text, else what is wrong; and the metric's CV where it was found."""
    path = figure["record"]
    if path not in records:
        try:
            records[path] = json.loads((folder / path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            records[path] = None
    record = records[path]
    if record is None:
        return f"cites {path}, which cannot be read", None
    metric = metric_of(record, figure)
    if metric is None or not metric.get("samples"):
        return f"cites {figure['metric']} {figure['params']} of {path}, which has no such samples", None
    stats = summarize(metric["samples"])
    want = formatted(statistic(metric["samples"], figure["stat"]) * figure.get("scale", 1.0),
                     figure["format"])
    if want != figure["text"]:
        return (f"{figure['metric']} {figure['stat']} printed {figure['text']!r} where the "
                f"samples of {path} give {want!r}"), stats.cv
    return "", stats.cv


def table_starts(page: str) -> dict[int, int]:
    """Each table row's line number -> the line its table starts on."""
    starts, start = {}, None
    for n, line in enumerate(page.splitlines(), 1):
        start = (start or n) if line.startswith("|") else None
        if start:
            starts[n] = start
    return starts


def record_run(record: dict | None) -> str | None:
    """The run a cell record's bench rung was measured in (None before runs had ids)."""
    rung = next((r for r in (record or {}).get("rungs", []) if r.get("name") == "bench"), None)
    return ((rung or {}).get("detail") or {}).get("run")


def mixed_runs(page: str, figures: list[dict], records: dict[str, dict | None]
               ) -> list[tuple[str, str]]:
    """A table that sets in-process rows of more than one run side by side (a table holds one
    run's rows: pages/runs.py)."""
    starts, runs = table_starts(page), {}
    for figure in figures:
        if "load_run" not in figure and figure["line"] in starts:
            runs.setdefault(starts[figure["line"]], set()).add(record_run(records.get(figure["record"])))
    return [("one_run", f"the table at line {start} sets rows of runs "
                        f"{', '.join(sorted(str(r) for r in held))} side by side")
            for start, held in runs.items() if len(held) > 1]


def mixed_limits(page: str, figures: list[dict]) -> list[tuple[str, str]]:
    """A table whose fractions (MBU) divide by more than one limit on one device: one limit
    down a column."""
    starts, limits = table_starts(page), {}
    for figure in figures:
        if "limit" in figure and figure["line"] in starts:
            key = (starts[figure["line"]], figure["limit"]["device"])
            limits.setdefault(key, set()).add(figure["limit"]["bytes_per_s"])
    return [("one_limit", f"the table at line {start} divides its {device} rows by "
                          f"{len(held)} limits: "
                          f"{', '.join(f'{b / 1e9:.2f} GB/s' for b in sorted(held))}")
            for (start, device), held in limits.items() if len(held) > 1]


def page_findings(sources: Path) -> list[tuple[str, str]]:
    """(check, what) for one page's citations: each recomputed, each found in the table cell its
    render printed it in, each noisy median flagged there; each table's rows of one run, its
    fractions of one limit."""
    data = json.loads(sources.read_text(encoding="utf-8"))
    page_path = sources.with_name(data["page"])
    if not page_path.is_file():
        return [("page", f"{sources.name} cites figures of {data['page']}, which is gone")]
    page = page_path.read_text(encoding="utf-8")
    cells = {(n, i): cell for n, i, cell in table_cells(page)}
    found, records = [], {}
    for figure in data["figures"]:
        wrong, cv = check_figure(figure, records, sources.parent)
        if wrong:
            found.append(("page_figure", wrong))
        cell = cells.get((figure["line"], figure["cell"]), "")
        match = token(figure["text"]).search(cell)
        if match is None:
            found.append(("page_figure", f"line {figure['line']}: {figure['text']!r} "
                          f"({figure['metric']} {figure['stat']} of {figure['record']}) is not "
                          f"in the table cell its render printed it in (it reads "
                          f"{cell.strip()[:40]!r}): edited by hand, or the page is not its "
                          "records'"))
            continue
        rest = cell[match.end():].split("·")[0]
        noisy = cv is not None and cv > NOISY_CV and "scale" not in figure  # a median's own cell
        if figure["stat"] == "median" and noisy and CV_FLAG not in rest:
            found.append(("cv_flag", f"line {figure['line']}: {figure['text']} ({figure['metric']} "
                          f"of {figure['record']}) has CV {cv:.0%} and no {CV_FLAG} beside it"))
    return found + mixed_runs(page, data["figures"], records) + mixed_limits(page, data["figures"])


def pages_findings(folders: list[Path]) -> list[tuple[str, str, str]]:
    """(page, check, what) for every page with citations in the folders."""
    return [(sources.name.removesuffix(SUFFIX) + ".md", check, what)
            for folder in folders if folder.is_dir()
            for sources in sorted(folder.glob(f"*{SUFFIX}"))
            for check, what in page_findings(sources)]
