"""reports/CONFORMANCE.md: engines x properties, every entry a symbol, every non-pass explained."""

from __future__ import annotations

from core.results import CellResult
from pages.markdown import CAVEAT, FAIL, KINDS, KNOWN, NOT_RUN, PASS, Footnotes, header, table
from pages.verdicts import property_entry


def conformance_page(results: list[CellResult], problems: list[str]) -> str:
    """Engines x properties: every entry a symbol, every non-pass explained in a footnote."""
    notes = Footnotes()
    lines = header("Conformance", results, problems)
    lines += [f"Legend: {PASS} pass · {CAVEAT} deviation the engine declares (with its reason) · "
              f"{FAIL} fail · {KNOWN} a failure compat/matrix.toml declares understood, with its "
              f"upstream reference (the cell climbs on to bench) · {NOT_RUN} not run (skipped as "
              "unsupported, or the cell never reached conformance). Rows are cells (engine · "
              "environment), columns are properties; each property runs on every fixture of the "
              "engine. Generated inputs come from hypothesis with a fixed seed; a failure's "
              "footnote holds the shrunk example.", ""]
    for kind, heading in KINDS:
        cells = [r for r in results if r.cell.kind == kind]
        names = sorted({p for r in cells for p in r.properties()})
        if not cells or not names:
            continue
        rows = [[f"`{r.cell.engine}` · {r.cell.env}",
                 *(property_entry(r, name, notes) for name in names)] for r in cells]
        lines += [f"## {heading}", "", table(rows, ["cell", *(f"`{n}`" for n in names)]), ""]
    if notes.notes:
        lines += ["## Footnotes", "", *notes.render()]
    return "\n".join(lines).rstrip() + "\n"






