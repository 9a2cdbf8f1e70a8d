"""The static site (`nox -s site`): the same results and history as the Markdown pages, as pages
people look at. No server and nothing fetched: it works opened from disk, and CI publishes it to
GitHub Pages.

    python -m pages.site [RESULTS ...] [--reports reports/] [--out reports/site]
                           [--matrix compat/matrix.toml] [--base-url https://OWNER.github.io/REPO]

- index.html: the matrix (cells × verdict), filters by engine, kind, axis, verdict and device,
  the undeclared failures on top;
- cells/<id>.html: a cell's verdict and rung timings, the full error and log tail, the resolver's
  fallbacks, the resolved versions (the lock to download), conformance property by property,
  its figures, its history, and the command that reproduces it;
- history.html: every cell's verdicts run by run (when it broke, which versions moved), and each
  engine's figures over runs with their noise bands, changes beyond noise flagged as
  `--compare` flags them;
- the Markdown pages (throughput, serving, quantization, conformance, engines, compatibility) as
  HTML with their plots, every table sortable;
- badges/<id>.json: a shields.io endpoint per cell, and badges.html with the snippet to paste.

RESULTS: folders of cell result files (results/, CI artifacts) or merged results.json files; by
default the committed reports/results.json, what the published reports were made from.

The JavaScript (pages/site_assets/site.js) is ours and small: filters and sorting need no
library, and a page that fetches nothing cannot break offline.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import sys
from pathlib import Path

from bench.compare import NOISE_K
from compat.matrix import Matrix
from core.details import BenchDetail, ConformanceDetail, ResolveDetail
from core.results import CellResult, load_results
from pages.docs_site import write_docs
from pages.headline import NAMES, ORDER, failure_line, marks_of
from pages.history import HISTORY, MARKS, VERDICTS, changes, read_history, results_of, timeline
from pages.markdown import Footnotes
from pages.verdicts import foreign, key_versions, verdict

ASSETS = Path(__file__).parent / "site_assets"
PAGES = {"THROUGHPUT.md": ("throughput.html", "Throughput"), "SERVING.md": ("serving.html", "Serving"),
         "QUANTIZATION.md": ("quantization.html", "Quantization"),
         "CONFORMANCE.md": ("conformance.html", "Conformance"), "ENGINES.md": ("engines.html", "Engines"),
         "COMPATIBILITY.md": ("compatibility.html", "Compatibility (full)")}
TREND_FIGURES = ("decode_tokens_per_s", "sentences_per_s")
BADGE_COLORS = {"pass": "brightgreen", "caveat": "yellow", "fail": "red", "known": "lightgrey",
                "not run": "inactive"}
LOG_TAIL = 6000


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def slug(word: str) -> str:
    return word.replace(" ", "-")


def page(title: str, body: str, *, depth: int = 0, here: str = "") -> str:
    """A whole page: the header with the site's navigation, then `body`."""
    up = "../" * depth
    nav = [("index.html", "Matrix"), ("history.html", "History"),
           *[(name, label) for name, label in PAGES.values()], ("badges.html", "Badges"),
           ("docs/index.html", "Docs")]
    links = " ".join(f'<a href="{up}{href}"{" class=here" if href == here else ""}>{esc(label)}</a>'
                     for href, label in nav)
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)} · infermatrix</title>"
            f"<link rel=stylesheet href='{up}assets/site.css'>"
            f"<script src='{up}assets/site.js'></script></head>\n"
            f"<body><header><strong>infermatrix</strong> · {links}</header>\n<main>\n{body}\n</main>"
            f"</body></html>\n")


