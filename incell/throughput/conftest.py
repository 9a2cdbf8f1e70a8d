"""Options of the in-cell benchmark session (incell/throughput/test_throughput.py), run by
incell/throughput/run.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.metrics import BenchInputError
from bench.profiles import parse_bench_args
from core.ask import Ask, AskError
from incell.throughput.measured import MEASURED, Measured


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infermatrix-bench", "infermatrix benchmark")
    group.addoption("--ask", help="what to time, as JSON (core/ask.py): the engine, device, "
                    "fixtures (the first is timed) and bench_args (--profile quick|full|real, "
                    "--fixture, the shape options)")


def pytest_configure(config: pytest.Config) -> None:
    """The ask and its profile, validated once, before any test."""
    text = config.getoption("--ask")
    if not text:
        raise pytest.UsageError("the benchmark runs inside a cell: python -m incell.throughput.run --ask ...")
    try:
        ask = Ask.parse(text)
        config.infermatrix_bench = parse_bench_args(ask.bench_args)
    except (AskError, BenchInputError) as exc:
        raise pytest.UsageError(f"--ask: {exc}") from None
    config.infermatrix_ask = ask
    config.infermatrix_profile = config.infermatrix_bench.profile


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    prof = metafunc.config.infermatrix_profile
    if "gen_shape" in metafunc.fixturenames:
        shapes = prof.gen_shapes()
        metafunc.parametrize("gen_shape", shapes, ids=[f"batch{b}-in{n}" for b, n in shapes])
    if "embed_shape" in metafunc.fixturenames:
        shapes = [(b, kind) for b in prof.embed_batches for kind in prof.embed_inputs]
        metafunc.parametrize("embed_shape", shapes, ids=[f"batch{b}-{k}" for b, k in shapes])


@pytest.fixture(scope="session")
def measured(request: pytest.FixtureRequest) -> Measured:
    """Where every test puts what it measured (incell/throughput/run.py reads it when the session ends)."""
    return request.config.stash.setdefault(MEASURED, Measured())


@pytest.fixture(scope="session")
def prof(request: pytest.FixtureRequest):
    return request.config.infermatrix_profile


@pytest.fixture(scope="session")
def model_dir(request: pytest.FixtureRequest) -> Path:
    from fixtures.catalog import locate
    from incell.throughput.run import timed_fixture

    return locate(timed_fixture(request.config.infermatrix_ask, request.config.infermatrix_bench))


@pytest.fixture(scope="session")
def engine(request: pytest.FixtureRequest, model_dir: Path):
    """The engine the figures are timed on: its prefix cache off where it has a switch."""
    from engines import load_engine_class

    adapter = load_engine_class(request.config.infermatrix_ask.engine)()
    started = time.perf_counter()  # a conversion not made yet is in it: the record says which
    adapter.load(model_dir, device=request.config.infermatrix_ask.device, cache_prefixes=False)
    adapter.load_s = time.perf_counter() - started
    yield adapter
    adapter.close()


@pytest.fixture
def as_shipped(request: pytest.FixtureRequest, engine, model_dir: Path):
    """The engine as users get it, prefix cache on: a second instance where `engine` has it
    switched off, else `engine` itself (the cache-hit detector runs on both)."""
    if engine.prefix_cache != "switch":
        yield engine
        return
    adapter = type(engine)()
    adapter.load(model_dir, device=request.config.infermatrix_ask.device)
    yield adapter
    adapter.close()


@pytest.fixture(scope="session")
def prompts(engine):
    """Every prompt of the session new to the engine (incell/prompts.py): cache-cold."""
    from engines.base import Generator
    from incell.prompts import FreshPrompts

    if not isinstance(engine, Generator):
        pytest.skip(f"{engine.id} is not a Generator")
    return FreshPrompts(engine.tokenize)
