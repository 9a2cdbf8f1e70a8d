"""The site's history: a cell's verdicts run by run (on its page), and history.html (the verdicts
that changed, every cell's marks, each headline figure over runs with its noise band)."""

from __future__ import annotations

from collections.abc import Callable

from bench.compare import NOISE_K
from core.bench_details import DECODE_TOKENS_PER_S, SENTENCES_PER_S
from pages.history import HISTORY, MARKS, Entry, Figure, changes, timeline
from pages.html import esc, page, rows_table, slug

TREND_FIGURES = (DECODE_TOKENS_PER_S, SENTENCES_PER_S)


def cell_history(history: list[Entry], cid: str) -> str:
    """A cell's verdicts run by run and the runs where it changed (its page's last section)."""
    lines = timeline(history, cid)
    if not lines:
        return "<p>No run of this cell in the history yet.</p>"
    marks = "".join(f"<span class='v-{slug(e.verdict)}' title='{esc(e.run)}: "
                    f"{esc(e.verdict)} {esc(e.signature)}'>{MARKS[e.verdict]}</span>"
                    for e in lines)
    out = [f"<p class=timeline>{marks}</p><p>{len(lines)} run(s), from {esc(lines[0].run[:10])} "
           f"to {esc(lines[-1].run[:10])}.</p>"]
    moved = changes(history, cid)
    if moved:
        out.append(rows_table(["run", "verdict", "signature", "versions that moved"], [
            [esc(c.run[:16]), f"{MARKS[c.before]} → {MARKS[c.after]}", esc(c.signature),
             esc(", ".join(f"{p} {a or '–'} → {b}" for p, (a, b) in c.moved.items()) or
                 "none of the cell's packages (the change is in infermatrix or the matrix)")]
            for c in moved]))
    else:
        out.append("<p>The verdict has not changed in the history.</p>")
    return "\n".join(out)


def history_page(history: list[Entry], cell_link: Callable[[str], str]) -> str:
    """history.html: the verdicts that changed, every cell run by run, figures over runs."""
    runs = sorted({e.run for e in history})
    body = ["<h1>History</h1>",
            f"<p>{len(history)} line(s) of reports/{HISTORY}, {len(runs)} run(s)"
            + (f", {esc(runs[0][:10])} to {esc(runs[-1][:10])}" if runs else "") + ".</p>"]
    cells = sorted({e.cell for e in history})
    changed = [(c, x) for c in cells for x in changes(history, c)]
    body.append("<h2>Verdicts that changed</h2>")
    body.append(rows_table(["run", "cell", "verdict", "first failing rung: signature",
                            "versions that moved"], [
        [esc(x.run[:16]), cell_link(c), f"{MARKS[x.before]} → {MARKS[x.after]}",
         esc(f"{x.rung}: {x.signature}" if x.rung else "–"),
         esc(", ".join(f"{p} {a or '–'} → {b}" for p, (a, b) in x.moved.items()) or "–")]
        for c, x in sorted(changed, key=lambda cx: cx[1].run, reverse=True)])
        if changed else "<p>No cell's verdict changed.</p>")
    body.append("<h2>Every cell, run by run</h2><p class=timeline>Oldest on the left; hover a "
                "mark for its run and signature.</p>")
    body.append(rows_table(["cell", "runs"], [
        [cell_link(c), "<span class=timeline>" + "".join(
            f"<span class='v-{slug(e.verdict)}' title='{esc(e.run)}: {esc(e.verdict)} "
            f"{esc(e.signature)}'>{MARKS[e.verdict]}</span>"
            for e in timeline(history, c)) + "</span>"] for c in cells]))
    body.append("<h2>Figures over runs</h2><p>Median per run with its noise band (± "
                f"{NOISE_K:g} standard deviations of that run's samples); a change from one run "
                "to the next beyond both runs' bands is flagged, as <code>nox -s bench -- "
                "--compare</code> flags it.</p>")
    for figure in TREND_FIGURES:
        for cell in cells:
            points = [(e.run, e.figures[figure]) for e in timeline(history, cell)
                      if figure in e.figures]
            if len(points) >= 2:
                body.append(trend(cell, figure, points))
    return page("History", "\n".join(body), here="history.html")


def trend(cell: str, figure: str, points: list[tuple[str, Figure]], width: int = 520,
          height: int = 120) -> str:
    """An inline SVG: the medians over runs, the noise band around them, flagged jumps."""
    medians = [p.median for _, p in points]
    bands = [NOISE_K * p.cv * p.median for _, p in points]
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
    unit = points[-1][1].unit
    note = (f" <span class=flag>changed beyond noise at {', '.join(points[i][0][:10] for i in flags)}"
            "</span>") if flags else ""
    return (f"<div class=trend><p>{esc(cell)} · {esc(figure)} ({esc(unit)}): last "
            f"{medians[-1]:,.4g}, range {min(medians):,.4g}–{max(medians):,.4g}{note}</p>"
            f"<svg width={width} height={height} role=img aria-label='{esc(cell)} {esc(figure)}'>"
            f"<polygon points='{upper} {lower}' fill='#0969da22' stroke='none'/>"
            f"<polyline points='{line}' fill='none' stroke='#0969da' stroke-width='1.5'/>{dots}"
            "</svg></div>")