def rows_table(head: list[str], rows: list[list[str]], attrs: list[str] | None = None) -> str:
    """An HTML table of already-escaped cells; `attrs` per row (data-* for the filters)."""
    out = ["<table><thead><tr>", *(f"<th>{h}</th>" for h in head), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        extra = f" {attrs[i]}" if attrs else ""
        out.append(f"<tr{extra}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


class Site:
    """Everything the pages are made of, read once."""

    def __init__(self, results: list[CellResult], history: list[dict], matrix: Matrix | None,
                 reports: Path, base_url: str = "") -> None:
        self.results = sorted(results, key=lambda r: (r.cell.kind, r.cell.engine, r.cell.id))
        self.history = history
        self.matrix = matrix
        self.reports = reports
        self.base_url = base_url.rstrip("/")
        notes = Footnotes()
        self.verdicts = {r.cell.id: verdict(r, notes, matrix) for r in self.results}
        self.marks = marks_of(self.results, matrix)

    def word(self, cell_id: str) -> str:
        return VERDICTS[self.marks[cell_id]]

    # -- the matrix ------------------------------------------------------------------------
    def index(self, banner: str = "") -> str:
        counts = {m: sum(1 for v in self.marks.values() if v == m) for m in ORDER}
        summary = " · ".join(f"{counts[m]} {m} {NAMES[m]}" for m in ORDER if counts[m])
        failing = [r for r in self.results if self.marks[r.cell.id] == "❌"]
        body = [f"<h1>Compatibility matrix</h1><p class=live>{esc(banner)}</p>" if banner else
                "<h1>Compatibility matrix</h1>", f"<p>{len(self.results)} cells: {esc(summary)}.</p>"]
        if failing:
            body += ["<h2>Undeclared failures</h2><ul>"]
            body += [f"<li><a href='cells/{esc(r.cell.id)}.html'>{esc(r.cell.id)}</a>: "
                     f"{esc(failure_line(r))}</li>" for r in failing]
            body += ["</ul>"]
        options = {
            "engine": sorted({r.cell.engine for r in self.results}),
            "kind": sorted({r.cell.kind for r in self.results}),
            "axis": sorted({f"{k}={v}" for r in self.results for k, v in r.cell.axes.items()}),
            "verdict": [VERDICTS[m] for m in ORDER if counts[m]],
            "device": sorted({r.cell.device for r in self.results}),
        }
        selects = "".join(
            f"<label>{name} <select data-filter={name} id=filter-{name}><option value=''>all</option>"
            + "".join(f"<option>{esc(v)}</option>" for v in values) + "</select></label>"
            for name, values in options.items())
        body += [f"<div class=filters>{selects} <button id=reset>show all</button> "
                 f"<span><span id=shown>{len(self.results)}</span> shown</span></div>",
                 "<p>Legend: ✅ pass · ⚠️ pass with a caveat (a declared deviation) · ❌ an "
                 "undeclared failure · ⛔ a known incompatibility (declared in the matrix) · ➖ not run "
                 "(its reason on the cell's page).</p>"]
        rows, attrs = [], []
        for r in self.results:
            word = self.word(r.cell.id)
            rows.append([f"{self.marks[r.cell.id]}", f"<a href='cells/{esc(r.cell.id)}.html'>"
                         f"{esc(r.cell.id)}</a>", esc(r.cell.engine), esc(r.cell.kind),
                         esc(r.cell.env), esc(r.cell.device), esc(failure_line(r) or "–"),
                         esc(key_versions(r)), esc((r.reused_at or r.finished_at)[:16])])
            axes = " ".join(f"{k}={v}" for k, v in r.cell.axes.items())
            attrs.append(f"data-cell='{esc(r.cell.id)}' data-engine='{esc(r.cell.engine)}' "
                         f"data-kind='{esc(r.cell.kind)}' data-axis='{esc(axes)}' "
                         f"data-verdict='{esc(word)}' data-device='{esc(r.cell.device)}' "
                         f"class='v-{slug(word)}'")
        body.append(rows_table(["", "cell", "engine", "kind", "environment", "device",
                                "first failing rung: signature", "versions", "ran"], rows, attrs))
        return page("Matrix", "\n".join(body), here="index.html")

    # -- one cell ----------------------------------------------------------------------------
    def cell_page(self, r: CellResult) -> str:
        cid = r.cell.id
        body = [f"<h1>{self.marks[cid]} {esc(cid)}</h1>",
                f"<p>Verdict: <strong>{esc(NAMES[self.marks[cid]])}</strong> — "
                f"{esc(strip_refs(self.verdicts[cid]))}</p>",
                f"<p>{esc(r.cell.engine)} ({esc(r.cell.kind)}), environment {esc(r.cell.env)}, "
                f"device {esc(r.cell.device)}, Python {esc(r.cell.python)}; ran "
                f"{esc(r.finished_at)}{' · reused ' + esc(r.reused_at) if r.reused_at else ''}.</p>",
                "<h2>Reproduce</h2>",
                f"<pre>nox -s \"cell({esc(cid)})\" -- --from-lock results/{esc(cid)}.json</pre>"]
        if r.lock:
            body.append(f"<p>The resolved lock: <a href='{esc(cid)}.lock.txt'>{esc(cid)}.lock.txt</a> "
                        "(<code>uv pip sync</code> re-creates the environment).</p>")
        body += ["<h2>Rungs</h2>", rows_table(
            ["rung", "status", "seconds", "reason", "signature"],
            [[esc(g.name), esc(g.status), f"{g.duration_s:.1f}", esc(g.reason),
              esc(g.error.signature if g.error else "")] for g in r.rungs])]
        failed = r.first_failure
        if failed is not None and failed.error is not None:
            body += [f"<h2 id=error>Error ({esc(failed.name)})</h2>",
                     f"<p><code>{esc(failed.error.type)}</code>: {esc(failed.error.message)}</p>",
                     f"<pre class=error>{esc(failed.error.text[-LOG_TAIL:])}</pre>"]
        resolve = r.rung("resolve")
        detail = resolve.detail if resolve is not None else None
        if isinstance(detail, ResolveDetail) and detail.fallbacks:
            body += ["<h2>The resolver's fallbacks</h2>", rows_table(
                ["package", "newest", "resolved", "why"],
                [[esc(f.package), esc(f.newest), esc(f.resolved), esc(f.why)]
                 for f in detail.fallbacks])]
        versions = r.versions
        if versions:
            key = [p for p in r.cell.key_packages if p in versions]
            rest = sorted(set(versions) - set(key))
            body += ["<h2>Resolved versions</h2>", rows_table(
                ["package", "version"], [[f"<strong>{esc(p)}</strong>", esc(versions[p])] for p in key]
                + [[esc(p), esc(versions[p])] for p in rest])]
        for name in ("conformance", "api"):
            rung = r.rung(name)
            if rung is not None and isinstance(rung.detail, ConformanceDetail) and rung.detail.properties:
                body += [f"<h2>{'Conformance' if name == 'conformance' else 'API surface'}</h2>",
                         rows_table(["property", "status", "message"], [
                             [esc(p), esc(v.status), esc(v.message or (v.deviation.reason
                                                                      if v.deviation else ""))]
                             for p, v in sorted(rung.detail.properties.items())])]
        bench = r.rung("bench")
        if bench is not None and isinstance(bench.detail, BenchDetail) and bench.detail.metrics:
            body += [f"<h2>Figures ({esc(bench.detail.fixture)}, {esc(bench.detail.profile)} profile)</h2>",
                     rows_table(["metric", "shape", "median", "p99", "CV", "samples"], [
                         [esc(m.name), esc(", ".join(f"{k} {v}" for k, v in m.params.items())),
                          f"{m.stats.median:.4g} {esc(m.unit)}", f"{m.stats.p99:.4g}",
                          f"{m.stats.cv:.1%}", str(m.stats.n)] for m in bench.detail.metrics])]
        body += ["<h2>History</h2>", self.cell_history(cid)]
        return page(cid, "\n".join(body), depth=1)

    def cell_history(self, cid: str) -> str:
        lines = timeline(self.history, cid)
        if not lines:
            return "<p>No run of this cell in the history yet.</p>"
        marks = "".join(f"<span class='v-{slug(e['verdict'])}' title='{esc(e['run'])}: "
                        f"{esc(e['verdict'])} {esc(e['signature'])}'>{MARKS[e['verdict']]}</span>"
                        for e in lines)
        out = [f"<p class=timeline>{marks}</p><p>{len(lines)} run(s), from {esc(lines[0]['run'][:10])} "
               f"to {esc(lines[-1]['run'][:10])}.</p>"]
        moved = changes(self.history, cid)
        if moved:
            out.append(rows_table(["run", "verdict", "signature", "versions that moved"], [
                [esc(c["run"][:16]), f"{MARKS[c['from']]} → {MARKS[c['to']]}", esc(c["signature"]),
                 esc(", ".join(f"{p} {a or '–'} → {b}" for p, (a, b) in c["moved"].items()) or
                     "none of the cell's packages (the change is in infermatrix or the matrix)")]
                for c in moved]))
        else:
            out.append("<p>The verdict has not changed in the history.</p>")
        return "\n".join(out)

    # -- history ---------------------------------------------------------------------------
    def history_page(self) -> str:
        runs = sorted({e["run"] for e in self.history})
        body = ["<h1>History</h1>",
                f"<p>{len(self.history)} line(s) of reports/{HISTORY}, {len(runs)} run(s)"
                + (f", {esc(runs[0][:10])} to {esc(runs[-1][:10])}" if runs else "") + ".</p>"]
        cells = sorted({e["cell"] for e in self.history})
        changed = [(c, x) for c in cells for x in changes(self.history, c)]
        body.append("<h2>Verdicts that changed</h2>")
        body.append(rows_table(["run", "cell", "verdict", "first failing rung: signature",
                                "versions that moved"], [
            [esc(x["run"][:16]), self.cell_link(c), f"{MARKS[x['from']]} → {MARKS[x['to']]}",
             esc(f"{x['rung']}: {x['signature']}" if x["rung"] else "–"),
             esc(", ".join(f"{p} {a or '–'} → {b}" for p, (a, b) in x["moved"].items()) or "–")]
            for c, x in sorted(changed, key=lambda cx: cx[1]["run"], reverse=True)])
            if changed else "<p>No cell's verdict changed.</p>")
        body.append("<h2>Every cell, run by run</h2><p class=timeline>Oldest on the left; hover a "
                    "mark for its run and signature.</p>")
        body.append(rows_table(["cell", "runs"], [
            [self.cell_link(c), "<span class=timeline>" + "".join(
                f"<span class='v-{slug(e['verdict'])}' title='{esc(e['run'])}: {esc(e['verdict'])} "
                f"{esc(e['signature'])}'>{MARKS[e['verdict']]}</span>"
                for e in timeline(self.history, c)) + "</span>"] for c in cells]))
        body.append("<h2>Figures over runs</h2><p>Median per run with its noise band (± "
                    f"{NOISE_K:g} standard deviations of that run's samples); a change from one run "
                    "to the next beyond both runs' bands is flagged, as <code>nox -s bench -- "
                    "--compare</code> flags it.</p>")
        for figure in TREND_FIGURES:
            for cell in cells:
                points = [(e["run"], e["figures"][figure]) for e in timeline(self.history, cell)
                          if figure in e["figures"]]
                if len(points) >= 2:
                    body.append(trend(cell, figure, points))
        return page("History", "\n".join(body), here="history.html")

    def cell_link(self, cid: str) -> str:
        known = {r.cell.id for r in self.results}
        return f"<a href='cells/{esc(cid)}.html'>{esc(cid)}</a>" if cid in known else esc(cid)

    # -- badges ----------------------------------------------------------------------------
    def badges(self) -> tuple[dict[str, dict], str]:
        files = {r.cell.id: {"schemaVersion": 1, "label": f"{r.cell.engine} {r.cell.env}",
                             "message": self.word(r.cell.id),
                             "color": BADGE_COLORS[self.word(r.cell.id)]} for r in self.results}
        base = self.base_url or "https://OWNER.github.io/REPO"
        rows = [[self.cell_link(cid), esc(data["message"]),
                 f"<input class=badge-snippet readonly value='{esc(snippet(base, cid, data))}'>"]
                for cid, data in files.items()]
        body = ["<h1>Badges</h1>", "<p>A <a href='https://shields.io/badges/endpoint-badge'>shields.io "
                "endpoint</a> per cell, updated by every published run. Paste the snippet into a "
                "README" + ("" if self.base_url else " (with this site's address for OWNER/REPO)")
                + ".</p>", rows_table(["cell", "now", "Markdown"], rows)]
        return files, page("Badges", "\n".join(body), here="badges.html")


def snippet(base: str, cid: str, data: dict) -> str:
    return (f"[![{data['label']}](https://img.shields.io/endpoint?url={base}/badges/{cid}.json)]"
            f"({base}/cells/{cid}.html)")


def strip_refs(text: str) -> str:
    """A verdict's text without its Markdown footnote references."""
    return re.sub(r"\[\^\d+\]", "", text).replace("`", "").strip()


def trend(cell: str, figure: str, points: list[tuple[str, dict]], width: int = 520,
          height: int = 120) -> str:
    """An inline SVG: the medians over runs, the noise band around them, flagged jumps."""
    medians = [p["median"] for _, p in points]
    bands = [NOISE_K * p["cv"] * p["median"] for _, p in points]
    low = min(m - b for m, b in zip(medians, bands))
    high = max(m + b for m, b in zip(medians, bands))
    span = (high - low) or 1.0

    def x(i: int) -> float:
        return 10 + i * (width - 20) / max(1, len(points) - 1)

    def y(v: float) -> float:
        return height - 10 - (v - low) * (height - 20) / span

    upper = " ".join(f"{x(i):.1f},{y(m + b):.1f}" for i, (m, b) in enumerate(zip(medians, bands)))
    lower = " ".join(f"{x(i):.1f},{y(m - b):.1f}" for i, (m, b) in
                     reversed(list(enumerate(zip(medians, bands)))))
    line = " ".join(f"{x(i):.1f},{y(m):.1f}" for i, m in enumerate(medians))
    flags = [i for i in range(1, len(points))
             if abs(medians[i] - medians[i - 1]) > max(bands[i], bands[i - 1])]
    dots = "".join(f"<circle cx='{x(i):.1f}' cy='{y(m):.1f}' r='{4 if i in flags else 2.5}' "
                   f"fill='{'#cf222e' if i in flags else '#0969da'}'><title>{esc(points[i][0])}: "
                   f"{m:,.4g} ± {bands[i]:,.3g}</title></circle>" for i, m in enumerate(medians))
    unit = points[-1][1].get("unit", "")
    note = (f" <span class=flag>changed beyond noise at {', '.join(points[i][0][:10] for i in flags)}"
            "</span>") if flags else ""
    return (f"<div class=trend><p>{esc(cell)} · {esc(figure)} ({esc(unit)}): last "
            f"{medians[-1]:,.4g}, range {min(medians):,.4g}–{max(medians):,.4g}{note}</p>"
            f"<svg width={width} height={height} role=img aria-label='{esc(cell)} {esc(figure)}'>"
            f"<polygon points='{upper} {lower}' fill='#0969da22' stroke='none'/>"
            f"<polyline points='{line}' fill='none' stroke='#0969da' stroke-width='1.5'/>{dots}"
            "</svg></div>")


def markdown_page(source: Path, title: str, here: str) -> str:
    """A report page converted from its Markdown, its links to other pages made the site's."""
    import markdown

    text = source.read_text(encoding="utf-8")
    for name, (target, _) in PAGES.items():
        text = text.replace(f"]({name}", f"]({target}")
    body = markdown.markdown(text, extensions=["tables", "fenced_code", "footnotes", "md_in_html"])
    return page(title, body, here=here)


def read_sources(sources: list[Path]) -> list[CellResult]:
    """Cell results from folders of result files and from merged results.json files."""
    results = []
    for source in sources:
        if source.is_dir():
            results += load_results(sorted(source.glob("*.json")))[0]
        else:
            results += results_of(json.loads(source.read_text(encoding="utf-8")).get("cells", []))[0]
    return results


def build(sources: list[Path], reports: Path, site_dir: Path, matrix: Matrix | None = None,
          base_url: str = "", *, banner: str = "") -> Path:
    """Write the site into `site_dir`, replacing what was there only once the new one is whole (a
    reader during a run's re-renders never finds it half written); return its index page.
    `banner`: a line the matrix page opens with (a run under way)."""
    results, _ = foreign(read_sources(sources), matrix)
    history, _ = read_history(reports / HISTORY)
    site = Site(results, history, matrix, reports, base_url)
    out = site_dir.with_name(f".{site_dir.name}-new")
    shutil.rmtree(out, ignore_errors=True)
    write_site(site, reports, out, banner)
    old = site_dir.with_name(f".{site_dir.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if site_dir.exists():
        os.replace(site_dir, old)
    os.replace(out, site_dir)
    shutil.rmtree(old, ignore_errors=True)
    return site_dir / "index.html"


def write_site(site: Site, reports: Path, out: Path, banner: str) -> None:
    (out / "cells").mkdir(parents=True)
    (out / "badges").mkdir()
    shutil.copytree(ASSETS, out / "assets")
    (out / "index.html").write_text(site.index(banner), encoding="utf-8")
    (out / "history.html").write_text(site.history_page(), encoding="utf-8")
    for r in site.results:
        (out / "cells" / f"{r.cell.id}.html").write_text(site.cell_page(r), encoding="utf-8")
        if r.lock:
            (out / "cells" / f"{r.cell.id}.lock.txt").write_text(r.lock, encoding="utf-8")
    files, badges_page = site.badges()
    for cid, data in files.items():
        (out / "badges" / f"{cid}.json").write_text(json.dumps(data) + "\n", encoding="utf-8")
    (out / "badges.html").write_text(badges_page, encoding="utf-8")
    for name, (target, title) in PAGES.items():
        source = reports / name
        text = markdown_page(source, title, target) if source.is_file() else \
            page(title, f"<h1>{esc(title)}</h1><p>No run has written {esc(name)} yet.</p>", here=target)
        (out / target).write_text(text, encoding="utf-8")
    for image in reports.glob("*.png"):
        shutil.copy2(image, out / image.name)
    write_docs(out, {name: target for name, (target, _) in PAGES.items()},
               lambda title, body: page(title, body, depth=1, here="docs/index.html"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pages.site", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="*", type=Path, default=[Path("reports/results.json")],
                        help="result folders or merged results.json files (default: "
                             "reports/results.json)")
    parser.add_argument("--reports", type=Path, default=Path("reports"),
                        help="the Markdown pages, plots and history.jsonl (default: reports/)")
    parser.add_argument("--out", type=Path, default=Path("reports/site"))
    parser.add_argument("--matrix", type=Path, help="matrix whose [[known]] entries apply")
    parser.add_argument("--base-url", default="", help="where the site is published (for the "
                        "badge snippets), e.g. https://OWNER.github.io/REPO")
    args = parser.parse_args(argv)
    for source in args.results:
        if not source.exists():
            parser.error(f"no results at {str(source)!r}: give a results folder or a results.json")
    from compat.matrix import load as load_matrix

    index = build(args.results, args.reports, args.out,
                  load_matrix(args.matrix) if args.matrix else None, args.base_url)
    print(f"site: {index.resolve().as_uri()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
