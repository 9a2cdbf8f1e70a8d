"""The static site (`nox -s site`): the same results and history as the Markdown pages, as pages
people look at. No server and nothing fetched: it works opened from disk, and CI publishes it to
GitHub Pages.

    python -m pages.site [RESULTS ...] [--reports reports/] [--out reports/site]
                           [--matrix compat/matrix.toml] [--base-url https://OWNER.github.io/REPO]

- index.html: the matrix as users expect it, engines by environments per kind, each square its
  cell's verdict linking to its page; the undeclared failures on top;
- cells.html: every cell in one list, filters by engine, kind, axis, verdict and device;
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
import json
import os
import shutil
import sys
from pathlib import Path

from compat.matrix import Matrix
from core.results import CellResult, load_results
from pages.docs_site import write_docs
from pages.headline import NAMES, ORDER, failure_line, marks_of
from pages.history import HISTORY, VERDICTS, read_history, results_of
from pages.html import PAGES, esc, markdown_html, markdown_page, page, rows_table, slug
from pages.markdown import KINDS, Footnotes
from pages.site_cell import cell_page
from pages.site_history import history_page
from pages.stacks import load_stacks, stack_markdown
from pages.verdicts import foreign, key_versions, verdict

ASSETS = Path(__file__).parent / "site_assets"
LEGEND_HTML = ("Legend: ✅ pass · ⚠️ pass with a caveat (a declared deviation) · ❌ an undeclared "
               "failure · ⛔ a known incompatibility (declared in the matrix) · ➖ not run (its "
               "reason on the cell's page).")
BADGE_COLORS = {"pass": "brightgreen", "caveat": "yellow", "fail": "red", "known": "lightgrey",
                "not run": "inactive"}


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
        """The front page: the grid users expect (engines by environments, as COMPATIBILITY.md
        shows them), each square linking to its cell's page; the undeclared failures above it,
        the list of every cell with its filters one click away (cells.html)."""
        counts = {m: sum(1 for v in self.marks.values() if v == m) for m in ORDER}
        summary = " · ".join(f"{counts[m]} {m} {NAMES[m]}" for m in ORDER if counts[m])
        failing = [r for r in self.results if self.marks[r.cell.id] == "❌"]
        body = [f"<h1>Compatibility matrix</h1><p class=live>{esc(banner)}</p>" if banner else
                "<h1>Compatibility matrix</h1>", f"<p>{len(self.results)} cells: {esc(summary)}. "
                "Every cell in a list, with filters by engine, kind, axis, verdict and device: "
                "<a href='cells.html'>the cells</a>.</p>"]
        if (self.reports / "records" / "stacks").is_dir():
            body += ["<p>Several engines in one environment, and what appears only when they share "
                     "one process: <a href='stacks.html'>the stacks</a>.</p>"]
        if failing:
            body += ["<h2>Undeclared failures</h2><ul>"]
            body += [f"<li><a href='cells/{esc(r.cell.id)}.html'>{esc(r.cell.id)}</a>: "
                     f"{esc(failure_line(r))}</li>" for r in failing]
            body += ["</ul>"]
        body += [f"<p>{LEGEND_HTML} A square links to its cell's page: its error, log, lock and the "
                 "command that reproduces it.</p>", *self.grid()]
        return page("Matrix", "\n".join(body), here="index.html")

    def grid(self) -> list[str]:
        """Per kind of engine, a table of engines by environments, a verdict square each."""
        parts = []
        for kind, heading in KINDS:
            cells = [r for r in self.results if r.cell.kind == kind]
            if not cells:
                continue
            by_square = {(r.cell.engine, r.cell.env): r for r in cells}
            envs = sorted({r.cell.env for r in cells})
            rows = [[esc(engine), *(self.square(by_square.get((engine, env))) for env in envs)]
                    for engine in sorted({r.cell.engine for r in cells})]
            table = rows_table(["engine", *(esc(env) for env in envs)], rows)
            parts += [f"<h2>{esc(heading)}</h2>", table.replace("<table", "<table class=grid", 1)]
        return parts

    def square(self, result: CellResult | None) -> str:
        if result is None:
            return ""
        cid, word = result.cell.id, self.word(result.cell.id)
        why = failure_line(result) or word
        return (f"<a class='square v-{slug(word)}' href='cells/{esc(cid)}.html' data-square='{esc(cid)}' "
                f"title='{esc(cid)}: {esc(why)}'>{self.marks[cid]}</a>")

    def cells(self) -> str:
        """Every cell in one list, the undeclared failures first in the counts, with filters by
        engine, kind, axis, verdict and device (a filtered view is a link)."""
        counts = {m: sum(1 for v in self.marks.values() if v == m) for m in ORDER}
        body = ["<h1>Every cell</h1>", self.filters(counts), f"<p>{LEGEND_HTML}</p>"]
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
        return page("Cells", "\n".join(body), here="cells.html")

    def filters(self, counts: dict[str, int]) -> str:
        """The matrix's filters: engine, kind, axis, verdict, device; and how many rows show."""
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
        return (f"<div class=filters>{selects} <button id=reset>show all</button> "
                f"<span><span id=shown>{len(self.results)}</span> shown</span></div>")

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
    (out / "cells.html").write_text(site.cells(), encoding="utf-8")
    (out / "history.html").write_text(history_page(site.history, site.cell_link), encoding="utf-8")
    for r in site.results:
        (out / "cells" / f"{r.cell.id}.html").write_text(cell_page(site, r), encoding="utf-8")
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
    stacks, _ = load_stacks([reports / "records"])
    if stacks:
        (out / "stacks").mkdir()
        (out / "stacks.html").write_text(page("Stacks", stacks_index(stacks), here="stacks.html"),
                                         encoding="utf-8")
    for view in stacks:
        (out / "stacks" / f"{view.id}.html").write_text(
            markdown_html(stack_markdown(view, site.matrix), view.id, depth=1), encoding="utf-8")
    for image in reports.glob("*.png"):
        shutil.copy2(image, out / image.name)
    write_docs(out, {name: target for name, (target, _) in PAGES.items()},
               lambda title, body: page(title, body, depth=1, here="docs/index.html"))


def stacks_index(stacks: list) -> str:
    """The stacks, a line each: its engines' verdicts in one environment, its page a click away."""
    items = []
    for view in stacks:
        words = ", ".join(f"{m.cell.engine} {failure_line(m) if m.first_failure else 'ok'}"
                          for m in view.members)
        items.append(f"<li><a href='stacks/{esc(view.id)}.html'>{esc(view.id)}</a>: {esc(words)}</li>")
    return ("<h1>Stacks</h1><p>Several engines in one environment, each engine's climb in it and "
            "what appears only when they share one process (docs/stacks.md).</p><ul>"
            + "".join(items) + "</ul>")


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
