"""core/proc.py and core/guard.py: whatever ends the driver (Ctrl-C, SIGTERM, SIGHUP, SIGKILL),
no process of a running rung outlives it — neither the rung's own group nor a server group it
registered — and the driver's commands running in threads stop too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.proc import run_tool
from tests.conftest import REPO

# A rung's command: a worker in its own group (as an engine-core process), a "server" in a group
# of its own, registered as engines/http/server.py registers one; then it hangs.
RUNG = """
import os, subprocess, sys, time
from core.proc import register_group
sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
server = subprocess.Popen(sleep, start_new_session=True)
register_group(server.pid)
worker = subprocess.Popen(sleep)
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(f"{os.getpgid(0)} {server.pid} {worker.pid}")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""

# The driver, as drive.run_matrix runs cells: two rungs side by side in threads.
DRIVER = """
import sys
from concurrent.futures import ThreadPoolExecutor
from core.proc import interrupt_on_signals, run_tool
interrupt_on_signals()
with ThreadPoolExecutor(2) as pool:
    list(pool.map(lambda f: run_tool([sys.executable, "-c", sys.argv[1], f], 600), sys.argv[2:]))
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def all_gone(pids: list[int], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(alive(p) for p in pids)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL],
                         ids=lambda s: s.name)
def test_every_process_of_the_run_dies_with_the_driver(sig, tmp_path, repo_env) -> None:
    files = [tmp_path / "a.pids", tmp_path / "b.pids"]
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, RUNG, *map(str, files)], cwd=REPO,
                              env=repo_env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not all(f.exists() for f in files) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(f.exists() for f in files), "the rungs never started"
    pids = [int(p) for f in files for p in f.read_text().split()]
    assert all(alive(p) for p in pids)
    started = time.monotonic()
    driver.send_signal(sig)
    _, err = driver.communicate(timeout=30)
    assert time.monotonic() - started < 10, "the driver waited for its rungs"
    if sig != signal.SIGKILL:
        assert driver.returncode != 0 and "Interrupted" in err, err[-2000:]
    assert all_gone(pids), f"outlived the driver's {sig.name}: {[p for p in pids if alive(p)]}"


def test_the_guard_keeps_the_commands_status_and_output() -> None:
    ok = run_tool([sys.executable, "-c", "print('out'); import sys; sys.exit(3)"], 30)
    assert (ok.returncode, ok.output, ok.timed_out) == (3, "out\n", False)
    crashed = run_tool([sys.executable, "-c", "import os; os.kill(os.getpid(), 11)"], 30)
    assert crashed.returncode == -signal.SIGSEGV
