"""The conformance suites' pytest hooks and fixtures: which engine, which fixtures, hypothesis
settings, and the property recorder (incell/conformance/plumbing.py) whose outcomes the cell's
worker reads, or --conformance-json receives as a rung record when the suite runs alone."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from core.ask import Ask, AskError
from core.properties import TRAINED_MODEL
from engines import QUANT_ENV, SHIPPED, load_engine_class
from fixtures.catalog import TRAINED, locate
from incell.conformance.inputs import GREEDY, PROMPTS, TEXTS
from incell.conformance.plumbing import PropertyRecorder, check_registered, property_name

HYPOTHESIS_PROFILE = "infermatrix"
QUANT_AXIS_TRAINED = {"text_quality"}
"""What a cell of the quant axis (but the shipped GGUF's) runs on the trained model: its quality
there; the other trained-model properties are the default cells' ([trained] cells)."""
ASK = pytest.StashKey["Ask | None"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infermatrix", "infermatrix conformance")
    group.addoption("--ask", help="what to test, as JSON (core/ask.py): the engine (a registered "
                    "id, or module:Class: the suite's own tests use deliberately broken engines), "
                    "device, fixtures (names or folders), properties (default: every one), "
                    "hypothesis_budget (examples per generated-input property, default 10)")
    group.addoption("--no-shrink", action="store_true",
                    help="report failing examples unshrunk (faster; for the suite's own tests)")
    group.addoption("--conformance-json", type=Path, help="write property outcomes here")


def the_ask(config: pytest.Config) -> Ask | None:
    """The --ask given (None: the suite is not running inside a cell)."""
    return config.stash.get(ASK, None)


def pytest_configure(config: pytest.Config) -> None:
    text = config.getoption("--ask")
    try:
        ask = Ask.parse(text) if text else None
    except AskError as exc:
        raise pytest.UsageError(f"--ask: {exc}") from None
    config.stash[ASK] = ask
    budget = ask.hypothesis_budget if ask else 10
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
    recorder = PropertyRecorder(engine_class(config) if ask else None,
                                config.getoption("--conformance-json"))
    config.pluginmanager.register(recorder, "infermatrix-properties")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ask = the_ask(config)
    if ask is None:
        skip = pytest.mark.skip(reason="runs inside a cell: nox -s 'cell(...)'")
        for item in items:
            item.add_marker(skip)
        return
    names = check_registered(items)
    wanted = ask.properties
    if wanted:
        for name in wanted:
            if name not in names:
                raise pytest.UsageError(f"Unknown property {name!r}. Valid: {', '.join(sorted(names))}")
        items[:] = [i for i in items if property_name(i) in wanted]




def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fixture_name" in metafunc.fixturenames:
        ask = the_ask(metafunc.config)
        names = list(ask.fixtures) if ask else []
        # a 135M model would cost each cell minutes on every property: only these run on it
        name = metafunc.function.__name__.removeprefix("test_")
        trained_only = name in TRAINED_MODEL
        chosen = [n for n in names if (n in TRAINED) == trained_only]
        quant = os.environ.get(QUANT_ENV, "")  # set in a cell of the quant axis
        asked = bool(ask and name in ask.properties)
        if trained_only and quant not in ("", SHIPPED) and name not in QUANT_AXIS_TRAINED:
            chosen, why = [], ("held on the trained model by the [trained] default cells; a cell "
                               "of the quant axis measures its text_quality there")
        elif name in QUANT_AXIS_TRAINED and not quant and not asked:
            chosen, why = [], ("measured in the cells of the quant axis (nox -s quant: every "
                               "engine and quantization on the trained model), not again here")
        elif names and not chosen:
            why = ("a property of the trained model: this cell has no trained fixture "
                   "(matrix.toml [trained])" if trained_only else
                   "a random-weights property: this cell has only the trained fixture")
        if names and not chosen:
            metafunc.parametrize("fixture_name", [pytest.param("(none)", marks=pytest.mark.skip(
                reason=why))], scope="session")
            return
        metafunc.parametrize("fixture_name", chosen or ["(none)"], scope="session",
                             ids=[Path(n).name for n in chosen] or None)  # a path: its last part


def engine_class(config: pytest.Config) -> type:
    ask = the_ask(config)
    if ask.engine_class:
        module, _, name = ask.engine_class.partition(":")
        return getattr(importlib.import_module(module), name)
    return load_engine_class(ask.engine)


@pytest.fixture(scope="session")
def engine_id(request: pytest.FixtureRequest) -> str:
    return engine_class(request.config).id


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    return the_ask(request.config).device


@pytest.fixture(scope="session")
def model_dir(fixture_name: str) -> Path:
    """A fixture's folder; a path given instead of a name is taken as is (an endpoint's
    tokenizer folder, incell/endpoint.py)."""
    return Path(fixture_name) if "/" in fixture_name else locate(fixture_name)


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


