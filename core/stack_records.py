"""A stack's record: what one environment holding several engines did (compat/stack_run.py).

    results/stacks/<stack id>.json                  the stack: its members, the conflict chain
                                                    where it did not resolve, the forced install,
                                                    the one-process step (both import orders)
    results/stacks/<stack id>/<member id>.json      each engine's climb in that environment: a
                                                    cell result (core/results.py) like any other

Raw samples are kept (each round of the paired bench); every ratio is derived when read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from core.details import PropertyResult
from core.records import read, to_json
from core.results import ErrorInfo, Machine, write_atomic

STACK_SCHEMA = 1


@dataclass
class Patch:
    """An attribute of a module already imported that an engine's import replaced."""

    target: str
    """"transformers.PreTrainedModel.from_pretrained"."""
    by: str
    """Where the new value was defined: a file under the package that brought it."""


@dataclass
class Imported:
    """One engine's import in the one process, after the engines before it in the order."""

    engine: str
    seconds: float = 0.0
    error: ErrorInfo | None = None
    openmp: list[str] = field(default_factory=list)
    """OpenMP runtimes mapped into the process after this import (/proc/self/maps), by file."""
    patched: list[Patch] = field(default_factory=list)


@dataclass
class Together:
    """One engine's part of the one-process step: its conformance subset among the others, and
    its short bench, paired round by round with a process that holds it alone."""

    engine: str
    fixture: str
    error: ErrorInfo | None = None
    """Its load (or subset) failed in the shared process: the failure."""
    properties: dict[str, PropertyResult] = field(default_factory=dict)
    alone_s: list[float] = field(default_factory=list)
    together_s: list[float] = field(default_factory=list)
    """Seconds of the same call, round i in the alone process, then in this one."""
    call: str = ""
    """What one round times ("greedy 16 tokens after an 8-token prompt")."""


@dataclass
class OneProcess:
    """The stack's engines imported, loaded and run in one process, in one order."""

    order: list[str]
    imports: list[Imported] = field(default_factory=list)
    engines: list[Together] = field(default_factory=list)
    error: ErrorInfo | None = None
    """The process ended without its record (a crash, a timeout): what it printed."""
    duration_s: float = 0.0
    env: dict[str, str] = field(default_factory=dict)
    """What this run set apart from the others ({"OMP_WAIT_POLICY": "PASSIVE"}: the run that
    asks whether a slowdown is OpenMP threads spin-waiting), or {}."""


@dataclass
class Side:
    """One engine's side of a conflict: the chain from its package to the colliding requirement."""

    engine: str
    chain: list[str]
    """Its package, then each package on the way, then the requirement: ["infinity-emb 0.0.77",
    "numpy<2"]."""
    alone: str = ""
    """The version it resolves to alone (under the stack's axes)."""


@dataclass
class Conflict:
    """Why the stack does not resolve, as a person finds it: each engine alone, then in pairs."""

    package: str
    """The requirement whose ranges do not meet ("" where no single one was found)."""
    sides: list[Side] = field(default_factory=list)
    alone_fails: list[str] = field(default_factory=list)
    """Engines that do not resolve even alone under the stack's axes."""
    resolves: int = 0
    """How many resolves finding it took."""
    text: str = ""
    """uv's own explanation of the whole stack's failure, kept whole."""


@dataclass
class Probe:
    """One candidate of the nearest-stack search: the stack with these pins."""

    pins: list[str]
    resolved: bool
    climbed: bool = False
    passed: bool = False
    verdicts: str = ""
    """Each engine's verdict where it climbed ("vllm ok, infinity_emb import")."""


@dataclass
class Nearest:
    """`nox -s stack -- ID --nearest`: the newest set of versions under which every engine passes
    in one environment (coordinate-wise: one engine stepped back at a time, newest first), or the
    engine that has to live in an environment of its own, and why."""

    probes: list[Probe] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    """The pins of the working set ([] where none was found)."""
    apart: str = ""
    """The engine whose removal lets the others resolve together, where no set was found."""
    why: str = ""
    resolves: int = 0
    climbs: int = 0


@dataclass
class StackInfo:
    id: str
    name: str
    engines: list[str]
    axes: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    python: str = ""
    requirements: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    why: str = ""
    forced_from: str = ""
    """The stack this one is the forced install of (its pins lifted), or ""."""


@dataclass
class StackResult:
    stack: StackInfo
    machine: Machine = field(default_factory=Machine)
    started_at: str = ""
    finished_at: str = ""
    members: list[str] = field(default_factory=list)
    """The member cells' ids, in the registry's order (their records in stacks/<stack id>/)."""
    conflict: Conflict | None = None
    forced: str = ""
    """The id of this stack installed by force, where it did not resolve ("" otherwise)."""
    together: list[OneProcess] = field(default_factory=list)
    nearest: Nearest | None = None
    key: str = ""
    """What the one-process step depends on (the members' input keys, its code): an earlier
    record with the same key is reused."""
    schema: int = STACK_SCHEMA

    def to_json(self) -> str:
        return json.dumps(to_json(self), indent=1, sort_keys=False) + "\n"


def save_stack(result: StackResult, folder: Path) -> Path:
    path = Path(folder) / f"{result.stack.id}.json"
    write_atomic(path, result.to_json())
    return path


def load_stack(path: Path) -> StackResult:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("schema") != STACK_SCHEMA:
        raise ValueError(f"{path}: stack record schema {data.get('schema')!r} is not {STACK_SCHEMA}")
    return read(StackResult, data)
