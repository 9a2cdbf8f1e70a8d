"""The import and load rungs, inside the cell: what the adapter declares, and each fixture
loaded once with the smallest real call. Any exception becomes the rung's failure (the worker's
job); a crash that kills the interpreter is named by the driver with the process's output."""

from __future__ import annotations

import importlib
import time

from core.details import DeviationInfo, ImportDetail, LoadDetail, LoadedFixture


def engine_class(engine: str) -> type:
    """The adapter class of a registered engine id, or of "module:Class" (the suite's own tests
    run deliberately broken engines that are not registered)."""
    from engines import load_engine_class

    if ":" not in engine:
        return load_engine_class(engine)
    module, _, name = engine.partition(":")
    return getattr(importlib.import_module(module), name)


def probe_import(engine: str) -> ImportDetail:
    from engines import ENGINES

    started = time.perf_counter()
    cls = engine_class(engine)
    return ImportDetail(
        class_=f"{cls.__module__}.{cls.__qualname__}",
        import_s=round(time.perf_counter() - started, 3),
        devices=list(ENGINES[engine].devices) if engine in ENGINES else [],
        capabilities=cls.capabilities,
        unsupported=dict(cls.unsupported),
        deviations={k: DeviationInfo(v.reason, v.link) for k, v in cls.deviations.items()},
        # what the cross-engine parity allows
        parity_top_k=getattr(cls, "parity_top_k", None),
        parity_tolerance=getattr(cls, "parity_tolerance", None),
        logprob_tolerance=getattr(cls, "logprob_tolerance", None))


def probe_load(engine: str, fixtures: list[str], device: str) -> LoadDetail:
    from fixtures.catalog import locate

    cls = engine_class(engine)
    loaded = {}
    for name in fixtures:
        model_dir = locate(name)
        started = time.perf_counter()
        adapter = cls()
        adapter.load(model_dir, device=device)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        first_call(adapter)
        loaded[name] = LoadedFixture(path=str(model_dir), load_s=round(load_s, 3),
                                     first_call_s=round(time.perf_counter() - started, 3))
        adapter.close()
    return LoadDetail(fixtures=loaded)


def first_call(adapter) -> None:
    """The smallest real call: one generated token, or one embedded text."""
    from engines.base import Generator, SamplingParams

    if isinstance(adapter, Generator):
        adapter.generate(["Hello"], SamplingParams(max_new_tokens=1))
    else:
        adapter.embed(["Hello"])
