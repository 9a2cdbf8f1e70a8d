"""Options of the in-cell benchmark session (incell/throughput/test_throughput.py), run by incell/bench.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.profiles import add_shape_options, profile, shape_overrides


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infermatrix-bench", "infermatrix benchmark")
    group.addoption("--engine", help="engine id from engines/__init__.py")
    group.addoption("--fixture", help="fixture to load")
    group.addoption("--device", default="cpu")
    group.addoption("--profile", default="quick", help="quick (every cell) or full (the grid)")
    add_shape_options(group.addoption)


def chosen_profile(config: pytest.Config):
    return profile(config.getoption("--profile"), **shape_overrides(vars(config.option)))


def pytest_configure(config: pytest.Config) -> None:
    config.infermatrix_profile = chosen_profile(config)  # validated once, before any test


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    prof = metafunc.config.infermatrix_profile
    if "gen_shape" in metafunc.fixturenames:
        shapes = prof.gen_shapes()
        metafunc.parametrize("gen_shape", shapes, ids=[f"batch{b}-in{n}" for b, n in shapes])
    if "embed_shape" in metafunc.fixturenames:
        shapes = [(b, kind) for b in prof.embed_batches for kind in prof.embed_inputs]
        metafunc.parametrize("embed_shape", shapes, ids=[f"batch{b}-{k}" for b, k in shapes])


@pytest.fixture(scope="session")
def prof(request: pytest.FixtureRequest):
    return request.config.infermatrix_profile


@pytest.fixture(scope="session")
def model_dir(request: pytest.FixtureRequest) -> Path:
    from fixtures.catalog import locate

    return locate(request.config.getoption("--fixture"))


@pytest.fixture(scope="session")
def engine(request: pytest.FixtureRequest, model_dir: Path):
    """The engine the figures are timed on: its prefix cache off where it has a switch."""
    from engines import load_engine_class

    adapter = load_engine_class(request.config.getoption("--engine"))()
    started = time.perf_counter()  # a conversion not made yet is in it: the record says which
    adapter.load(model_dir, device=request.config.getoption("--device"), cache_prefixes=False)
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
    adapter.load(model_dir, device=request.config.getoption("--device"))
    yield adapter
    adapter.close()
