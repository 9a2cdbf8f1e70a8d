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

from compat.cell import CellRun, Options, cell_env
from compat.ladder import run_cell
from compat.matrix import load
from core.properties import PROPERTIES, TRAINED_MODEL
from core.results import read_rung
from fixtures.catalog import PACKAGED, TRAINED
from fixtures.ensure import build_fixtures, build_parity_references
from tests.unit.conftest import REPO

VENVS = REPO / ".nox" / "test-cells"
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
IN_TURN = """
import sys, pytest
common, specs = sys.argv[1].split("\\x1f"), sys.argv[2:]
for spec, out in zip(specs[::2], specs[1::2]):
    print(spec, "->", pytest.main([*common, "--engine-class", spec, "--conformance-json", out]),
          flush=True)
"""


def outcomes(python: Path, env: dict, *, kind: str, specs: list[str], fixture: str,
             out: Path) -> dict[str, dict[str, str]]:
    """{spec: {property: status}} of the conformance suite run against each engine `spec`."""
    common = [str(REPO / "tests" / "conformance" / f"test_{kind}.py"), "-q", "-p", "no:cacheprovider",
              "-c", str(REPO / "tests/conformance/pytest.ini"), "--rootdir", str(REPO),
              "--models", fixture, "--hypothesis-budget", "5", "--no-shrink"]
    files = {spec: out / f"{spec.rpartition(':')[2]}.json" for spec in specs}
    done = subprocess.run([str(python), "-c", IN_TURN, "\x1f".join(common),
                           *(x for spec, f in files.items() for x in (spec, str(f)))],
                          capture_output=True, text=True, env=env, cwd=REPO, check=False)
    missing = [spec for spec, f in files.items() if not f.is_file()]
    assert not missing, f"no result for {missing}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return {spec: {name: p.status for name, p in read_rung(f).detail.properties.items()}
            for spec, f in files.items()}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(SUITES))
def test_each_property_catches_its_broken_engine(kind: str, tmp_path) -> None:
    cell_id, module, fixture = SUITES[kind]
    cell = load().cell(cell_id)
    venv = VENVS / cell_id
    ready = run_cell(cell, venv=venv, results_dir=tmp_path, log=print,
                     options=Options(last_rung="install"))
    assert ready.first_failure is None, ready.first_failure
    built = [name for name in cell.fixtures if name not in PACKAGED]
    assert build_fixtures(built, 300, print) is None
    if kind == "generation":
        assert build_parity_references(built, 600, print) is None
    env = cell_env(CellRun(cell=cell, venv=venv, options=Options(), log=print))
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # two suites share two cores
    expected = broken_engines(module, venv / "bin" / "python", env)
    declared = broken_engines(module, venv / "bin" / "python", env, "DEVIATING")

    def breaks(prop: str | list[str]) -> list[str]:  # one property, or the few a bug must break
        return [prop] if isinstance(prop, str) else sorted(prop)

    def run(names: list[str], fixtures: str) -> dict[str, dict[str, str]]:
        found = outcomes(venv / "bin" / "python", env, kind=kind, specs=[f"{module}:{n}" for n in names],
                         fixture=fixtures, out=tmp_path)
        return {spec.rpartition(":")[2]: statuses for spec, statuses in found.items()}

    # the trained model (135M) for the engines built to break what only it can test; the others
    # on the random fixture alone, where the trained-model properties skip
    trained = [n for n, prop in expected.items() if set(breaks(prop)) & TRAINED_MODEL]
    plain = [n for n in [*expected, *declared] if n not in trained]
    with_trained = f"{fixture},{next(iter(TRAINED))}"
    with ThreadPoolExecutor(max_workers=2) as pool:  # two processes, one a core
        parts = pool.map(run, [trained, plain], [with_trained, fixture]) if trained else \
            pool.map(run, [plain[0::2], plain[1::2]], [fixture, fixture])
        seen = {k: v for part in parts for k, v in part.items()}

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
