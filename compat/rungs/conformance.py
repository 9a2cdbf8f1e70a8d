"""The conformance rungs: the engine's suite (tests/conformance/test_<kind>.py) under pytest in
the cell, and for a server the API-surface suite (test_api.py); every property's outcome is the
rung's record."""

from __future__ import annotations

from compat.cell import CellRun, RungFailed, run_in_cell
from core.details import ConformanceDetail, read
from core.proc import REPO
from core.properties import PROPERTIES
from core.results import ErrorInfo, Rung

SUITE = REPO / "tests" / "conformance"
NO_HTTP_API = "in-process engine: no HTTP API"
"""The api rung's reason in a cell of an in-process engine (the report says nothing of it)."""


def conformance(run: CellRun) -> Rung:
    """Run the engine's suite; a failing property fails the rung, naming every one that failed."""
    return suite(run, "conformance", run.cell.engine.kind)


def api(run: CellRun) -> Rung:
    """Run the API-surface suite against a server; an in-process engine has no HTTP API."""
    if run.cell.engine.transport != "http":
        return Rung("api", "not_run", reason=NO_HTTP_API)
    return suite(run, "api", "api")


def suite(run: CellRun, rung: str, name: str) -> Rung:
    """tests/conformance/test_<name>.py in the cell, its properties the record of `rung`."""
    asked = [prop for prop in run.options.properties if prop in PROPERTIES[name]]
    if run.options.properties and not asked:
        return Rung(rung, "not_run", reason=f"no {name} property asked")
    args = [str(SUITE / f"test_{name}.py"), "-q", "-p", "no:cacheprovider",
            "--rootdir", str(REPO), "-c", str(SUITE / "pytest.ini"),
            "--engine", run.cell.engine.id, "--device", run.cell.device,
            "--models", ",".join(run.cell.fixtures),
            "--hypothesis-budget", str(run.options.hypothesis_budget),
            *(arg for prop in asked for arg in ("--property", prop))]
    done = run_in_cell(run, rung, "pytest", args, out_flag="--conformance-json")
    if done.record is None or done.tool.returncode not in (0, 1):
        message = f"pytest exited with status {done.tool.returncode} before reporting properties"
        raise RungFailed(ErrorInfo.from_message("ConformanceCrash", message, done.tool.output))
    detail = read(ConformanceDetail, {"properties": done.record["properties"]})
    properties = detail.properties
    if not properties:
        error = ErrorInfo.from_message("ConformanceCrash", "no property was collected",
                                       done.tool.output)
        return Rung(rung, "fail", error=error, detail=detail)
    failed = sorted(prop for prop, p in properties.items() if p.status == "fail")
    if failed:
        kind = "ApiDeparture" if rung == "api" else "ConformanceFailure"
        message = f"{len(failed)} of {len(properties)} properties failed: {', '.join(failed)}"
        text = "\n\n".join(f"{n}: {properties[n].message}" for n in failed)
        error = ErrorInfo(type=kind, message=message, signature=f"{kind}: {', '.join(failed)}",
                          text=text)
        return Rung(rung, "fail", error=error, detail=detail)
    return Rung(rung, "pass", detail=detail)
