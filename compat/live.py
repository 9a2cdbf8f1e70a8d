"""The verdict pages while a run is going: each time a cell lands, COMPATIBILITY.md,
CONFORMANCE.md and the site are written again (pages.render --live), so that the first
verdicts can be read minutes into a cold run, not at its end. Only while the cells climb: the
bench rungs that follow run alone, and their figures come with the report at the end.

One render at a time, in a thread of the driver: landings that come while one is rendering are
taken together by the next. A render that fails is logged once and the run goes on; the final
report (nox -s report) writes every page whatever happened here.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from compat.cell import Log
from core.proc import REPO, Interrupted, run_tool

RENDER_LIMIT_S = 120


class LivePages:
    """Re-renders the verdict pages in the background as cells land; `close` waits for the last."""

    def __init__(self, python: Path, results_dir: Path, out: Path, total: int, *,
                 matrix_file: Path | None = None, log: Log = print) -> None:
        self.python, self.results_dir, self.out = Path(python), Path(results_dir), Path(out)
        self.total, self.matrix_file, self.log = total, matrix_file, log
        self.landed: set[str] = set()
        self.renders = 0
        self._dirty = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failed = False
        self._said: set[int] = set()

    def land(self, cell_id: str) -> None:
        """A cell's result is in results_dir (it climbed, or its bench rung ran): render again,
        soon."""
        with self._lock:
            self.landed.add(cell_id)
            self._dirty = True
            if self._thread is None:  # none renders, or the one that did has said it is done
                self._thread = threading.Thread(target=self._loop, name="live-pages", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Wait for the render under way (and the one it owes) to finish."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._dirty:  # said under the lock: a landing after this starts a new one
                    self._thread = None
                    return
                self._dirty = False
                landed = len(self.landed)
            try:
                self._render(landed)
            except Interrupted:  # the run is being stopped: no more pages
                return

    def _render(self, landed: int) -> None:
        cmd = [str(self.python), "-m", "pages.render", str(self.results_dir), "--out",
               str(self.out), "--live", f"{landed}/{self.total}",
               *(("--matrix", str(self.matrix_file)) if self.matrix_file else ())]
        done = run_tool(cmd, RENDER_LIMIT_S, env={**os.environ, "PYTHONPATH": str(REPO)})
        self.renders += 1
        if done.returncode == 0:
            if landed in (1, self.total) and landed not in self._said:
                self._said.add(landed)
                self.log(f"the verdicts so far ({landed}/{self.total}): {self.out / 'COMPATIBILITY.md'}"
                         f", {self.out / 'site' / 'index.html'}")
        elif not self._failed:
            self._failed = True
            self.log(f"the pages could not be written while the run goes on (exit "
                     f"{done.returncode}); the report at the end writes them:\n{done.output[-1500:]}")
