"""The audit reads the pages: every figure a page cites (pages/sources.py) recomputed from the raw
samples of its record and found on the page, in the page's order among its table rows (a whole
figure, not part of another), where it was printed; a median
whose rounds spread past NOISY_CV carries its ⚠️ there. A figure edited by hand on the page, a
record whose samples no longer give the printed figure, a cited record that is gone, a noisy
median shown bare: each a finding (pages/audit.py prints them with the records' own)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench.stats import NOISY_CV, summarize
from pages.sources import SUFFIX, formatted

CV_FLAG = "⚠️"


def metric_of(record: dict, name: str, params: dict) -> dict | None:
    """The bench rung's metric `name` at exactly `params` in a record's JSON."""
    bench = next((r for r in record.get("rungs", []) if r.get("name") == "bench"), None)
    detail = (bench or {}).get("detail") or {}
    return next((m for m in detail.get("metrics", [])
                 if m.get("name") == name and m.get("params") == params), None)


def check_figure(figure: dict, records: dict[str, dict | None]) -> tuple[str, float | None]:
    """One citation against its record: "" where the samples give the printed text, else what is
    wrong; and the metric's CV where it was found."""
    path = figure["record"]
    if path not in records:
        try:
            records[path] = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            records[path] = None
    record = records[path]
    if record is None:
        return f"cites {path}, which cannot be read", None
    metric = metric_of(record, figure["metric"], figure["params"])
    if metric is None or not metric.get("samples"):
        return f"cites {figure['metric']} {figure['params']} of {path}, which has no such samples", None
    stats = summarize(metric["samples"])
    want = formatted(getattr(stats, figure["stat"]), figure["format"])
    if want != figure["text"]:
        return (f"{figure['metric']} {figure['stat']} printed {figure['text']!r} where the "
                f"samples of {path} give {want!r}"), stats.cv
    return "", stats.cv


def page_findings(sources: Path) -> list[tuple[str, str]]:
    """(check, what) for one page's citations: each recomputed, each found in order on the page,
    each noisy median flagged where it stands."""
    data = json.loads(sources.read_text(encoding="utf-8"))
    page_path = sources.with_name(data["page"])
    if not page_path.is_file():
        return [("page", f"{sources.name} cites figures of {data['page']}, which is gone")]
    page = "\n".join(line for line in page_path.read_text(encoding="utf-8").splitlines()
                     if line.startswith("|"))  # figures are cited in table rows only
    at, found, records = 0, [], {}
    for figure in data["figures"]:
        wrong, cv = check_figure(figure, records)
        if wrong:
            found.append(("page_figure", wrong))
        match = re.compile(rf"(?<![\d.,]){re.escape(figure['text'])}(?![\d.,])").search(page, at)
        where = match.start() if match else -1
        if where < 0:
            found.append(("page_figure", f"{figure['text']!r} ({figure['metric']} "
                          f"{figure['stat']} of {figure['record']}) is not on the page where "
                          "its render put it: edited by hand, or the page is not its records'"))
            continue
        at = where + len(figure["text"])
        cell_rest = page[at:page.find("|", at) if "|" in page[at:] else len(page)]
        if figure["stat"] == "median" and cv is not None and cv > NOISY_CV \
                and CV_FLAG not in cell_rest.split("·")[0]:
            found.append(("cv_flag", f"{figure['text']} ({figure['metric']} of "
                          f"{figure['record']}) has CV {cv:.0%} and no {CV_FLAG} beside it"))
    return found


def pages_findings(folders: list[Path]) -> list[tuple[str, str, str]]:
    """(page, check, what) for every page with citations in the folders."""
    return [(sources.name.removesuffix(SUFFIX) + ".md", check, what)
            for folder in folders if folder.is_dir()
            for sources in sorted(folder.glob(f"*{SUFFIX}"))
            for check, what in page_findings(sources)]
