"""The conformance suite's own regression test: every property catches its broken engine.

For each engine in tests/broken/, the whole suite runs against it inside a real
cell environment (real venv, real transformers / sentence-transformers, real
fixtures), and exactly the property that engine was built to break must fail.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from compat.cell import cell_env
from compat.matrix import load
from core.properties import PROPERTIES, TRAINED_MODEL
from core.results import read_rung
from fixtures.catalog import PACKAGED, TRAINED
from fixtures.ensure import build_parity_references
from tests.conftest import REPO, installed

SUITES = {
    "generation": ("transformers-numpy2", "tests.broken.generation", "tiny-llama"),
    "embedding": ("sentence_transformers-numpy2", "tests.broken.embedding", "all-minilm-l6-v2"),
}


def broken_engines(module: str, python: Path, env: dict, table: str = "BROKEN") -> dict:
    """{class name: property (or list of properties)} read inside the cell (engines import torch)."""
    code = (f"import json, {module} as m; "
            f"print(json.dumps({{c.__name__: p for c, p in getattr(m, {table!r}, {{}}).items()}}))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env,
                         cwd=REPO, check=True)
    return json.loads(out.stdout)


# One process runs the whole suite against several engines in turn (pytest.main per engine):
# torch, transformers and pytest start once, not once per engine (7.8 s a run, against 2.5).
# Each run is (engine, output file, fixtures, the properties to run: all when empty).
IN_TURN = """
import sys, pytest
from core.ask import Ask
common, runs = sys.argv[1].split("\\x1f"), sys.argv[2:]
for spec, out, models, only in zip(runs[::4], runs[1::4], runs[2::4], runs[3::4]):
    ask = Ask(engine=spec, fixtures=tuple(models.split(",")), hypothesis_budget=5,
              properties=tuple(p for p in only.split(",") if p))
    print(spec, models, only, "->", pytest.main([*common, "--ask", ask.arg(),
                                                 "--conformance-json", out]), flush=True)
"""


def outcomes(python: Path, env: dict, *, kind: str, runs: list[tuple[str, str, tuple[str, ...]]],
             out: Path) -> list[dict[str, str]]:
    """{property: status} of the conformance suite run (engine `spec`, on `fixtures`, only
    `properties` when some are named), for each run in turn, in one process."""
    common = [str(REPO / "incell" / "conformance" / f"test_{kind}.py"), "-q", "-p", "no:cacheprovider",
              "-c", str(REPO / "incell/conformance/pytest.ini"), "--rootdir", str(REPO),
              "--no-shrink"]
    files = [out / f"{spec.rpartition(':')[2]}-{fixtures}-{'-'.join(only) or 'all'}.json"
             for spec, fixtures, only in runs]
    argv = [x for (spec, fixtures, only), f in zip(runs, files)
            for x in (spec, str(f), fixtures, ",".join(only))]
    done = subprocess.run([str(python), "-c", IN_TURN, "\x1f".join(common), *argv],
                          capture_output=True, text=True, env=env, cwd=REPO, check=False)
    missing = [run for run, f in zip(runs, files) if not f.is_file()]
    assert not missing, f"no result for {missing}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return [{name: p.status for name, p in read_rung(f).detail.properties.items()} for f in files]


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(SUITES))
def test_each_property_catches_its_broken_engine(kind: str, tmp_path) -> None:
    cell_id, module, fixture = SUITES[kind]
    cell = load().cell(cell_id)
    built = tuple(name for name in cell.fixtures if name not in PACKAGED)
    run_in = installed(cell_id, tmp_path, built)
    venv = run_in.venv
    if kind == "generation":
        assert build_parity_references(list(built), 600, print) is None
    env = cell_env(run_in)
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # two suites share two cores
    expected = broken_engines(module, venv / "bin" / "python", env)
    declared = broken_engines(module, venv / "bin" / "python", env, "DEVIATING")

    def breaks(prop: str | list[str]) -> list[str]:  # one property, or the few a bug must break
        return [prop] if isinstance(prop, str) else sorted(prop)

    # Every engine runs the whole suite on the random fixture (the trained-model properties skip
    # there). An engine built to break a trained-model property runs that property on the trained
    # model (135M) too; the other trained-model properties are held on the real engine, which
    # passes all of them in the real cell (tests/integration/test_ladder.py), not again on each broken one.
    trained = next(iter(TRAINED))
    runs = [(f"{module}:{name}", fixture, ()) for name in [*expected, *declared]]
    runs += [(f"{module}:{name}", trained, tuple(sorted(set(breaks(prop)) & TRAINED_MODEL)))
             for name, prop in expected.items() if set(breaks(prop)) & TRAINED_MODEL]
    runs.sort(key=lambda run: run[1] == trained)  # the long runs last, dealt to both processes
    python = venv / "bin" / "python"
    with ThreadPoolExecutor(max_workers=2) as pool:  # two processes, one a core
        parts = list(pool.map(lambda share: outcomes(python, env, kind=kind, runs=share, out=tmp_path),
                              [runs[0::2], runs[1::2]]))
    seen: dict[str, dict[str, str]] = {}
    for share, found in zip([runs[0::2], runs[1::2]], parts):
        for (spec, _, only), statuses in zip(share, found):
            mine = seen.setdefault(spec.rpartition(":")[2], {})
            mine.update({p: s for p, s in statuses.items() if not only or p in only})

    def having(name: str, status: str) -> list[str]:
        return sorted(p for p, s in seen[name].items() if s == status)

    wrong = {name: (prop, having(name, "fail")) for name, prop in expected.items()
             if having(name, "fail") != breaks(prop)}
    assert not wrong, f"broken engine -> (property it breaks, properties that failed): {wrong}"
    for name, prop in declared.items():  # a declared deviation is reported as such
        assert having(name, "deviation") == [prop] and having(name, "fail") == [], seen[name]
    covered = {p for prop in expected.values() for p in breaks(prop)}
    assert covered == set(PROPERTIES[kind]), (
        f"properties without a broken engine that fails them: {set(PROPERTIES[kind]) - covered}")
