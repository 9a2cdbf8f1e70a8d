"""Conformance suite plumbing: which engine, which fixtures, and a JSON of properties.

Each test function is one named property (test_greedy_determinism ->
"greedy_determinism"). It runs once per fixture of the engine; the property
passes when every fixture passes. The ladder reads --conformance-json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines import load_engine_class
from fixtures.catalog import locate


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infermatrix", "infermatrix conformance")
    group.addoption("--engine", help="engine id from engines/__init__.py")
    group.addoption("--device", default="cpu", help="device to load on (default: cpu)")
    group.addoption("--models", default="", help="comma-separated fixture names to load the engine on")
    group.addoption("--conformance-json", type=Path, help="write property outcomes here")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(PropertyRecorder(config), "infermatrix-properties")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--engine"):
        skip = pytest.mark.skip(reason="the conformance suite runs inside a cell: nox -s 'cell(...)'")
        for item in items:
            item.add_marker(skip)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fixture_name" in metafunc.fixturenames:
        names = [n for n in metafunc.config.getoption("--models").split(",") if n]
        metafunc.parametrize("fixture_name", names or ["(none)"], scope="session")


@pytest.fixture(scope="session")
def engine_id(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--engine")


@pytest.fixture(scope="session")
def model_dir(fixture_name: str) -> Path:
    return locate(fixture_name)


@pytest.fixture(scope="session")
def engine(engine_id: str, model_dir: Path, request: pytest.FixtureRequest):
    """The engine under test, loaded once per fixture, closed at the end."""
    adapter = load_engine_class(engine_id)()
    adapter.load(model_dir, device=request.config.getoption("--device"))
    yield adapter
    adapter.close()


def requires(engine, capability: str) -> None:
    """Skip the calling property when the engine declares `capability` unsupported."""
    if not getattr(engine.capabilities, capability):
        pytest.skip(f"{engine.id} declares no {capability} support")


RANK = {"skip": 0, "pass": 1, "fail": 2}  # a property takes its worst case


class PropertyRecorder:
    """Folds test outcomes into one status per property; writes --conformance-json."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.properties: dict[str, dict] = {}

    @staticmethod
    def _message(report: pytest.TestReport) -> str:
        if report.skipped and isinstance(report.longrepr, tuple):
            return str(report.longrepr[2]).removeprefix("Skipped: ")
        crash = getattr(report.longrepr, "reprcrash", None)
        return crash.message if crash is not None else str(report.longrepr or "")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and not (report.failed or report.skipped):
            return
        name = report.nodeid.split("::")[-1].split("[")[0].removeprefix("test_")
        case = report.nodeid.partition("[")[2].rstrip("]") or "-"
        status = "fail" if report.failed else "skip" if report.skipped else "pass"
        entry = self.properties.setdefault(name, {"status": "skip", "message": "", "cases": {}})
        entry["cases"][case] = status
        if RANK[status] > RANK[entry["status"]] or (
            status == entry["status"] != "pass" and not entry["message"]
        ):
            entry["status"] = status
            entry["message"] = "" if status == "pass" else f"[{case}] {self._message(report)}"

    def pytest_sessionfinish(self) -> None:
        out = self.config.getoption("--conformance-json")
        if out:
            data = {"engine": self.config.getoption("--engine"), "properties": self.properties}
            Path(out).write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
