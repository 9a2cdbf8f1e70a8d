"""A server process: started on a free loopback port in a process group of its own, waited for
(time-limited), stopped with its whole group, its output kept in a log whose tail goes into
every failure.

The group is registered with whoever runs this process (core/proc.register_group), so a server
does not outlive its rung even when the process that started it is killed or interrupted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from core.proc import register_group
from engines.http.wire import ServerError

HOST = "127.0.0.1"
STOP_GRACE_S = 5.0


class ServerNotReady(ServerError):
    """The server did not answer within its time limit."""


class ServerExited(ServerError):
    """The server process ended before it was stopped."""


class PortInUse(ServerError):
    """The port asked for is taken."""


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
        return False


class ServerProcess:
    """One server command, run until stop()."""

    def __init__(self, name: str, command: list[str], port: int, *,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.command = command
        self.port = port
        self.env = env
        self.log_path = Path(tempfile.mkstemp(prefix=f"infermatrix-{name.replace(' ', '-')}-",
                                              suffix=".log")[1])
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        if port_taken(self.port):
            raise PortInUse(f"{self.name}: port {self.port} on {HOST} is in use; give a free port")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env,
                                         process_group=0)
        register_group(self.proc.pid)
        self.started_at = time.monotonic()

    def wait_ready(self, answers: Callable[[], bool], limit: float, what: str) -> float:
        """Poll `answers` until it returns True; the seconds it took. A server that exits first
        raises ServerExited, one still silent at `limit` is stopped and raises ServerNotReady;
        both carry the tail of its log."""
        while True:
            self.check_alive()
            if answers():
                return time.monotonic() - self.started_at
            if time.monotonic() - self.started_at > limit:
                self.stop()
                raise ServerNotReady(f"{self.name} did not answer {what} within {limit:g} s"
                                     f"{self.tail_text()}")
            time.sleep(0.25)

    def check_alive(self) -> None:
        """Raise ServerExited (with its log's tail) if the process has ended."""
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            raise ServerExited(f"{self.name} exited with status {code}{self.tail_text()}")

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL what is left after a grace period; idempotent."""
        if self.proc is None:
            return
        for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
                if not group_alive(self.proc.pid):
                    break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # children that ignored SIGTERM
        deadline = time.monotonic() + STOP_GRACE_S
        while group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the kernel has taken the last of them

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def tail_text(self) -> str:
        """The log's tail on lines of its own, after an error's first line (its signature)."""
        tail = self.tail()
        return f"\nthe last lines of its log ({self.log_path}):\n{tail}" if tail else ""


def group_alive(pgid: int) -> bool:
    """Whether any process of the group `pgid` is left."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
