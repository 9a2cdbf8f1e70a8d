"""The conformance rungs: the engine's suite (incell/conformance/test_<kind>.py) under pytest in
the cell's worker, and for a server the API-surface suite (test_api.py); every property's
outcome is the rung's record, and the failures the engine does not declare fail the rung."""

from __future__ import annotations

from compat.cell import CellRun
from compat.rungs.worker import cell_ask, climb_in_worker
from compat.specs import Known
from core.details import ConformanceDetail, DeviationInfo, PropertyResult
from core.properties import PROPERTIES
from core.results import ErrorInfo, Rung


def conformance(run: CellRun) -> Rung:
    """Run the engine's suite; a failing property fails the rung, naming every one that failed."""
    return suite(run, "conformance", run.cell.engine.kind)


def api(run: CellRun) -> Rung:
    """Run the API-surface suite against a server; an in-process engine has no HTTP API."""
    if run.cell.engine.transport != "http":
        return Rung("api", "not_run", not_applicable=True)
    return suite(run, "api", "api")


def suite(run: CellRun, rung: str, name: str) -> Rung:
    """incell/conformance/test_<name>.py in the cell's worker, its properties the record of `rung`."""
    asked = [prop for prop in run.options.properties if prop in PROPERTIES[name]]
    if run.options.properties and not asked:
        return Rung(rung, "not_run", reason=f"no {name} property asked")
    outcome = climb_in_worker(run, rung, cell_ask(run, suite=name, properties=tuple(asked),
                                                  hypothesis_budget=run.options.hypothesis_budget))
    return judge(outcome, run.cell.known_properties)


def judge(outcome: Rung, known: tuple[Known, ...] = ()) -> Rung:
    """The suite's record as the rung's verdict: no property collected, or a property failed
    (not a declared deviation, nor a failure compat/matrix.toml declares understood), fails it.
    A failure `known` declares is recorded "known" and the rung passes over it, naming it."""
    if outcome.status == "fail" or not isinstance(outcome.detail, ConformanceDetail):
        return outcome
    rung, detail = outcome.name, outcome.detail
    properties = detail.properties
    if not properties:
        error = ErrorInfo.from_message("ConformanceCrash", "no property was collected")
        return Rung(rung, "fail", error=error, detail=detail)
    understood = mark_known(rung, properties, known)
    failed = sorted(prop for prop, p in properties.items() if p.status == "fail")
    if failed:
        kind = "ApiDeparture" if rung == "api" else "ConformanceFailure"
        message = f"{len(failed)} of {len(properties)} properties failed: {', '.join(failed)}"
        text = "\n\n".join(f"{n}: {properties[n].message}" for n in failed)
        error = ErrorInfo(type=kind, message=message, signature=f"{kind}: {', '.join(failed)}",
                          text=text)
        return Rung(rung, "fail", error=error, detail=detail)
    reason = f"known failures (compat/matrix.toml): {', '.join(understood)}" if understood else ""
    return Rung(rung, "pass", reason=reason, detail=detail)


def mark_known(rung: str, properties: dict[str, PropertyResult],
               known: tuple[Known, ...]) -> list[str]:
    """Each failed property a [[known]] entry declares becomes "known", carrying its reason and
    link; the names so marked, sorted."""
    marked = []
    for name, prop in sorted(properties.items()):
        entry = next((k for k in known if prop.status == "fail"
                      and k.matches_property(rung, name, prop.message)), None)
        if entry is not None:
            prop.status, prop.known = "known", DeviationInfo(entry.reason, entry.link)
            marked.append(name)
    return marked
