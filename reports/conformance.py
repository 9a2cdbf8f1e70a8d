"""reports/CONFORMANCE.md: engines x properties, every entry a symbol, every non-pass explained."""

from __future__ import annotations

from core.details import PropertyResult
from core.results import CellResult
from reports.markdown import CAVEAT, FAIL, KINDS, NOT_RUN, PASS, Footnotes, header, table


def conformance_page(results: list[CellResult], problems: list[str]) -> str:
    """Engines x properties: every entry a symbol, every non-pass explained in a footnote."""
    notes = Footnotes()
    lines = header("Conformance", results, problems)
    lines += [f"Legend: {PASS} pass · {CAVEAT} deviation the engine declares (with its reason) · "
              f"{FAIL} fail · {NOT_RUN} not run (skipped as unsupported, or the cell never "
              "reached conformance). Rows are cells (engine · environment), columns are "
              "properties; each property runs on every fixture of the engine. Generated inputs "
              "come from hypothesis with a fixed seed; a failure's footnote holds the shrunk "
              "example.", ""]
    for kind, heading in KINDS:
        cells = [r for r in results if r.cell.kind == kind]
        names = sorted({p for r in cells for p in conformance_of(r)})
        if not cells or not names:
            continue
        rows = [[f"`{r.cell.engine}` · {r.cell.env}",
                 *(property_entry(r, name, notes) for name in names)] for r in cells]
        lines += [f"## {heading}", "", table(rows, ["cell", *(f"`{n}`" for n in names)]), ""]
    if notes.notes:
        lines += ["## Footnotes", "", *notes.render()]
    return "\n".join(lines).rstrip() + "\n"


def property_entry(result: CellResult, name: str, notes: Footnotes,
                   suite: str = "conformance") -> str:
    """A property's symbol in a cell, and a footnote for anything but a pass; `suite` names the
    rung whose record holds it ("conformance", or "api" for the API-surface suite)."""
    cid = result.cell.id
    rung = result.rung(suite)
    if rung is None or rung.status in ("not_run", "not_reached"):
        failed = result.first_failure
        why = (f"not reached: {failed.name} failed (see COMPATIBILITY.md)" if failed
               else f"not run: {rung.reason if rung else f'no {suite} rung'}")
        return f"{NOT_RUN} {notes.ref(why, cid, suite, '')}"
    prop = conformance_of(result, suite).get(name)
    if prop is None:
        return f"{NOT_RUN} {notes.ref('not run in this cell', cid, name, '')}"
    if prop.status == "pass":
        return PASS
    if prop.status == "deviation":
        dev = prop.deviation
        why = f"declared deviation: {dev.reason}" + (f" ({dev.link})" if dev.link else "")
        return f"{CAVEAT} {notes.ref(f'{name}: {why}', cid, name, prop.message)}"
    message = prop.message
    if prop.status == "skip":
        return f"{NOT_RUN} {notes.ref(f'{name}: {message}', cid, name, '')}"
    failing = [case for case, status in prop.cases.items() if status == "fail"]
    cases = f" (failing: {', '.join(failing)})" if len(failing) > 1 else ""
    return f"{FAIL} {notes.ref(f'{name}: {first_line(message)[:200]}{cases}', cid, name, message)}"


def first_line(message: str) -> str:
    """The failure's own words, without pytest's assertion introspection below them."""
    return message.strip().splitlines()[0] if message.strip() else ""


def conformance_of(result: CellResult, suite: str = "conformance") -> dict[str, PropertyResult]:
    """Every property's outcome in the cell (none where the suite did not run)."""
    rung = result.rung(suite)
    return rung.detail.properties if rung is not None and rung.detail is not None else {}
