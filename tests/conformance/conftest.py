"""Conformance suite plumbing: which engine, which fixtures, hypothesis settings, and a JSON
of property outcomes the ladder reads.

Each test function is one property registered in core/properties.py
(test_greedy_determinism -> "greedy_determinism"); a suite whose test functions and
registered properties differ refuses to run. A property runs once per fixture of the
engine and passes when every fixture passes. A failure of a property the engine declares
as a known deviation (Engine.deviations) is recorded as "deviation", not "fail".
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from core.details import ConformanceDetail, DeviationInfo, PropertyResult, to_json
from core.properties import PROPERTIES
from engines import QUANT_ENV, load_engine_class
from fixtures.catalog import locate

HYPOTHESIS_PROFILE = "infermatrix"
RANK = {"skip": 0, "pass": 1, "deviation": 2, "fail": 3}  # a property takes its worst case


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infermatrix", "infermatrix conformance")
    group.addoption("--engine", help="engine id from engines/__init__.py")
    group.addoption("--engine-class", help="module:Class to test instead of a registered engine "
                    "(the suite's own regression tests use deliberately broken engines)")
    group.addoption("--device", default="cpu", help="device to load on (default: cpu)")
    group.addoption("--models", default="", help="comma-separated fixture names to load on")
    group.addoption("--property", action="append", default=[],
                    help="run only this property (repeatable)")
    group.addoption("--hypothesis-budget", type=int, default=10,
                    help="examples per generated-input property (default 10, > 0)")
    group.addoption("--no-shrink", action="store_true",
                    help="report failing examples unshrunk (faster; for the suite's own tests)")
    group.addoption("--conformance-json", type=Path, help="write property outcomes here")


def pytest_configure(config: pytest.Config) -> None:
    budget = config.getoption("--hypothesis-budget")
    if budget <= 0:
        raise pytest.UsageError(f"--hypothesis-budget must be > 0, got {budget}")
    # derandomize: a fixed seed per test, so a run's examples are the same every time
    phases = [Phase.explicit, Phase.reuse, Phase.generate]
    if not config.getoption("--no-shrink"):
        phases.append(Phase.shrink)
    settings.register_profile(HYPOTHESIS_PROFILE, max_examples=budget, derandomize=True,
                              phases=phases,
                              deadline=None, database=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow,
                                                     HealthCheck.filter_too_much,
                                                     HealthCheck.function_scoped_fixture])
    settings.load_profile(HYPOTHESIS_PROFILE)
    config.pluginmanager.register(PropertyRecorder(config), "infermatrix-properties")


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not (config.getoption("--engine") or config.getoption("--engine-class")):
        skip = pytest.mark.skip(reason="runs inside a cell: nox -s 'cell(...)'")
        for item in items:
            item.add_marker(skip)
        return
    names = check_registered(items)
    wanted = config.getoption("--property")
    if wanted:
        for name in wanted:
            if name not in names:
                raise pytest.UsageError(f"Unknown property {name!r}. Valid: {', '.join(sorted(names))}")
        items[:] = [i for i in items if property_name(i) in wanted]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fixture_name" in metafunc.fixturenames:
        names = [n for n in metafunc.config.getoption("--models").split(",") if n]
        metafunc.parametrize("fixture_name", names or ["(none)"], scope="session")


def engine_class(config: pytest.Config) -> type:
    spec = config.getoption("--engine-class")
    if spec:
        module, _, name = spec.partition(":")
        return getattr(importlib.import_module(module), name)
    return load_engine_class(config.getoption("--engine"))


@pytest.fixture(scope="session")
def engine_id(request: pytest.FixtureRequest) -> str:
    return engine_class(request.config).id


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--device")


@pytest.fixture(scope="session")
def model_dir(fixture_name: str) -> Path:
    return locate(fixture_name)


@pytest.fixture(scope="session")
def engine(request: pytest.FixtureRequest, model_dir: Path, device: str):
    """The engine under test, loaded once per fixture, closed at the end."""
    adapter = engine_class(request.config)()
    adapter.load(model_dir, device=device)
    yield adapter
    adapter.close()


@pytest.fixture(scope="session")
def fresh_engine(request: pytest.FixtureRequest, model_dir: Path, device: str):
    """A second instance's first answers, computed once: what any later call must match."""
    from tests.conformance.test_embedding import TEXTS
    from tests.conformance.test_generation import GREEDY, PROMPTS

    cache: dict[str, object] = {}

    def answer(call: str):
        if call not in cache:
            adapter = engine_class(request.config)()
            adapter.load(model_dir, device=device)
            if call == "generate":
                cache[call] = [c.token_ids for c in adapter.generate(PROMPTS, GREEDY)]
            elif call == "logits":
                cache[call] = adapter.next_token_logits(PROMPTS)
            elif call == "embed_raw":
                cache[call] = adapter.embed(list(TEXTS[:2]), normalize=False)
            else:
                cache[call] = adapter.embed(TEXTS)
            adapter.close()
        return cache[call]

    return answer


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
    """Folds test outcomes into one status per property; writes --conformance-json."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
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
                entry.figures[case] = json.loads(value)
        quantization = os.environ.get(QUANT_ENV) or "none"
        deviation = engine_class(self.config).deviations_under(quantization).get(name)
        if status == "fail" and deviation is not None:
            status = "deviation"
            entry.deviation = DeviationInfo(reason=deviation.reason, link=deviation.link)
        if RANK[status] > RANK[entry.status] or (
            status == entry.status != "pass" and not entry.message
        ):
            entry.status = status
            entry.message = "" if status == "pass" else f"[{case}] {self._message(report)}"

    def pytest_sessionfinish(self) -> None:
        out = self.config.getoption("--conformance-json")
        if out:
            detail = ConformanceDetail(properties=self.properties)
            data = {"engine": engine_class(self.config).id, **to_json(detail),
                    "hypothesis": {"max_examples": self.config.getoption("--hypothesis-budget"),
                                   "derandomize": True}}
            Path(out).write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
