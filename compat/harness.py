"""The harness on a path of its own: in an environment infermatrix did not make (`nox -s here`,
a user's stack from a requirements file), what the harness needs inside the cell (pytest,
hypothesis, pytest-benchmark, jinja2, tokenizers, and per engine a fixture converter or a
fixture's package: the matrix's `harness` keys) is not asked of the environment. It is installed
once per Python version into a folder under the cache (`uv pip install --target`) and appended
to sys.path after the environment's own packages (incell/__init__.py reads HARNESS_ENV), so
nothing of ours shadows what the environment has, and the verdict is about its packages alone.

On a machine with no package index (the GPU box) the folder cannot be made: the cell then runs
with what the environment and its PYTHONPATH hold, as compat.gpucheck carries them.
Stdlib only: this runs in the driver's interpreter.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from core.proc import run_tool, uv_binary, uv_index_args
from fixtures.catalog import cache_root
from incell import HARNESS_ENV

__all__ = ["HARNESS_ENV", "harness_path"]
LIMIT_S = 600
FAILED: set[Path] = set()
"""Folders that could not be made in this run: not tried again for every process of every cell."""


def harness_path(python: str, packages: tuple[str, ...], log=print) -> Path | None:
    """The folder holding `packages` for Python `python` ("3.11" or "3.11.14"), made once; None
    (logged) where it cannot be made."""
    version = ".".join(python.split(".")[:2])
    key = hashlib.sha256("\0".join([version, *sorted(packages)]).encode()).hexdigest()[:12]
    folder = cache_root() / f"harness-{version}-{key}"
    done = folder / ".complete"
    if done.is_file():
        return folder
    if folder in FAILED:
        return None
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_file():
            return folder
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        tool = run_tool([uv_binary(), "pip", "install", "--quiet", "--target", str(work),
                         "--python-version", version, *uv_index_args(), *packages], LIMIT_S,
                        env={**os.environ})
        if tool.returncode != 0:
            shutil.rmtree(work, ignore_errors=True)
            FAILED.add(folder)
            log(f"the harness's own path could not be made ({', '.join(packages)}); the cell "
                f"runs with what its environment holds:\n{tool.output[-1500:]}")
            return None
        (work / ".complete").write_text("\n".join(packages) + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(work, folder)
    return folder
