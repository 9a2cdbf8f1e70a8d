"""The conformance rung: the engine's suite (tests/conformance/test_<kind>.py) under pytest in
the cell; every property's outcome is the rung's record."""

from __future__ import annotations

from compat.cell import CellRun, RungFailed, run_in_cell
from core.details import ConformanceDetail, read
from core.proc import REPO
from core.results import ErrorInfo, Rung

SUITE = REPO / "tests" / "conformance"


def conformance(run: CellRun) -> Rung:
    """Run the suite; a failing property fails the rung, naming every one that failed."""
    args = [str(SUITE / f"test_{run.cell.engine.kind}.py"), "-q", "-p", "no:cacheprovider",
            "--rootdir", str(REPO), "-c", str(SUITE / "pytest.ini"),
            "--engine", run.cell.engine.id, "--device", run.cell.device,
            "--models", ",".join(run.cell.engine.fixtures),
            "--hypothesis-budget", str(run.options.hypothesis_budget),
            *(arg for name in run.options.properties for arg in ("--property", name))]
    done = run_in_cell(run, "conformance", "pytest", args, out_flag="--conformance-json")
    if done.record is None or done.tool.returncode not in (0, 1):
        message = f"pytest exited with status {done.tool.returncode} before reporting properties"
        raise RungFailed(ErrorInfo.from_message("ConformanceCrash", message, done.tool.output))
    detail = read(ConformanceDetail, {"properties": done.record["properties"]})
    properties = detail.properties
    if not properties:
        error = ErrorInfo.from_message("ConformanceCrash", "no property was collected",
                                       done.tool.output)
        return Rung("conformance", "fail", error=error, detail=detail)
    failed = sorted(name for name, p in properties.items() if p.status == "fail")
    if failed:
        message = f"{len(failed)} of {len(properties)} properties failed: {', '.join(failed)}"
        text = "\n\n".join(f"{n}: {properties[n].message}" for n in failed)
        error = ErrorInfo(type="ConformanceFailure", message=message,
                          signature=f"ConformanceFailure: {', '.join(failed)}", text=text)
        return Rung("conformance", "fail", error=error, detail=detail)
    return Rung("conformance", "pass", detail=detail)
