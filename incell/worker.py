"""The cell's worker: one process in the cell's venv that climbs import, load, conformance and api,
so torch and the engine are imported once per cell, not once per rung.

    python -m incell.worker --dir DIR --ask '{"engine": "transformers", "device": "cpu"}'

The driver (compat/rungs/worker.py) asks for one rung at a time by writing DIR/<rung>.go (the
rung's Ask, core/ask.py: engine, device, fixtures, and for a suite its name, properties and
hypothesis budget); the worker takes the request (the file goes), climbs the rung and writes
DIR/<rung>.json as soon as it ends: a core.results Rung, typed and versioned, written atomically
(write_rung). Then it waits for the next. DIR/done.go ends it. Every exception is the rung's
failure; a crash that kills the interpreter, or a rung past its limit, is named by the driver,
which also kills the worker's process group, and core/guard.py takes it down if the driver itself dies.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from core.ask import Ask, AskError
from core.details import ConformanceDetail, PropertyResult
from core.results import ErrorInfo, Rung, write_rung

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "incell" / "conformance"
RUNGS = ("import", "load", "conformance", "api")
POLL_S = 0.02


class PropertyCollector:
    """A pytest plugin that hands over the conformance conftest's property outcomes, typed."""

    def __init__(self) -> None:
        self.properties: dict[str, PropertyResult] | None = None

    def pytest_sessionfinish(self, session) -> None:
        recorder = session.config.pluginmanager.get_plugin("infermatrix-properties")
        if recorder is not None:
            self.properties = recorder.properties


def run_suite(rung: str, ask: Ask) -> Rung:
    """incell/conformance/test_<suite>.py under pytest, in this process; its properties the
    rung's record. Judging them (which failures fail the rung) is the driver's."""
    import pytest

    argv = [str(SUITE / f"test_{ask.suite}.py"), "-q", "-p", "no:cacheprovider",
            "--rootdir", str(REPO), "-c", str(SUITE / "pytest.ini"), "--ask", ask.arg()]
    collector = PropertyCollector()
    code = pytest.main(argv, plugins=[collector])
    sys.stdout.flush()
    if collector.properties is None or code not in (0, 1):
        message = f"pytest exited with status {int(code)} before reporting properties"
        return Rung(rung, "fail", error=ErrorInfo.from_message("ConformanceCrash", message))
    return Rung(rung, "pass", detail=ConformanceDetail(properties=collector.properties))


def climb(rung: str, ask: Ask) -> Rung:
    """One rung; whatever it raises is its failure."""
    from incell.probe import probe_import, probe_load

    try:
        if rung == "import":
            return Rung(rung, "pass", detail=probe_import(ask.engine))
        if rung == "load":
            return Rung(rung, "pass", detail=probe_load(ask.engine, list(ask.fixtures), ask.device))
        return run_suite(rung, ask)
    except BaseException as exc:  # every failure is a result; that is this process's job
        return Rung(rung, "fail", error=ErrorInfo.from_exception(exc))


def next_ask(folder: Path) -> tuple[str, str]:
    """Wait for the driver's next request, take it (the file goes): the rung and its Ask's JSON
    ("done" to end)."""
    while True:
        for name in ("done", *RUNGS):
            go = folder / f"{name}.go"
            if go.is_file():
                text = go.read_text(encoding="utf-8")
                go.unlink()
                return name, text
        time.sleep(POLL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m incell.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--ask", required=True, help="the cell's Ask (core/ask.py) as JSON: its "
                        "engine (a registered id, or module:Class) and device; each rung's "
                        "request carries its own")
    args = parser.parse_args(argv)
    try:
        Ask.parse(args.ask)
    except AskError as exc:
        parser.error(str(exc))
    sys.stdout.reconfigure(line_buffering=True)  # a crash keeps what was printed before it
    while True:
        rung, text = next_ask(args.dir)
        if rung == "done":
            return 0
        print(f"infermatrix worker: {rung}", flush=True)
        try:
            outcome = climb(rung, Ask.parse(text))
        except AskError as exc:
            outcome = Rung(rung, "fail", error=ErrorInfo.from_exception(exc))
        write_rung(args.dir / f"{rung}.json", outcome)


if __name__ == "__main__":
    sys.exit(main())
