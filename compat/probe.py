"""Runs inside a cell's environment: the import and load rungs.

    python -m compat.probe import --engine transformers --out probe.json
    python -m compat.probe load --engine transformers --fixture tiny-llama --out probe.json

Writes {"status": "pass"|"fail", "error": {...}|null, "detail": {...}} to --out.
Any exception, even one raised while importing numpy, becomes a "fail" record;
a crash that kills the interpreter leaves no file, which the ladder reports
with the process's own output.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from core.details import DeviationInfo, ImportDetail, LoadDetail, LoadedFixture, to_json
from core.results import ErrorInfo


def probe_import(engine: str) -> ImportDetail:
    from engines import engine_entry, load_engine_class

    started = time.perf_counter()
    cls = load_engine_class(engine)
    return ImportDetail(
        class_=f"{cls.__module__}.{cls.__qualname__}",
        import_s=round(time.perf_counter() - started, 3),
        devices=list(engine_entry(engine).devices),
        capabilities=dataclasses.asdict(cls.capabilities),
        unsupported=dict(cls.unsupported),
        deviations={k: DeviationInfo(v.reason, v.link) for k, v in cls.deviations.items()},
        # what the cross-engine parity allows
        parity_top_k=getattr(cls, "parity_top_k", None),
        parity_tolerance=getattr(cls, "parity_tolerance", None),
        logprob_tolerance=getattr(cls, "logprob_tolerance", None))


def probe_load(engine: str, fixtures: list[str], device: str) -> LoadDetail:
    from engines import load_engine_class
    from fixtures.catalog import locate

    cls = load_engine_class(engine)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat.probe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rung", choices=["import", "load"])
    parser.add_argument("--engine", required=True)
    parser.add_argument("--fixture", action="append", default=[])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    record: dict = {"status": "pass", "error": None, "detail": {}}
    try:
        if args.rung == "import":
            record["detail"] = to_json(probe_import(args.engine))
        else:
            record["detail"] = to_json(probe_load(args.engine, args.fixture, args.device))
    except BaseException as exc:  # every failure is a result; that is this module's job
        record = {"status": "fail", "error": dataclasses.asdict(ErrorInfo.from_exception(exc)),
                  "detail": {}}
    args.out.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
