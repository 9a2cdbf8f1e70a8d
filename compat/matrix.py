"""compat/matrix.toml as frozen dataclasses, validated on load, expanded into cells.

Everything here is pure: loading a matrix never builds an environment, never
imports an engine and never touches the network, so a bad matrix stops before
any work starts.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from compat.errors import MatrixError, unknown
from engines import ENGINES

MATRIX_PATH = Path(__file__).with_name("matrix.toml")
KINDS = ("generation", "embedding")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class EngineSpec:
    """How to install and exercise one engine."""

    id: str
    """Registry id, also the adapter module's name (engines/<id>.py)."""
    kind: str
    """"generation" or "embedding": which conformance suite and benchmark apply."""
    requires: tuple[str, ...]
    """Requirement strings the engine needs, as uv/pip read them."""
    fixtures: tuple[str, ...]
    """Fixture names (fixtures/catalog.py) the engine is tested on."""
    devices: tuple[str, ...] = ("cpu",)
    """Devices the engine can run on."""

    def __post_init__(self) -> None:
        if self.id not in ENGINES:
            raise MatrixError(unknown("engine", self.id, ENGINES))
        if self.kind not in KINDS:
            raise MatrixError(f"Engine {self.id!r}: unknown kind {self.kind!r}. Valid: {KINDS}")
        for device in self.devices:
            if device not in DEVICES:
                raise MatrixError(unknown(f"device of engine {self.id!r}", device, DEVICES))
        if not self.fixtures:
            raise MatrixError(f"Engine {self.id!r} names no fixtures; it needs at least one.")


@dataclass(frozen=True)
class Axis:
    """One dependency axis: a name and its values, each a requirement string."""

    name: str
    """Axis name, used in cell ids ("numpy" -> "numpy2")."""
    values: dict[str, str]
    """Value label -> requirement, e.g. {"2": "numpy>=2"}."""
    doc: str = ""
    """One line for the report's column header."""

    def __post_init__(self) -> None:
        if not self.values:
            raise MatrixError(f"Axis {self.name!r} has no values.")


@dataclass(frozen=True)
class Cell:
    """One engine in one environment on one device."""

    engine: EngineSpec
    axes: tuple[tuple[str, str], ...]
    """(axis name, value label) pairs, in matrix order."""
    device: str
    python: str
    requirements: tuple[str, ...]
    """Everything the resolver is asked for: engine, axis values, device pins, harness."""

    @property
    def env_label(self) -> str:
        """The environment part of the id ("numpy2", "numpy1-cuda")."""
        parts = [f"{name}{value}" for name, value in self.axes]
        if self.device != "cpu":
            parts.append(self.device)
        return "-".join(parts) or "base"

    @property
    def id(self) -> str:
        """Readable, unique cell id: "transformers-numpy2"."""
        return f"{self.engine.id}-{self.env_label}"


@dataclass(frozen=True)
class Matrix:
    """The parsed matrix: specs plus the default selection."""

    python: str
    harness: tuple[str, ...]
    device_pins: dict[str, tuple[str, ...]]
    engines: dict[str, EngineSpec]
    axes: dict[str, Axis]
    default_engines: tuple[str, ...]
    default_axes: tuple[str, ...]
    default_devices: tuple[str, ...]
    cells: tuple[Cell, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in self.default_engines:
            if name not in self.engines:
                raise MatrixError(unknown("engine in [matrix].engines", name, self.engines))
        for name in self.default_axes:
            if name not in self.axes:
                raise MatrixError(unknown("axis in [matrix].axes", name, self.axes))
        for name in self.default_devices:
            if name not in self.device_pins:
                raise MatrixError(unknown("device in [matrix].devices", name, self.device_pins))

    def cell(self, cell_id: str) -> Cell:
        """Look a cell up by id, with a "did you mean" error."""
        for cell in self.cells:
            if cell.id == cell_id:
                return cell
        raise MatrixError(unknown("cell", cell_id, [c.id for c in self.cells]))


def expand(matrix: Matrix) -> tuple[Cell, ...]:
    """Every default cell: engine x each axis value x device the engine supports."""
    axes = [matrix.axes[name] for name in matrix.default_axes]
    cells = []
    for engine_id in matrix.default_engines:
        engine = matrix.engines[engine_id]
        for device in matrix.default_devices:
            if device not in engine.devices:
                continue
            for combo in itertools.product(*(axis.values.items() for axis in axes)):
                reqs = (
                    *engine.requires,
                    *(req for _, req in combo),
                    *matrix.device_pins[device],
                    *matrix.harness,
                )
                cells.append(
                    Cell(
                        engine=engine,
                        axes=tuple((axis.name, label) for axis, (label, _) in zip(axes, combo)),
                        device=device,
                        python=matrix.python,
                        requirements=reqs,
                    )
                )
    return tuple(cells)


def _engine(engine_id: str, raw: dict) -> EngineSpec:
    allowed = {"kind", "requires", "fixtures", "devices"}
    extra = set(raw) - allowed
    if extra:
        raise MatrixError(
            f"Engine {engine_id!r}: unknown key(s) {sorted(extra)}. Valid: {sorted(allowed)}"
        )
    return EngineSpec(
        id=engine_id,
        kind=raw.get("kind", ""),
        requires=tuple(raw.get("requires", ())),
        fixtures=tuple(raw.get("fixtures", ())),
        devices=tuple(raw.get("devices", ("cpu",))),
    )


def parse(data: dict) -> Matrix:
    """Build and validate a Matrix from the TOML's dict."""
    try:
        selection = data["matrix"]
        engines = {k: _engine(k, v) for k, v in data["engines"].items()}
        axes = {
            k: Axis(name=k, values=dict(v.get("values", {})), doc=v.get("doc", ""))
            for k, v in data.get("axes", {}).items()
        }
        device_pins = {k: tuple(v.get("pins", ())) for k, v in data.get("devices", {}).items()}
    except KeyError as exc:
        raise MatrixError(f"compat/matrix.toml lacks the [{exc.args[0]}] table.") from exc
    for device in device_pins:
        if device not in DEVICES:
            raise MatrixError(unknown("device in [devices]", device, DEVICES))
    matrix = Matrix(
        python=str(data.get("defaults", {}).get("python", "3.11")),
        harness=tuple(data.get("harness", {}).get("requires", ())),
        device_pins=device_pins,
        engines=engines,
        axes=axes,
        default_engines=tuple(selection.get("engines", engines)),
        default_axes=tuple(selection.get("axes", ())),
        default_devices=tuple(selection.get("devices", ("cpu",))),
    )
    return Matrix(**{**matrix.__dict__, "cells": expand(matrix)})


def load(path: Path = MATRIX_PATH) -> Matrix:
    """Read and validate compat/matrix.toml (or `path`)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(f"{path}: not valid TOML: {exc}") from exc
    return parse(data)
