"""Runs one command and takes it down when the process that started it dies, however it dies.

    python -S core/guard.py FD GROUPS_FILE -- COMMAND...

run_tool starts every rung's command through this guard, in a process group of the guard's
own. The command runs in that group too. FD is the read end of a pipe whose only write end the
driver holds: reading it returns end-of-file when the driver lets go, which it also does when
it dies, even of SIGKILL (the kernel closes a dead process's files). If the command is still
running then, the guard kills the groups the command registered (a server's: GROUPS_FILE, one
process group id a line), then its own group, itself and the command included. Otherwise it
exits as the command did (the same status, or the same signal).

Stdlib only, and no import of the project: it runs with `python -S` under any interpreter.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading


def kill_groups(groups_file: str) -> None:
    """SIGKILL every group named in `groups_file`, then the guard's own (this process too)."""
    with contextlib.suppress(OSError):
        with open(groups_file, encoding="utf-8") as handle:
            for line in handle.read().split():
                with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                    os.killpg(int(line), signal.SIGKILL)
        os.unlink(groups_file)  # the driver that would have removed it is gone
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    fd, groups_file, dashes, *cmd = argv
    if dashes != "--" or not cmd:
        sys.stderr.write("usage: python -S core/guard.py FD GROUPS_FILE -- COMMAND...\n")
        return 2
    child = subprocess.Popen(cmd)  # inherits stdout/stderr and the guard's process group
    exited = threading.Event()

    def watch() -> None:
        while os.read(int(fd), 1):  # nothing is ever written: only end-of-file comes
            pass
        if not exited.is_set():
            kill_groups(groups_file)

    threading.Thread(target=watch, daemon=True).start()
    # The guard is only a relay: a signal meant for the command must not stop the guard first.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
    status = child.wait()
    exited.set()
    if status < 0:  # die of the same signal, so the driver reads the same status
        with contextlib.suppress(OSError, ValueError):  # SIGKILL's action cannot be set
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
