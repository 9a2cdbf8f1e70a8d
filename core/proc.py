"""Running the tools a cell needs (uv, the cell's python) and turning their failures into results.

Stdlib only: this runs in the driver's interpreter and in the fixture helpers'.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from core.results import ErrorInfo
from core.signatures import resolution_subject, signature, uv_error

REPO = Path(__file__).resolve().parent.parent
GROUPS_ENV = "INFERMATRIX_PROCESS_GROUPS"
"""Names a file where a process that starts a group of its own (a server) writes its id, so that
whoever ran it kills that group too when the run ends (run_tool does)."""


@dataclass
class ToolRun:
    """A finished subprocess."""

    returncode: int
    output: str
    timed_out: bool


def uv_binary() -> str:
    """The uv executable: on PATH, or the one the `uv` package ships (nox[uv] installs it)."""
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin
    except ImportError:
        msg = "uv is not installed. Install it with: python -m pip install 'nox[uv]'"
        raise RuntimeError(msg) from None
    return find_uv_bin()


def uv_index_args(env: dict[str, str] | None = None) -> list[str]:
    """pip's index settings, handed to uv (which does not read them itself)."""
    env = os.environ if env is None else env
    args: list[str] = []
    for link in env.get("PIP_FIND_LINKS", "").split():
        args += ["--find-links", link]
    if env.get("PIP_INDEX_URL"):
        args += ["--index-url", env["PIP_INDEX_URL"]]
    extras = env.get("PIP_EXTRA_INDEX_URL", "").split()
    for url in extras:
        args += ["--extra-index-url", url]
    if extras:  # pip takes the best version across all indexes; uv's default would not
        args += ["--index-strategy", "unsafe-best-match"]
    return args


def run_tool(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> ToolRun:
    """Run a command in its own process group, until it exits or its time limit; then kill
    whatever of the group is left (an engine's worker must not outlive the rung that started
    it, nor hold the output open), and every group it registered (a server started in a group
    of its own: register_group), also when the caller is interrupted."""
    with tempfile.NamedTemporaryFile("r", prefix="infermatrix-groups-") as groups:
        env = {**(os.environ if env is None else env), GROUPS_ENV: groups.name}
        with subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace",
                              start_new_session=True) as proc:
            chunks: list[str] = []
            reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()),
                                      daemon=True)
            reader.start()
            try:
                proc.wait(timeout=timeout)  # the command itself, not the pipe a leftover may hold
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                kill_group(proc.pid)
                for line in Path(groups.name).read_text(encoding="utf-8").split():
                    kill_group(int(line))
            reader.join()
            return ToolRun(-9 if timed_out else proc.returncode, "".join(chunks), timed_out)


def register_group(pgid: int) -> None:
    """Have the run_tool that runs this process kill the group `pgid` when the run ends."""
    path = os.environ.get(GROUPS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as groups:
            groups.write(f"{pgid}\n")


def kill_group(pgid: int) -> None:
    """SIGKILL every process left in the group `pgid` (none left is fine)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def timeout_error(rung: str, limit: float, output: str) -> ErrorInfo:
    message = f"{rung} rung exceeded its {limit:g}s limit and was stopped"
    return ErrorInfo("Timeout", message, f"Timeout: {rung} > {limit:g}s", output)


def tool_error(rung: str, result: ToolRun, limit: float, kind: str) -> tuple[ErrorInfo, str]:
    """A failed uv run: its cause, signature and whole output, and the resolver's explanation."""
    if result.timed_out:
        return timeout_error(rung, limit, result.output), ""
    cause, explanation = uv_error(result.output)
    cause = cause or f"exited with status {result.returncode}"
    subject = resolution_subject(explanation) if "Because" in explanation else None
    sig = f"{kind}: {subject}" if subject else signature(kind, explanation)
    return ErrorInfo(type=kind, message=cause, signature=sig, text=result.output), explanation


def parse_lock(text: str) -> dict[str, str]:
    """name -> version from a `uv pip compile` output."""
    versions = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, _, version = line.partition("==")
            versions[name.strip().lower()] = version.split(";")[0].strip()
    return versions


def error_from_output(kind: str, result: ToolRun) -> ErrorInfo:
    """The last 'Type: message' line of a Python traceback, or the exit status."""
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    for line in reversed(lines):
        head, sep, rest = line.partition(": ")
        if sep and head.replace(".", "").replace("_", "").isalnum() and head[:1].isupper():
            return ErrorInfo.from_message(head.rsplit(".", 1)[-1], rest, result.output)
    return ErrorInfo.from_message(kind, f"exited with status {result.returncode}", result.output)
