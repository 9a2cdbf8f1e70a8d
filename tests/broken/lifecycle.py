"""Engines that break the process they run in, for the worker's own tests
(tests/unit/test_worker.py): one hangs while loading, one is killed while loading. Neither
needs an engine library, so the tests run in the suite's own venv."""

from __future__ import annotations

import os
import signal
import time

from engines.base import Capabilities, Generator


class Stalls(Generator):
    """Imports and declares fine; loading never returns (a deadlocked engine)."""

    id = "stalls"
    capabilities = Capabilities()

    def _load(self, model_dir, device, dtype) -> None:
        print("loading, and never done", flush=True)
        time.sleep(3600)

    def _tokenize(self, text):
        return [1]

    def _generate(self, prompt_ids, params):
        raise NotImplementedError

    def _logits(self, prompt_ids):
        raise NotImplementedError


class DiesLoading(Stalls):
    """Loading kills the interpreter outright (a segfault, the kernel's OOM killer)."""

    id = "dies-loading"

    def _load(self, model_dir, device, dtype) -> None:
        print("about to die", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
