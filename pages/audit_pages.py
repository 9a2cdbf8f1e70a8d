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
from pages.sources import SUFFIX, formatted, table_cells, token

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
    want = formatted(getattr(stats, figure["stat"]), figure["format"])
    if want != figure["text"]:
        return (f"{figure['metric']} {figure['stat']} printed {figure['text']!r} where the "
                f"samples of {path} give {want!r}"), stats.cv
    return "", stats.cv


def page_findings(sources: Path) -> list[tuple[str, str]]:
    """(check, what) for one page's citations: each recomputed, each found in the table cell its
    render printed it in, each noisy median flagged there."""
    data = json.loads(sources.read_text(encoding="utf-8"))
    page_path = sources.with_name(data["page"])
    if not page_path.is_file():
        return [("page", f"{sources.name} cites figures of {data['page']}, which is gone")]
    cells = {(n, i): cell for n, i, cell in table_cells(page_path.read_text(encoding="utf-8"))}
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
        if figure["stat"] == "median" and cv is not None and cv > NOISY_CV and CV_FLAG not in rest:
            found.append(("cv_flag", f"line {figure['line']}: {figure['text']} ({figure['metric']} "
                          f"of {figure['record']}) has CV {cv:.0%} and no {CV_FLAG} beside it"))
    return found


def pages_findings(folders: list[Path]) -> list[tuple[str, str, str]]:
    """(page, check, what) for every page with citations in the folders."""
    return [(sources.name.removesuffix(SUFFIX) + ".md", check, what)
            for folder in folders if folder.is_dir()
            for sources in sorted(folder.glob(f"*{SUFFIX}"))
            for check, what in page_findings(sources)]
