"""The float32 twin of a quantized cell's engine, in a process of its own (test_paired.py): the
same engine on the same fixture, unquantized, timing one round at a time on request over a pipe.

Two engines in one process are not independent: loaded beside its int8 model, CTranslate2's
float32 model decoded SmolLM2's shape at 28.4 tok/s against 40.1 in its own cell, and on
small-llama at 574 against 2,884 (transformers' bfloat16 model beside its float32 one: 224
against 375). In a process of its own the twin shares the machine with the quantized engine and
nothing else: the two take turns, each timed as test_generation times it."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the twin imports its engine's side lazily, in the spawned process
    from incell.throughput.timing import Round

SETTLE_S = 0.3
"""Pause after each side's round: OpenMP pools spin for up to 200 ms after their last region
(KMP_BLOCKTIME), which would otherwise run into the other side's first token."""


def serve(conn, spec: dict) -> None:
    """The twin's process: load, say ready (or why not), then one round per "round" asked.
    `spec`: engine id, model_dir, device, dtype, the bench profile and the input length."""
    from engines import load_engine_class
    from incell.prompts import FreshPrompts
    from incell.throughput.timing import round_for

    engine = load_engine_class(spec["engine"])()
    try:
        engine.load(Path(spec["model_dir"]), device=spec["device"], dtype=spec["dtype"],
                    quantization="none", cache_prefixes=False)
        one_round, route = round_for(engine, FreshPrompts(engine.tokenize), spec["prof"], 1,
                                     spec["length"])
        conn.send(("ready", route, engine.dtype))
        while conn.recv() == "round":
            out = one_round()
            time.sleep(SETTLE_S)
            conn.send(("round", out))
    except Exception as exc:  # the parent says why the twin stopped
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        engine.close()


class FloatTwin:
    """The twin process (spawned: no engine state is inherited), its route and dtype once ready."""

    def __init__(self, spec: dict, timeout_s: float = 900.0) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._proc = context.Process(target=serve, name="float-twin", args=(child, spec))
        self._proc.start()
        self.timeout_s = timeout_s
        _, self.route, self.dtype = self._answer()

    def _answer(self) -> tuple:
        if not self._conn.poll(self.timeout_s):
            self.close()
            raise RuntimeError(f"the float twin did not answer in {self.timeout_s:.0f} s")
        answer = self._conn.recv()
        if answer[0] == "error":
            self.close()
            raise RuntimeError(f"the float twin stopped: {answer[1]}")
        return answer

    def round(self) -> Round:
        """One round of the float model, timed in its process as the quantized one's is."""
        self._conn.send("round")
        return self._answer()[1]

    def close(self) -> None:
        """Stop the twin; killed where it does not end within a minute (none outlives the cell)."""
        if self._proc.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send("stop")
            self._proc.join(60)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
