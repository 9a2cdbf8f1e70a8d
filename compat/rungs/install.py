"""The install rung: make the cell's venv exactly its lock (`uv pip sync`), building once any
wheel that is published as source only."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from pathlib import Path

from compat.cell import CellRun, RungFailed
from compat.index import download_sdist
from core.details import InstallDetail
from core.proc import parse_lock, run_tool, tool_error, uv_binary, uv_index_args
from core.results import ErrorInfo, Rung
from fixtures.catalog import cache_root


def venv_python_version(venv: Path) -> str:
    """'3.11.7' from a venv's pyvenv.cfg, or '' if there is none."""
    cfg = venv / "pyvenv.cfg"
    if not cfg.is_file():
        return ""
    for line in cfg.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version_info", "version"):
            return value.strip()
    return ""


def wheelhouse() -> Path:
    """Wheels infermatrix built from source-only packages, found by every install."""
    path = cache_root() / "wheels"
    path.mkdir(parents=True, exist_ok=True)
    return path


BUILD_ENV = {
    # llama-cpp-python builds llama.cpp, the longest step of a run on an empty machine. Its
    # multimodal library (mtmd, LLAVA_BUILD) is loaded only by the multimodal chat handlers, which
    # no cell uses; llama.cpp's common library is never loaded by the binding at all, though its
    # CMakeLists forces it on (compat/llama_cpp_binding.cmake turns it off again). Both left out:
    # 83 steps of compiling and linking, where there were 140.
    "llama-cpp-python": {"CMAKE_ARGS": "-DLLAVA_BUILD=OFF -DCMAKE_PROJECT_INCLUDE_BEFORE="
                                       + str(Path(__file__).parents[1] / "llama_cpp_binding.cmake")},
}
"""Environment for building a source-only package's wheel: build only what the cells need."""


def uv(run: CellRun, cmd: list[str], kind: str, env: dict[str, str] | None = None) -> None:
    """Run a uv command under the install limit; its failure is the rung's (RungFailed)."""
    result = run_tool(cmd, run.limits.install, env={**os.environ, **env} if env else None)
    if result.returncode != 0:
        raise RungFailed(*tool_error("install", result, run.limits.install, kind))


STALE_INDEX = re.compile(r"there is no version of ([A-Za-z0-9_.\-]+)==")


def sync(run: CellRun, cmd: list[str]) -> None:
    """`uv pip sync` to the lock; where it finds no such version of a package the resolve rung
    has just locked (a release published while the run goes: uv's cached index page predates
    it), once more with that package's index page refreshed. The log says so."""
    result = run_tool(cmd, run.limits.install)
    stale = STALE_INDEX.search(result.output) if result.returncode else None
    if stale:
        run.log(f"[{run.cell.id}] uv's cached index has no {stale.group(1)} at the locked "
                "version (released since it was cached): syncing again with it refreshed")
        result = run_tool([*cmd, "--refresh-package", stale.group(1)], run.limits.install)
    if result.returncode != 0:
        raise RungFailed(*tool_error("install", result, run.limits.install, "InstallError"))


def build_wheel(run: CellRun, name: str, wheels: Path) -> None:
    """Build `name` at its locked version into the wheelhouse, once; a failure fails install."""
    version = parse_lock((run.work / "lock.txt").read_text(encoding="utf-8")).get(name)
    if version is None:
        return
    stem = f"{name.replace('-', '_')}-{version}-"
    with open(wheels / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # cells climbing in parallel build it once
        if any(p.name.startswith(stem) for p in wheels.glob("*.whl")):
            return
        run.log(f"[{run.cell.id}] building {name}=={version} from source, once (kept in {wheels})")
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=wheels))
        try:
            uv(run, [uv_binary(), "build", "--wheel", "--out-dir", str(work), "--python",
                     run.cell.python, *uv_index_args(), "--", str(download_sdist(name, version, work))],
               "WheelBuildError", env=BUILD_ENV.get(name))
            for wheel in work.glob("*.whl"):
                os.replace(wheel, wheels / wheel.name)  # whole files only
        finally:
            shutil.rmtree(work, ignore_errors=True)


def build_llama_tools(run: CellRun) -> None:
    """llama.cpp's tools for the cell's locked llama-cpp-python, once per machine."""
    from compat.llama_tools import PACKAGE, ToolBuildError, build

    version = parse_lock((run.work / "lock.txt").read_text(encoding="utf-8")).get(PACKAGE)
    if version is None:
        raise RungFailed(ErrorInfo.from_message(
            "ToolBuildError", f"{run.cell.id} asks for llama.cpp's tools, but its lock has no "
                              f"{PACKAGE}: add it to the engine's requires"))
    try:
        build(version, log=lambda line: run.log(f"[{run.cell.id}] {line}"))
    except ToolBuildError as exc:
        raise RungFailed(ErrorInfo.from_message("ToolBuildError", str(exc))) from None


def install(run: CellRun) -> Rung:
    """Make the venv exactly the lock: `uv pip sync` (fast when it is already there)."""
    have = venv_python_version(run.venv)
    if not (have == run.cell.python or have.startswith(run.cell.python + ".")):
        shutil.rmtree(run.venv, ignore_errors=True)  # missing, or made for another Python
        uv(run, [uv_binary(), "venv", "--quiet", "--python", run.cell.python, str(run.venv)],
           "VenvError")
    wheels = wheelhouse()
    for name in dict.fromkeys(w for e in run.cell.engines for w in e.build_wheels):
        build_wheel(run, name, wheels)
    if any("llama.cpp" in e.tools for e in run.cell.engines):
        build_llama_tools(run)
    sync(run, [uv_binary(), "pip", "sync", str(run.work / "lock.txt"), "--python",
               str(run.python), *uv_index_args(), "--find-links", str(wheels)])
    return Rung("install", "pass",
                detail=InstallDetail(venv=str(run.venv), python=venv_python_version(run.venv)))
