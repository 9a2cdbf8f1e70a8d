"""The per-cell result file: a versioned JSON schema, written atomically.

One file per cell under results/<cell id>.json. The report merges any set of
them, from one machine or many CI jobs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from compat.signatures import first_line, signature

SCHEMA_VERSION = 1
RUNGS = ("resolve", "install", "import", "load", "conformance", "bench")
Status = Literal["pass", "fail", "not_reached", "not_run"]


class SchemaError(ValueError):
    """A result file that is not a result of this schema version."""


@dataclass
class ErrorInfo:
    """A failure, short and long."""

    type: str
    """Exception type name, or the tool's own failure kind (e.g. "ResolutionError")."""
    message: str
    """First line of the message."""
    signature: str
    """Short stable form, shared by equal failures across cells (compat/signatures.py)."""
    text: str
    """Full text: traceback or the tool's whole output."""

    @classmethod
    def from_message(cls, error_type: str, message: str, text: str = "") -> ErrorInfo:
        return cls(error_type, first_line(message), signature(error_type, message), text or message)

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """The root cause names the failure: a wrapper raised `from` it says less."""
        text = "".join(traceback.format_exception(exc))
        root = exc
        while root.__cause__ is not None:
            root = root.__cause__
        info = cls.from_message(type(root).__name__, str(root), text)
        if root is not exc:
            info.message = f"{info.message} (raised as {type(exc).__name__}: {first_line(str(exc))})"
        return info


@dataclass
class Rung:
    """One rung of the ladder in one cell."""

    name: str
    status: Status
    duration_s: float = 0.0
    reason: str = ""
    """Why it did not run, or a caveat on a pass."""
    error: ErrorInfo | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    """Rung-specific data: resolved versions, loaded fixtures, properties, metrics."""


@dataclass
class CellResult:
    """Everything one cell produced."""

    cell: dict[str, Any]
    machine: dict[str, Any]
    started_at: str
    finished_at: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    """Every resolved package and its version (the lock)."""
    lock: str = ""
    """The lock file as uv wrote it; `uv pip sync` re-creates the environment from it."""
    rungs: list[Rung] = field(default_factory=list)
    schema: int = SCHEMA_VERSION

    def rung(self, name: str) -> Rung | None:
        return next((r for r in self.rungs if r.name == name), None)

    @property
    def first_failure(self) -> Rung | None:
        return next((r for r in self.rungs if r.status == "fail"), None)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellResult:
        if data.get("schema") != SCHEMA_VERSION:
            msg = f"result schema {data.get('schema')!r} is not {SCHEMA_VERSION}; re-run the cell"
            raise SchemaError(msg)
        rungs = []
        for raw in data.get("rungs", []):
            error = ErrorInfo(**raw["error"]) if raw.get("error") else None
            rungs.append(Rung(**{**raw, "error": error}))
        return cls(**{**data, "rungs": rungs})


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    mem_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "arch": platform.machine(),
        "host_python": platform.python_version(),
    }


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_results(paths: list[Path]) -> tuple[list[CellResult], list[str]]:
    """Read result files; unreadable ones are reported by name, never fatal."""
    results, problems = [], []
    for path in sorted(paths):
        try:
            results.append(CellResult.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            problems.append(f"{path.name}: {exc}")
    return results, problems
