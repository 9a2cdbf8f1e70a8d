"""A cell's page on the site: its verdict, the command that reproduces it, its rungs, its error,
the resolver's fallbacks, its versions, its properties, its figures and its history."""

from __future__ import annotations

from core.details import ConformanceDetail, ResolveDetail
from core.results import CellResult
from pages.headline import NAMES
from pages.html import esc, page, rows_table, strip_refs
from pages.site_history import cell_history

LOG_TAIL = 6000


def cell_page(site, r: CellResult) -> str:
    """The whole page of one cell (`site`: pages/site.Site, its verdicts and history)."""
    cid = r.cell.id
    body = [f"<h1>{site.marks[cid]} {esc(cid)}</h1>",
            f"<p>Verdict: <strong>{esc(NAMES[site.marks[cid]])}</strong> — "
            f"{esc(strip_refs(site.verdicts[cid]))}</p>",
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
    body += [*error_section(r), *resolved_sections(r), *property_sections(r), *figures_section(r),
             "<h2>History</h2>", cell_history(site.history, cid)]
    return page(cid, "\n".join(body), depth=1)


def error_section(r: CellResult) -> list[str]:
    failed = r.first_failure
    if failed is None or failed.error is None:
        return []
    return [f"<h2 id=error>Error ({esc(failed.name)})</h2>",
            f"<p><code>{esc(failed.error.type)}</code>: {esc(failed.error.message)}</p>",
            f"<pre class=error>{esc(failed.error.text[-LOG_TAIL:])}</pre>"]


def resolved_sections(r: CellResult) -> list[str]:
    """The resolver's fallbacks and the resolved versions, the cell's own packages first."""
    body = []
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
    return body


def property_sections(r: CellResult) -> list[str]:
    body = []
    for name, heading in (("conformance", "Conformance"), ("api", "API surface")):
        rung = r.rung(name)
        if rung is not None and isinstance(rung.detail, ConformanceDetail) and rung.detail.properties:
            body += [f"<h2>{heading}</h2>", rows_table(["property", "status", "message"], [
                [esc(p), esc(v.status), esc(v.message or (v.deviation.reason if v.deviation else ""))]
                for p, v in sorted(rung.detail.properties.items())])]
    return body


def figures_section(r: CellResult) -> list[str]:
    bench = r.bench
    if bench is None or not bench.metrics:
        return []
    return [f"<h2>Figures ({esc(bench.fixture)}, {esc(bench.profile)} profile)</h2>",
            rows_table(["metric", "shape", "median", "p99", "CV", "samples"], [
                [esc(m.name), esc(", ".join(f"{k} {v}" for k, v in m.params.items())),
                 f"{m.stats.median:.4g} {esc(m.unit)}", f"{m.stats.p99:.4g}",
                 f"{m.stats.cv:.1%}", str(m.stats.n)] for m in bench.metrics])]
