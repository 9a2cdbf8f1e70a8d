"""The conformance suites' plumbing: which test is which property, the property outcomes folded
and recorded (typed, core/details.py), hypothesis's example kept for a footnote, and the skip of a
property an engine declares unsupported.

Each test function is one property registered in core/properties.py
(test_greedy_determinism -> "greedy_determinism"); a suite whose test functions and
registered properties differ refuses to run. A property runs once per fixture of the
engine and passes when every fixture passes. A failure of a property the engine declares
as a known deviation (Engine.deviations) is recorded as "deviation", not "fail".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.details import ConformanceDetail, DeviationInfo, PropertyFigures, PropertyResult
from core.properties import PROPERTIES
from core.records import read
from core.results import Rung, write_rung
from engines import DTYPE_ENV, QUANT_ENV

RANK = {"skip": 0, "pass": 1, "deviation": 2, "fail": 3}  # a property takes its worst case


def property_name(item: pytest.Item) -> str:
    return item.originalname.removeprefix("test_")


def check_registered(items: list[pytest.Item]) -> set[str]:
    """The suite's properties, which must be exactly those core/properties.py registers."""
    kind = items[0].module.__name__.rpartition("test_")[2] if items else ""
    found, registered = {property_name(i) for i in items}, set(PROPERTIES.get(kind, ()))
    if items and found != registered:
        raise pytest.UsageError(
            f"the {kind} suite and core/properties.py differ: not registered "
            f"{sorted(found - registered)}, registered without a test {sorted(registered - found)}")
    return found


EXAMPLE_HEADS = ("Falsifying example", "Failing test case")  # older and newer hypothesis


def hypothesis_example(text: str) -> str:
    """The shrunk example hypothesis printed (fixture objects left out) and its replay line."""
    lines = [line.strip() for line in text.splitlines()]
    start = next((i for i, line in enumerate(lines) if line.startswith(EXAMPLE_HEADS)), None)
    if start is None:
        return ""
    example = []
    for line in lines[start:]:
        if "=<" not in line:  # `engine=<...object at 0x...>` says nothing replayable
            example.append(line)
        if line == ")":
            break
    replay = next((line for line in lines if "@reproduce_failure(" in line), "")
    return " ".join([*example, replay]).strip()


def requires(engine, capability: str) -> None:
    """Skip the calling property when the engine declares `capability` unsupported."""
    if not getattr(engine.capabilities, capability):
        why = engine.unsupported.get(capability)
        pytest.skip(f"{engine.id} declares no {capability} support" + (f": {why}" if why else ""))


class PropertyRecorder:
    """A pytest plugin: folds test outcomes into one status per property (`properties`)."""

    def __init__(self, engine: type | None, out: Path | None = None) -> None:
        self.engine = engine
        self.out = out
        """Where to write the outcomes as a rung record (--conformance-json), if anywhere."""
        self.properties: dict[str, PropertyResult] = {}

    @staticmethod
    def _message(report: pytest.TestReport) -> str:
        if report.skipped and isinstance(report.longrepr, tuple):
            return str(report.longrepr[2]).removeprefix("Skipped: ")
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(report.longrepr or "")
        example = hypothesis_example(message)
        if not example:
            return message
        # hypothesis attaches its example to the error as a note: keep it once, cleaned
        lines = message.splitlines()
        end = next((i for i, line in enumerate(lines) if line.startswith(EXAMPLE_HEADS)), len(lines))
        return " ".join([*lines[:end], "|", example])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and not (report.failed or report.skipped):
            return
        name = report.nodeid.split("::")[-1].split("[")[0].removeprefix("test_")
        case = report.nodeid.partition("[")[2].rstrip("]") or "-"
        status = "fail" if report.failed else "skip" if report.skipped else "pass"
        entry = self.properties.setdefault(name, PropertyResult())
        entry.cases[case] = status
        for key, value in report.user_properties:  # e.g. greedy_parity's "6/6 prompts exact"
            if key == "note":
                entry.notes[case] = value
            elif key == "figures":
                entry.figures[case] = read(PropertyFigures, json.loads(value))
        quantization = os.environ.get(QUANT_ENV) or "none"
        dtype = os.environ.get(DTYPE_ENV) or "float32"
        deviation = (self.engine.deviations_under(quantization, dtype).get(name)
                     if self.engine is not None else None)
        if status == "fail" and deviation is not None:
            status = "deviation"
            entry.deviation = DeviationInfo(reason=deviation.reason, link=deviation.link)
        if RANK[status] > RANK[entry.status] or (
            status == entry.status != "pass" and not entry.message
        ):
            entry.status = status
            entry.message = "" if status == "pass" else f"[{case}] {self._message(report)}"

    def pytest_sessionfinish(self) -> None:
        if self.out is not None:  # the suite run alone (the worker reads .properties in process)
            detail = ConformanceDetail(properties=self.properties)
            write_rung(self.out, Rung("conformance", "pass", detail=detail))
