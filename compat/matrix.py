"""compat/matrix.toml as frozen dataclasses, validated on load, expanded into cells.

Everything here is pure: loading a matrix never builds an environment, never
imports an engine and never touches the network, so a bad matrix stops before
any work starts.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from compat.cells import RELEASES, Cell
from compat.specs import (  # requirement_name, slug, override_slug: imported from here too
    Axis,
    Build,
    EngineSpec,
    Known,
    Selection,
    override_slug,
    requirement_name,
    slug,
)
from compat.stacks import Stack, parse_stacks
from core.ask import DEVICES
from core.errors import MatrixError, unknown
from core.properties import PROPERTIES
from core.results import RUNGS
from engines import ENGINES, SHIPPED
from fixtures.catalog import TRAINED

__all__ = ["MATRIX_PATH", "RELEASES", "Axis", "Build", "Cell", "EngineSpec", "Known", "Matrix", "Selection",
           "Stack", "load", "override_slug", "parse", "requirement_name", "slug"]
MATRIX_PATH = Path(__file__).with_name("matrix.toml")
@dataclass(frozen=True)
class Matrix:
    """The parsed matrix: specs, selections and every cell."""

    python: str
    harness: tuple[str, ...]
    device_constraints: dict[str, tuple[str, ...]]
    engines: dict[str, EngineSpec]
    axes: dict[str, Axis]
    selections: dict[str, Selection]
    known: tuple[Known, ...] = ()
    cells: tuple[Cell, ...] = field(default=())
    stacks: tuple[Stack, ...] = field(default=())

    def cell(self, cell_id: str) -> Cell:
        """Look a cell up by id, with a "did you mean" error."""
        for cell in self.cells:
            if cell.id == cell_id:
                return cell
        raise MatrixError(unknown("cell", cell_id, [c.id for c in self.cells]))

    def stack(self, stack_id: str) -> Stack:
        """Look a stack up by id (or by its [stacks.NAME] where that declares one stack)."""
        named = [s for s in self.stacks if s.name == stack_id]
        found = [s for s in self.stacks if s.id == stack_id] or (named if len(named) == 1 else [])
        if not found:
            raise MatrixError(unknown("stack", stack_id, [s.id for s in self.stacks]))
        return found[0]

    def selected_stacks(self, selection: str) -> tuple[Stack, ...]:
        if selection not in self.selections:
            raise MatrixError(unknown("selection", selection, self.selections))
        return tuple(s for s in self.stacks if selection in s.selections)

    def selected(self, selection: str) -> tuple[Cell, ...]:
        if selection not in self.selections:
            raise MatrixError(unknown("selection", selection, self.selections))
        return tuple(c for c in self.cells if selection in c.selections)

    def select(self, patterns: list[str], selection: str = "full") -> tuple[Cell, ...]:
        """Cells of `selection` whose id matches any glob; an unmatched pattern is an error."""
        pool = self.selected(selection)
        if not patterns:
            return pool
        chosen = []
        for pattern in patterns:
            hits = [c for c in pool if fnmatch.fnmatchcase(c.id, pattern)]
            if not hits:
                msg = unknown(f"cell pattern (matches no cell of selection {selection!r})",
                              pattern, [c.id for c in pool])
                raise MatrixError(msg)
            chosen += [c for c in hits if c not in chosen]
        return tuple(chosen)

    def known_for(self, cell_id: str, rung: str, signature: str) -> Known | None:
        return next((k for k in self.known if k.matches(cell_id, rung, signature)), None)


def make_cell(matrix: Matrix, engine: EngineSpec, combo: list[tuple[Axis, str]], device: str,
              *, pins: tuple[str, ...] = (), overrides: tuple[str, ...] = (),
              selections: tuple[str, ...] = (), why: str = "", release: str = "") -> Cell:
    requested = (*engine.requires_on(device),
                 *(axis.values[label] for axis, label in combo if axis.values[label]), *pins)
    return Cell(engine=engine, axes=tuple((axis.name, label) for axis, label in combo),
                axis_specs=tuple(axis for axis, _ in combo),
                device=device, python=matrix.python, requested=requested,
                requirements=(*requested, *matrix.harness),
                constraints=matrix.device_constraints[device], pins=pins,
                overrides=overrides, build_overrides=engine.overrides_on(device),
                selections=selections, why=why, release=release)


def expand(matrix: Matrix, excludes: list[dict], extras: list[dict]) -> tuple[Cell, ...]:
    """Every cell of every selection, plus the extra cells; each id once."""
    cells: dict[str, Cell] = {}
    for sel in matrix.selections.values():
        for engine_id in sel.engines:
            engine = matrix.engines[engine_id]
            axes = [matrix.axes[a] for a in sel.axes if matrix.axes[a].applies_to(engine_id)]
            for device in (d for d in sel.devices if d in engine.devices):
                for labels in itertools.product(*(axis.values_for(engine_id) for axis in axes)):
                    combo = list(zip(axes, labels))
                    if any(excluded(rule, engine_id, device, combo) for rule in excludes):
                        continue
                    cell = make_cell(matrix, engine, combo, device, selections=(sel.name,))
                    seen = cells.get(cell.id)
                    names = (*seen.selections, sel.name) if seen else (sel.name,)
                    cells[cell.id] = replace(cell, selections=names)
    for raw in extras:
        cell = extra_cell(matrix, raw)
        if cell.id in cells:
            raise MatrixError(f"[[cells]] entry {cell.id!r} duplicates a generated cell")
        cells[cell.id] = cell
    return tuple(cells.values())


def excluded(rule: dict, engine: str, device: str, combo: list[tuple[Axis, str]]) -> bool:
    facts = {"engine": engine, "device": device, **{a.name: label for a, label in combo}}
    return all(key in facts and facts[key] == str(value) for key, value in rule.items())


def extra_cell(matrix: Matrix, raw: dict) -> Cell:
    allowed = {"engine", "axes", "pins", "overrides", "device", "selections", "why", "release"}
    extra = set(raw) - allowed
    if extra:
        raise MatrixError(f"[[cells]]: unknown key(s) {sorted(extra)}. Valid: {sorted(allowed)}")
    if raw.get("engine") not in matrix.engines:
        raise MatrixError(unknown("engine in [[cells]]", raw.get("engine"), matrix.engines))
    engine = matrix.engines[raw["engine"]]
    combo = []
    for name, label in raw.get("axes", {}).items():
        if name not in matrix.axes:
            raise MatrixError(unknown("axis in [[cells]]", name, matrix.axes))
        if str(label) not in matrix.axes[name].values_for(engine.id):
            raise MatrixError(unknown(f"value of axis {name!r} for {engine.id}", label,
                                      matrix.axes[name].values_for(engine.id)))
        combo.append((matrix.axes[name], str(label)))
    device = raw.get("device", "cpu")
    if device not in matrix.device_constraints:
        raise MatrixError(unknown("device in [[cells]]", device, matrix.device_constraints))
    selections = tuple(raw.get("selections", ("default", "full")))
    for sel in selections:
        if sel not in matrix.selections:
            raise MatrixError(unknown("selection in [[cells]]", sel, matrix.selections))
    release = str(raw.get("release", ""))
    if release and release not in RELEASES and not re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", release):
        raise MatrixError(f"[[cells]] {engine.id}: release {release!r} is not a release. Valid: "
                          f"{', '.join(RELEASES)}, or a version such as \"0.0.77\"")
    return make_cell(matrix, engine, combo, device, pins=tuple(raw.get("pins", ())),
                     overrides=tuple(raw.get("overrides", ())), selections=selections,
                     why=raw.get("why", ""), release=release)


def _engine(engine_id: str, raw: dict) -> EngineSpec:
    if engine_id not in ENGINES:
        raise MatrixError(unknown("engine", engine_id, ENGINES))
    allowed = {"requires", "fixtures", "build_wheels", "tools", "harness", *DEVICES}
    registered = sorted({"kind", "devices"} & set(raw))
    if registered:
        raise MatrixError(f"Engine {engine_id!r}: {registered} is declared once, in the registry "
                          "(engines/__init__.py); remove it from the matrix.")
    extra = set(raw) - allowed
    if extra:
        msg = f"Engine {engine_id!r}: unknown key(s) {sorted(extra)}. Valid: {sorted(allowed)}"
        raise MatrixError(msg)
    return EngineSpec(id=engine_id, requires=tuple(raw.get("requires", ())),
                      fixtures=tuple(raw.get("fixtures", ())),
                      build_wheels=tuple(raw.get("build_wheels", ())),
                      tools=tuple(raw.get("tools", ())), harness=tuple(raw.get("harness", ())),
                      builds={device: _build(engine_id, device, raw[device])
                              for device in DEVICES if device in raw})


def _build(engine_id: str, device: str, raw: dict) -> Build:
    allowed = {"requires", "overrides"}
    extra = set(raw) - allowed
    if extra or not raw.get("requires"):
        msg = (f"[engines.{engine_id}.{device}]: give `requires`; unknown key(s) {sorted(extra)}. "
               f"Valid: {sorted(allowed)}")
        raise MatrixError(msg)
    return Build(requires=tuple(raw["requires"]), overrides=tuple(raw.get("overrides", ())))


def _selection(name: str, raw: dict, engines: dict, axes: dict, devices: dict) -> Selection:
    sel = Selection(name=name, engines=tuple(raw.get("engines", engines)),
                    axes=tuple(raw.get("axes", ())), devices=tuple(raw.get("devices", ("cpu",))))
    for engine in sel.engines:
        if engine not in engines:
            raise MatrixError(unknown(f"engine in [selections.{name}].engines", engine, engines))
    for axis in sel.axes:
        if axis not in axes:
            raise MatrixError(unknown(f"axis in [selections.{name}].axes", axis, axes))
    for device in sel.devices:
        if device not in devices:
            raise MatrixError(unknown(f"device in [selections.{name}].devices", device, devices))
    return sel


PROPERTY_RUNGS = ("conformance", "api")
"""The rungs whose record is a suite of properties: where a [[known]] may name one."""


def _known(raw: dict, cells: tuple[Cell, ...]) -> Known:
    cells_field = raw.get("cells", ())
    known = Known(cells=(cells_field,) if isinstance(cells_field, str) else tuple(cells_field),
                  rung=raw.get("rung", ""), signature=raw.get("signature", "*"),
                  reason=raw.get("reason", ""), link=raw.get("link", ""),
                  property=raw.get("property", ""))
    if known.rung not in RUNGS:
        raise MatrixError(unknown("rung in [[known]]", known.rung, RUNGS))
    if not known.reason:
        raise MatrixError(f"[[known]] for {known.cells}: give a reason")
    if known.property:
        suite = "api" if known.rung == "api" else "conformance"
        if known.rung not in PROPERTY_RUNGS:
            raise MatrixError(f"[[known]] for {known.cells}: a property fails in a suite's rung: "
                              f"rung {known.rung!r} is not one of {list(PROPERTY_RUNGS)}")
        names = sorted({p for kind, props in PROPERTIES.items() if (kind == "api") == (suite == "api")
                        for p in props})
        if known.property not in names:
            raise MatrixError(unknown(f"property in [[known]] (rung {known.rung})",
                                      known.property, names))
        if not known.link:
            raise MatrixError(f"[[known]] for {known.cells}, property {known.property!r}: give the "
                              "upstream reference (link) a property's understood failure rests on")
    for pattern in known.cells:
        if not any(fnmatch.fnmatchcase(c.id, pattern) for c in cells):
            raise MatrixError(unknown("cell pattern in [[known]] (matches no cell)", pattern,
                                      [c.id for c in cells]))
    return known


def with_known(cell: Cell, known: tuple[Known, ...]) -> Cell:
    """The cell with the property failures declared understood for it (its conformance rung
    passes over them, and it climbs on)."""
    mine = tuple(k for k in known if k.property and k.covers(cell.id))
    return replace(cell, known_properties=mine) if mine else cell


def _check_excludes(excludes: list[dict], engines: dict, axes: dict, devices: dict) -> None:
    for rule in excludes:
        for key, value in rule.items():
            if key == "engine":
                valid = engines
            elif key == "device":
                valid = devices
            elif key in axes:
                valid = axes[key].values
            else:
                raise MatrixError(unknown("key in [[exclude]]", key,
                                          ["engine", "device", *axes]))
            if str(value) not in valid:
                raise MatrixError(unknown(f"value of {key!r} in [[exclude]]", value, valid))


def with_trained(cells: tuple[Cell, ...], raw: dict) -> tuple[Cell, ...]:
    """The cells [trained] names, every CPU generation cell of the axes it names (`axes`: the
    quant selection's, whose quality is measured on the trained model too; a GPU machine gets
    no trained fixture, which cannot travel in its 64 MiB), and every cell of the
    weights a trained fixture ships (SHIPPED: that fixture is all it runs on), each with the
    trained fixture added; an unknown fixture, cell, axis or key is named with the valid ones."""
    extra = sorted(set(raw) - {"fixture", "cells", "axes"})
    if extra:
        raise MatrixError(unknown("key in [trained]", extra[0], ["fixture", "cells", "axes"]))
    known_axes = sorted({name for c in cells for name, _ in c.axes})
    for axis in raw.get("axes", []):
        if axis not in known_axes:
            raise MatrixError(unknown("axis in [trained]", axis, known_axes))
    shipped = [c.id for c in cells if dict(c.axes).get("quant") == SHIPPED]
    if not raw:
        if shipped:
            raise MatrixError(f"cell {shipped[0]!r} runs the weights a trained fixture ships "
                              f"(quant {SHIPPED!r}), and [trained] names no fixture")
        return cells
    fixture = raw.get("fixture", "")
    if fixture not in TRAINED:
        raise MatrixError(unknown("fixture in [trained]", fixture, TRAINED))
    ids = {c.id for c in cells}
    for cell_id in raw.get("cells", []):
        if cell_id not in ids:
            raise MatrixError(unknown("cell in [trained]", cell_id, sorted(ids)))
        kind = next(c for c in cells if c.id == cell_id).engine.id
        if ENGINES[kind].kind != "generation":
            raise MatrixError(f"[trained] cell {cell_id!r} runs {kind}, an {ENGINES[kind].kind} "
                              "engine: the trained model is a generation model")
    by_axis = [c.id for c in cells if ENGINES[c.engine.id].kind == "generation"
               and c.device == "cpu" and {name for name, _ in c.axes} & set(raw.get("axes", []))]
    named = {*raw.get("cells", []), *shipped, *by_axis}
    return tuple(replace(c, trained=(fixture,)) if c.id in named else c for c in cells)


def parse(data: dict) -> Matrix:
    """Build and validate a Matrix from the TOML's dict."""
    try:
        engines = {k: _engine(k, v) for k, v in data["engines"].items()}
        raw_selections = data["selections"]
    except KeyError as exc:
        raise MatrixError(f"compat/matrix.toml lacks the [{exc.args[0]}] table.") from exc
    axes = {k: Axis(name=k, values={str(label): req for label, req in v.get("values", {}).items()},
                    doc=v.get("doc", ""), engines=tuple(v.get("engines", ())),
                    engine_option=v.get("engine_option", ""), fixtures=tuple(v.get("fixtures", ())))
            for k, v in data.get("axes", {}).items()}
    device_constraints = {k: tuple(v.get("constraints", ()))
                          for k, v in data.get("devices", {}).items()}
    for device in device_constraints:
        if device not in DEVICES:
            raise MatrixError(unknown("device in [devices]", device, DEVICES))
    selections = {name: _selection(name, raw, engines, axes, device_constraints)
                  for name, raw in raw_selections.items()}
    for needed in ("default", "full"):
        if needed not in selections:
            raise MatrixError(f"compat/matrix.toml needs a [selections.{needed}] table.")
    excludes = list(data.get("exclude", []))
    _check_excludes(excludes, engines, axes, device_constraints)
    matrix = Matrix(python=str(data.get("defaults", {}).get("python", "3.11")),
                    harness=tuple(data.get("harness", {}).get("requires", ())),
                    device_constraints=device_constraints, engines=engines, axes=axes,
                    selections=selections)
    cells = with_trained(expand(matrix, excludes, list(data.get("cells", []))),
                         data.get("trained", {}))
    known = tuple(_known(raw, cells) for raw in data.get("known", []))
    cells = tuple(with_known(c, known) for c in cells)
    stacks = parse_stacks(data.get("stacks", {}), engines=engines, axes=axes,
                          devices=device_constraints, selections=selections,
                          python=matrix.python, harness=matrix.harness)
    return replace(matrix, cells=cells, known=known, stacks=stacks)


def load(path: Path = MATRIX_PATH) -> Matrix:
    """Read and validate compat/matrix.toml (or `path`)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(f"{path}: not valid TOML: {exc}") from exc
    return parse(data)
