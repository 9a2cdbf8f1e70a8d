"""llama.cpp's own tools — llama-server, llama-bench, llama-perplexity — built once per machine
from the llama.cpp tree that llama-cpp-python's sdist vendors: the same commit as the binding.

    python -m compat.llama_tools VERSION      build them for llama-cpp-python==VERSION (or say
                                              where they are)

They go to the wheelhouse, beside the wheel (`<wheelhouse>/llama.cpp-tools-<version>/bin`), with
`build.json`: the llama.cpp commit (from the sdist's changelog: the tree has no .git), the CMake
flags, the compiler and the build's seconds. A cell that needs them (engine `tools =
["llama.cpp"]` in compat/matrix.toml) builds them in its install rung, under the wheelhouse's
lock, and finds them through INFERMATRIX_LLAMA_TOOLS. A build that fails fails that rung.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from compat.index import download_sdist
from fixtures.catalog import cache_root

PACKAGE = "llama-cpp-python"
TARGETS = ("llama-server", "llama-bench", "llama-perplexity")
FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF",
         "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=ON",
         "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF")
"""The tools and what they need, nothing fetched: no web UI (npm, or a download), no TLS.
ggml's defaults otherwise, as the binding's wheel is built (GGML_NATIVE: this CPU's ISA)."""


class ToolBuildError(RuntimeError):
    """The tools could not be built: the message holds the tail of the build's output."""


def wheelhouse() -> Path:
    """Where compat/rungs/install.py keeps the wheels it builds."""
    return cache_root() / "wheels"


def tools_dir(version: str) -> Path:
    return wheelhouse() / f"llama.cpp-tools-{version}"


def built(version: str) -> dict | None:
    """build.json of the tools for `version`, where every tool is there."""
    folder = tools_dir(version)
    info = folder / "build.json"
    if not info.is_file() or not all((folder / "bin" / t).is_file() for t in TARGETS):
        return None
    return json.loads(info.read_text(encoding="utf-8"))


def commit_of(changelog: str, version: str) -> str:
    """The llama.cpp commit the release's changelog names ("update llama.cpp to
    ggml-org/llama.cpp@0c1e57098"), or "unknown"."""
    section = changelog.split(f"## [{version}]", 1)[-1].split("\n## [", 1)[0]
    found = re.search(r"llama\.cpp@([0-9a-f]{7,40})", section)
    return found.group(1) if found else "unknown"


def build(version: str, log=print, jobs: int | None = None) -> dict:
    """The tools for llama-cpp-python==`version`: built unless they are there; their build.json."""
    wheelhouse().mkdir(parents=True, exist_ok=True)
    with open(wheelhouse() / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per machine, cells climbing in parallel
        done = built(version)
        if done is not None:
            return done
        cmake = shutil.which("cmake")
        if cmake is None:
            raise ToolBuildError("building llama.cpp's tools needs cmake and a C++ compiler: "
                                 "apt-get install cmake g++ (or pip install cmake)")
        log(f"building llama.cpp's {', '.join(TARGETS)} from {PACKAGE}=={version}'s tree, once "
            f"(kept in {tools_dir(version)}); minutes")
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=".tools-", dir=wheelhouse()))
        try:
            info = compile_tools(version, work, cmake, log, jobs)
            info["build_s"] = round(time.monotonic() - started, 1)
            (work / "out" / "build.json").write_text(json.dumps(info, indent=1) + "\n",
                                                     encoding="utf-8")
            shutil.rmtree(tools_dir(version), ignore_errors=True)
            os.replace(work / "out", tools_dir(version))  # whole folders only
            log(f"llama.cpp's tools built in {info['build_s']:.0f} s (llama.cpp {info['llama_cpp_commit']})")
            return info
        finally:
            shutil.rmtree(work, ignore_errors=True)


def compile_tools(version: str, work: Path, cmake: str, log, jobs: int | None) -> dict:
    """Unpack the sdist in `work`, build TARGETS, copy them to work/out/bin; what was built."""
    sdist = download_sdist(PACKAGE, version, work)
    with tarfile.open(sdist) as archive:
        archive.extractall(work, filter="data")
    root = next(work.glob(f"{PACKAGE.replace('-', '_')}-*"))
    tree = root / "vendor" / "llama.cpp"
    commit = commit_of((root / "CHANGELOG.md").read_text(encoding="utf-8"), version)
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    run([cmake, "-S", str(tree), "-B", str(work / "build"), *generator, *FLAGS,
         f"-DLLAMA_BUILD_COMMIT={commit}"], log)
    run([cmake, "--build", str(work / "build"), "--target", *TARGETS, "-j",
         str(jobs or os.cpu_count() or 1)], log)
    (work / "out" / "bin").mkdir(parents=True)
    for target in TARGETS:
        shutil.copy2(work / "build" / "bin" / target, work / "out" / "bin" / target)
    return {"llama_cpp_python": version, "llama_cpp_commit": commit, "flags": list(FLAGS),
            "compiler": compiler(work / "build"), "targets": list(TARGETS)}


def run(cmd: list[str], log) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ToolBuildError(f"{' '.join(cmd[:3])} … failed ({done.returncode}):\n"
                             + (done.stdout + done.stderr)[-3000:])


def compiler(build_dir: Path) -> str:
    cache = (build_dir / "CMakeCache.txt").read_text(encoding="utf-8", errors="replace")
    found = re.search(r"^CMAKE_CXX_COMPILER:\w+=(.+)$", cache, re.MULTILINE)
    if not found:
        return "unknown"
    version = subprocess.run([found.group(1), "--version"], capture_output=True, text=True,
                             check=False).stdout.splitlines()
    return version[0] if version else found.group(1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m compat.llama_tools VERSION (of llama-cpp-python)")
    print(json.dumps(build(sys.argv[1]), indent=1))
