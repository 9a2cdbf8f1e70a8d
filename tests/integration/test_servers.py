"""Server cells with a real server (`transformers serve` on tiny-llama, in the venv its cell
installs): no server process outlives its rung, whether the rung succeeds, fails, finds the
server hung or crashed, or the run is ended by a signal; and each failure names itself."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.proc import run_tool
from engines.http.server import PortInUse, ServerProcess, group_alive
from tests.conftest import REPO

VENVS = REPO / ".nox" / "test-cells"

# Starts the server through the real adapter; writes the server's process group id to argv[1]
# as soon as the process exists, then does what `then` says.
SERVE = """
import os, sys, time
from engines.http import server
from engines.base import SamplingParams
from engines.transformers_server import TransformersServerGenerator
from fixtures.catalog import locate

start = server.ServerProcess.start
def recorded(self):
    start(self)
    open(sys.argv[1], "w").write(str(self.proc.pid))
server.ServerProcess.start = recorded
engine = TransformersServerGenerator()
{then}
"""


def serve(server_cell, tmp_path: Path, then: str, timeout: float = 300, **env):
    """Run SERVE in the cell's venv under run_tool (as a rung runs); the result and the pgid."""
    python, cell_environment = server_cell
    pid_file = tmp_path / "server.pid"
    result = run_tool([python, "-c", SERVE.format(then=then), str(pid_file)], timeout,
                      env={**cell_environment, **env})
    return result, int(pid_file.read_text()) if pid_file.exists() else None


def gone(pgid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not group_alive(pgid)


@pytest.mark.slow
def test_a_server_answers_and_is_stopped_with_its_group(server_cell, tmp_path) -> None:
    then = ("engine.load(locate('tiny-llama'))\n"
            "print('TEXT', repr(engine.generate(['Hello'], SamplingParams(max_new_tokens=4))[0].text))\n"
            "pgid = engine.server.proc.pid\n"
            "engine.close()\n"
            "print('ALIVE AFTER CLOSE', server.group_alive(pgid))")
    result, pgid = serve(server_cell, tmp_path, then)
    assert result.returncode == 0, result.output[-3000:]
    assert "TEXT '" in result.output and "ALIVE AFTER CLOSE False" in result.output
    assert gone(pgid, within=0)


@pytest.mark.slow
def test_a_failing_rung_takes_its_server_down(server_cell, tmp_path) -> None:
    then = "engine.load(locate('tiny-llama'))\nraise RuntimeError('a property failed hard')"
    result, pgid = serve(server_cell, tmp_path, then)
    assert result.returncode == 1 and "a property failed hard" in result.output
    assert pgid is not None and gone(pgid), "the server outlived the rung that started it"


@pytest.mark.slow
def test_a_hung_server_is_killed_at_its_limit_and_named(server_cell, tmp_path) -> None:
    """The server's start-up outlasts the limit: ServerNotReady names the server, the route and
    the limit, and the adapter itself has killed the group (before run_tool would)."""
    then = ("try:\n    engine.load(locate('tiny-llama'))\n"
            "except Exception as exc:\n    print('ERROR', type(exc).__name__, exc)\n"
            "print('ALIVE', server.group_alive(int(open(sys.argv[1]).read())))")
    result, _ = serve(server_cell, tmp_path, then, INFERMATRIX_SERVER_READY_S="0.5")
    assert ("ERROR ServerNotReady transformers serve did not answer /v1/models within 0.5 s"
            in result.output), result.output[-3000:]
    assert "ALIVE False" in result.output


@pytest.mark.slow
def test_a_server_that_crashes_mid_rung_is_named_with_its_log(server_cell, tmp_path) -> None:
    then = ("engine.load(locate('tiny-llama'))\n"
            "os.killpg(engine.server.proc.pid, 9)\n"
            "time.sleep(1)\n"
            "try:\n    engine.generate(['Hello'], SamplingParams(max_new_tokens=4))\n"
            "except Exception as exc:\n    print('ERROR', type(exc).__name__, exc)")
    result, _ = serve(server_cell, tmp_path, then)
    assert "ERROR ServerExited transformers serve exited with status -9" in result.output, \
        result.output[-3000:]
    assert "the last lines of its log" in result.output


@pytest.mark.slow
def test_a_killed_run_takes_the_server_down(server_cell, tmp_path) -> None:
    """SIGKILL to the process that runs the rung (nox, the ladder, run_tool) while the server
    serves, the hardest way a run ends: core/guard.py takes the server's group down. (Ctrl-C,
    SIGTERM and SIGHUP, and SIGKILL again, each with a registered server group and rungs running
    side by side: tests/unit/test_proc.py.)"""
    sig = signal.SIGKILL
    python, cell_environment = server_cell
    pid_file = tmp_path / "server.pid"
    then = "engine.load(locate('tiny-llama'))\nprint('READY', flush=True)\ntime.sleep(600)"
    driver = ("import sys; from core.proc import interrupt_on_signals, run_tool; "
              "interrupt_on_signals(); "
              "run_tool(sys.argv[1:], 900, env=dict(__import__('json').loads(sys.stdin.read())))")
    import json

    proc = subprocess.Popen([sys.executable, "-c", driver, python, "-c", SERVE.format(then=then),
                             str(pid_file)], cwd=REPO, stdin=subprocess.PIPE, text=True,
                            env={"PYTHONPATH": str(REPO), "PATH": cell_environment["PATH"]})
    proc.stdin.write(json.dumps(cell_environment))
    proc.stdin.close()
    deadline = time.monotonic() + 240
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pid_file.exists(), "the server never started"
    pgid = int(pid_file.read_text())
    time.sleep(3)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert gone(pgid), f"the server outlived the run's {sig.name}"


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServerProcess("transformers serve", [sys.executable, "-c", "pass"], port)
        with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1 is in use"):
            server.start()
