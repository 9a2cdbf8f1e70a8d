"""What the driver asks of a process inside a cell, in one JSON form: the worker's rungs (import,
load, conformance, api), the conformance suites under pytest, the bench. Every one of them
reads the same Ask (`Ask.parse`), so the engine, the device and the fixtures are spelled and
checked once, not by a parser of each.

    python -m incell.worker --dir D --ask '{"engine": "transformers", "device": "cpu"}'
    pytest incell/conformance/test_generation.py --ask '{"engine": "llama_cpp",
        "fixtures": ["tiny-llama"], "suite": "generation", "hypothesis_budget": 3}'
    python -m incell.throughput.run --ask '{"engine": "transformers", "fixtures": ["tiny-llama"],
        "bench_args": ["--profile", "full", "--batches", "1,4"]}' --out bench.json
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from core.errors import InfermatrixError, unknown
from core.records import read, to_json

DEVICES = ("cpu", "cuda")
SUITES = ("generation", "embedding", "api")


class AskError(InfermatrixError, ValueError):
    """An ask that cannot be carried out as written: the message names the field and its valid
    values."""


@dataclass(frozen=True)
class Ask:
    engine: str
    """A registered engine id, or module:Class (the suite's own tests: a broken engine)."""
    device: str = "cpu"
    fixtures: tuple[str, ...] = ()
    """Fixture names, or folders (an endpoint's local copy); the bench runs on the first."""
    suite: str = ""
    """The conformance suite a suite rung runs: generation, embedding or api."""
    properties: tuple[str, ...] = ()
    """Only these properties (empty: every one)."""
    hypothesis_budget: int = 10
    """Examples per generated-input property."""
    bench_args: tuple[str, ...] = ()
    """incell/throughput/run.py's profile and shape options (--profile full --batches 1,4)."""

    def __post_init__(self) -> None:
        if not self.engine:
            raise AskError("an ask names no engine: give a registered engine id or module:Class")
        if self.device not in DEVICES:
            raise AskError(unknown("device", self.device, DEVICES))
        if self.suite and self.suite not in SUITES:
            raise AskError(unknown("suite", self.suite, SUITES))
        if self.hypothesis_budget <= 0:
            raise AskError(f"hypothesis_budget must be > 0, got {self.hypothesis_budget}")

    @property
    def engine_class(self) -> str:
        """module:Class where the ask names one, else ""."""
        return self.engine if ":" in self.engine else ""

    def arg(self) -> str:
        """The ask as one command-line argument (JSON)."""
        return json.dumps(to_json(self), sort_keys=True)

    @staticmethod
    def parse(text: str) -> Ask:
        """An Ask from its JSON, or AskError saying what is wrong with it."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AskError(f"the ask is not JSON ({exc.msg}): {text[:200]!r}") from None
        if not isinstance(data, dict):
            raise AskError(f"the ask is a JSON object of {sorted(FIELDS)}, not {text[:200]!r}")
        try:
            return read(Ask, {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        except TypeError as exc:
            raise AskError(str(exc)) from None


FIELDS = tuple(f.name for f in dataclasses.fields(Ask))
