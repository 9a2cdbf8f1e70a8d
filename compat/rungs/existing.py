"""resolve and install in an existing environment (compat/here.py): not applicable (➖
"existing environment"), since the environment is there already; the resolve rung records what
it holds, read from its interpreter, as the cell's lock (the report's versions, and llama.cpp's
tools, read it as they read a lock)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from compat.cell import CellRun, RungFailed
from core.details import InstallDetail, ResolveDetail
from core.proc import run_tool
from core.results import ErrorInfo, Rung

REASON = "existing environment"
LIST_DISTRIBUTIONS = ("import importlib.metadata as m, json, sys; print(json.dumps({'python': "
                      "sys.version.split()[0], 'versions': {d.metadata['Name'].lower(): d.version "
                      "for d in m.distributions() if d.metadata['Name']}}))")


@functools.cache
def distributions(python: Path) -> dict:
    """{"python": "3.12.3", "versions": {distribution: version}} of an interpreter, read once per
    process (the cell, its resolve and install records and the GPU check all ask)."""
    tool = run_tool([str(python), "-c", LIST_DISTRIBUTIONS], 120)
    if tool.returncode != 0 or tool.timed_out:
        raise RungFailed(ErrorInfo.from_message(
            "InterpreterError", f"{python} could not list its distributions "
            f"(exit status {tool.returncode})", tool.output))
    return json.loads(next(line for line in reversed(tool.output.splitlines())
                           if line.startswith('{"python"')))


def environment_as_found(run: CellRun, rung: str) -> Rung:
    """The record of `rung` ("resolve" or "install") in an existing environment."""
    try:
        found = distributions(run.python)
    except RungFailed as exc:
        if rung == "install":
            return Rung("install", "not_reached", reason="resolve failed")
        return Rung("resolve", "fail", reason=exc.reason, error=exc.error)
    if rung == "install":
        return Rung("install", "not_run", reason=REASON, not_applicable=True,
                    detail=InstallDetail(venv=str(run.python.parent.parent),
                                         python=found["python"]))
    lock = "".join(f"{name}=={version}\n" for name, version in sorted(found["versions"].items()))
    (run.work / "lock.txt").write_text(lock, encoding="utf-8")
    return Rung("resolve", "not_run", reason=REASON, not_applicable=True,
                detail=ResolveDetail(versions=dict(sorted(found["versions"].items())), lock=lock))
