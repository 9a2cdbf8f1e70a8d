"""The stacks' one-process step against a stand-in that monkey-patches torch at import
(tests/broken/patcher.py), in a real transformers venv on a real fixture: the patch is named in
the order where torch was there before it, and transformers' greedy parity, which holds alone,
fails together in both orders. Also the step's short bench: paired rounds, alone vs together."""

from __future__ import annotations

import json
import subprocess

import pytest

from compat.cell import cell_env
from core.details import ConformanceDetail
from core.records import read
from core.results import CellInfo, CellResult, Machine, Rung
from core.stack_records import OneProcess, StackInfo, StackResult
from fixtures.ensure import build_parity_references
from pages.stacks import StackView, findings
from tests.conftest import REPO, installed

PATCHER = "tests.broken.patcher:SiluPatcher"


def one_process(python, env, specs: list[str], out, rounds: int = 0) -> OneProcess:
    done = subprocess.run([str(python), "-m", "incell.together",
                           *(a for s in specs for a in ("--engine", s)), "--rounds", str(rounds),
                           "--out", str(out)], capture_output=True, text=True, env=env, cwd=REPO,
                          check=False, timeout=600)
    assert out.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return read(OneProcess, json.loads(out.read_text(encoding="utf-8")))


def alone(python, env) -> dict:
    """transformers' subset of properties in a process that holds it alone."""
    code = ("import json; from incell.together import run_subset; "
            "print(json.dumps({k: v.status for k, v in "
            "run_subset('transformers', 'tiny-llama', 'cpu', 'generation').items()}))")
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env,
                          cwd=REPO, check=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_one_process_step_names_a_patch_and_a_failure_only_together(tmp_path) -> None:
    run = installed("transformers-numpy2", tmp_path, ("tiny-llama",))
    build_parity_references(["tiny-llama"], 600, print)
    python, env = run.python, cell_env(run)
    by_alone = alone(python, env)
    assert by_alone == {"batch_invariance": "pass", "greedy_parity": "pass"}

    first = one_process(python, env, ["transformers=tiny-llama", f"{PATCHER}=tiny-llama"],
                        tmp_path / "forward.json", rounds=2)
    patched = [p for imp in first.imports for p in imp.patched]
    assert [(p.target, p.by) for p in patched] == [("torch.nn.functional.silu",
                                                     "tests/broken/patcher.py")]
    assert first.imports[1].engine == PATCHER  # named on the import that did it
    assert any("libgomp" in lib for lib in first.imports[0].openmp)
    parts = {p.engine: p for p in first.engines}
    assert parts["transformers"].properties["greedy_parity"].status == "fail"
    assert len(parts["transformers"].alone_s) == len(parts["transformers"].together_s) == 2

    second = one_process(python, env, [f"{PATCHER}=tiny-llama", "transformers=tiny-llama"],
                         tmp_path / "reverse.json")
    assert not [p for imp in second.imports for p in imp.patched]  # torch came with it
    assert {p.engine: p for p in second.engines}["transformers"].properties[
        "greedy_parity"].status == "fail"

    sid = "stack-transformers+patcher-numpy2"
    member = CellResult(
        cell=CellInfo(id=f"{sid}.transformers", engine="transformers", kind="generation",
                      env="numpy2", stack=sid),
        machine=Machine(), started_at="",
        rungs=[Rung("conformance", "pass", detail=ConformanceDetail(properties={
            name: type(parts["transformers"].properties[name])(status=status)
            for name, status in by_alone.items()}))])
    view = StackView(StackResult(stack=StackInfo(id=sid, name="s", engines=["transformers"]),
                                 together=[first, second]), [member])
    found = findings(view)
    assert any("patched `torch.nn.functional.silu`" in f for f in found)
    assert sum("transformers fails greedy_parity only together" in f for f in found) == 2
