"""Running the tools a cell needs (uv, the cell's python) and turning their failures into results.

Stdlib only: this runs in the driver's interpreter and in the fixture helpers'.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
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


GUARD = Path(__file__).with_name("guard.py")
_LIVE: dict[int, str] = {}
"""Process group id -> its registered-groups file, of every command run_tool runs now."""
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()


class Interrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C, SIGTERM, SIGHUP): no command's outcome is a result."""


def run_tool(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> ToolRun:
    """Run a command in its own process group, until it exits or its time limit; then kill
    whatever of the group is left (an engine's worker must not outlive the rung that started
    it, nor hold the output open), and every group it registered (a server started in a group
    of its own: register_group), also when the caller is interrupted. The command runs under
    core/guard.py, which does the same when this process dies of a signal it cannot catch.
    Raises Interrupted, recording nothing, once stop_all() has been called."""
    return Tool(cmd, env).finish(timeout)


class Tool:
    """A command started under the guard, in a process group of its own, its output collected;
    `finish` waits for it and kills whatever is left. For a command watched while it runs (the
    cell's worker); run_tool is the one-call form."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        if _STOPPING.is_set():
            raise Interrupted
        self._groups = tempfile.NamedTemporaryFile("r", prefix="infermatrix-groups-")  # noqa: SIM115
        watch, hold = os.pipe()  # the guard sees end-of-file on `watch` when `hold` closes
        self._hold = os.fdopen(hold, "wb")
        env = {**(os.environ if env is None else env), GROUPS_ENV: self._groups.name}
        guarded = [sys.executable, "-S", str(GUARD), str(watch), self._groups.name, "--", *cmd]
        try:
            self.proc = subprocess.Popen(guarded, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, errors="replace",
                                         start_new_session=True, pass_fds=(watch,))
        except BaseException:
            self._close_files()
            raise
        finally:
            os.close(watch)
        with _LIVE_LOCK:
            _LIVE[self.proc.pid] = self._groups.name
        self._chunks: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._chunks.append(line)

    def output(self) -> str:
        """What the command printed so far (stdout and stderr together)."""
        return "".join(self._chunks)

    def running(self) -> bool:
        return self.proc.poll() is None

    def finish(self, timeout: float | None = None) -> ToolRun:
        """Wait for the command (up to `timeout` seconds; None: stop it now), kill what is left of
        its group and the groups it registered, and return how it ended."""
        timed_out = False
        try:
            self.proc.wait(timeout=timeout if timeout is not None else 0)
        except subprocess.TimeoutExpired:
            timed_out = timeout is not None
        finally:
            kill_tree(self.proc.pid, self._groups.name)
            self.proc.wait()
            self._reader.join()
            self.proc.stdout.close()
            with _LIVE_LOCK:
                _LIVE.pop(self.proc.pid, None)
            self._close_files()
        if _STOPPING.is_set():
            raise Interrupted
        return ToolRun(-9 if timed_out else self.proc.returncode, self.output(), timed_out)

    def _close_files(self) -> None:
        self._hold.close()
        self._groups.close()


def kill_tree(pgid: int, groups: str) -> None:
    """SIGKILL the group `pgid` and every group registered in the file `groups`."""
    kill_group(pgid)
    with contextlib.suppress(OSError):
        for line in Path(groups).read_text(encoding="utf-8").split():
            kill_group(int(line))


def stop_all() -> None:
    """The run is interrupted: kill every command run_tool runs now (from any thread) with the
    groups they registered, and refuse new ones (run_tool raises Interrupted)."""
    _STOPPING.set()
    with _LIVE_LOCK:
        live = list(_LIVE.items())
    for pgid, groups in live:
        kill_tree(pgid, groups)


def interrupt_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP (Ctrl-C, a cancelled CI job, `timeout`, a service manager, a
    closed terminal) all stop the run the same way: every running command and its servers are
    killed (stop_all), then KeyboardInterrupt unwinds the main thread. Call from the main thread."""

    def handler(signum: int, _frame) -> None:
        stop_all()
        raise Interrupted(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


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
