"""Stacks: several engines in one environment, as compat/matrix.toml's [stacks.NAME] declare them.

A stack resolves and installs once, with every engine's requirements together; each engine then
climbs import → load → conformance in that environment as a member cell (a Cell whose `stack`
names the stack), and the engines also run together in one process (compat/stack_run.py). Its
id says what it holds, as a cell's does: "stack-transformers+onnxruntime-numpy2".

Pure, as compat/matrix.py is: nothing here builds an environment or touches the network.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from compat.cells import Cell
from compat.specs import Axis, EngineSpec, override_slug, slug
from core.errors import MatrixError, unknown
from engines import ENGINES

STACK_KEYS = ("engines", "axes", "pins", "overrides", "device", "selections", "why")


@dataclass(frozen=True)
class Stack:
    """Several engines in one environment on one device, under one value of each of its axes."""

    name: str
    """The [stacks.NAME] it was declared as (or a user's file's stem: `nox -s stack -- FILE`)."""
    engines: tuple[EngineSpec, ...]
    """In the registry's order: the order the one-process step imports them in first."""
    axes: tuple[tuple[str, str], ...]
    axis_specs: tuple[Axis, ...]
    device: str
    python: str
    harness: tuple[str, ...]
    constraints: tuple[str, ...] = ()
    pins: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    """uv overrides of the stack's own: a lifted pin (the forced install is one more)."""
    selections: tuple[str, ...] = ()
    why: str = ""
    label: str = ""
    """What the id says it holds; default: the engines' ids joined by "+"."""
    rides: tuple[str, ...] = ()
    """A user's file's requirements (compat/stack_file.py), asked of the resolver as they are:
    the engines' own `requires` are then not added, and the harness rides apart."""
    source: str = ""
    """The file the stack was read from, or "": compat/matrix.toml's [stacks]."""

    @property
    def env_label(self) -> str:
        parts = [f"{name}{value}" for name, value in self.axes]
        parts += [slug(p) for p in self.pins] + [override_slug(o) for o in self.overrides]
        if self.device != "cpu":
            parts.append(self.device)
        return "-".join(parts) or "base"

    @property
    def id(self) -> str:
        held = self.label or "+".join(e.id for e in self.engines)
        return f"stack-{held}-{self.env_label}"

    @property
    def requested(self) -> tuple[str, ...]:
        """Every engine's requirements on the device (a user's file: its own requirements
        instead), then the axes' and the pins, each once."""
        wanted = list(self.rides) if self.source else \
            [r for e in self.engines for r in e.requires_on(self.device)]
        wanted += [axis.values[label] for axis, (_, label) in zip(self.axis_specs, self.axes)
                   if axis.values[label]]
        return tuple(dict.fromkeys([*wanted, *self.pins]))

    @property
    def build_overrides(self) -> tuple[str, ...]:
        """The engines' device overrides; none for a user's file, which is built as it says."""
        if self.source:
            return ()
        return tuple(dict.fromkeys(o for e in self.engines for o in e.overrides_on(self.device)))

    @property
    def harness_apart(self) -> tuple[str, ...]:
        """A user's file: the harness's packages, which ride apart (compat/harness.py)."""
        if not self.source:
            return ()
        return tuple(dict.fromkeys([*self.harness, *(h for e in self.engines for h in e.harness)]))

    @property
    def members(self) -> tuple:
        """One Cell per engine, each asking the resolver for the whole stack: the cells its
        engines climb in, one environment between them."""
        return tuple(Cell(
            engine=engine, axes=tuple((a.name, label) for a, (_, label)
                                      in zip(self.axis_specs, self.axes) if a.applies_to(engine.id)),
            axis_specs=tuple(a for a in self.axis_specs if a.applies_to(engine.id)),
            device=self.device, python=self.python, requested=self.requested,
            requirements=(*self.requested, *(() if self.source else self.harness)),
            constraints=self.constraints, pins=self.pins, overrides=self.overrides,
            build_overrides=self.build_overrides, selections=self.selections, why=self.why,
            stack=self.id, stack_engines=self.engines, harness_apart=self.harness_apart)
            for engine in self.engines)

    def forced(self, lifted: tuple[str, ...]) -> Stack:
        """The same stack installed by force: `lifted` as uv overrides (what users do when a pin
        stands in the way), its id saying so ("-lift-transformers")."""
        return replace(self, overrides=(*self.overrides, *lifted))


def parse_stacks(raw: dict, *, engines: dict[str, EngineSpec], axes: dict[str, Axis],
                 devices: dict[str, tuple[str, ...]], selections: dict, python: str,
                 harness: tuple[str, ...]) -> tuple[Stack, ...]:
    """Every stack of [stacks.NAME], one per combination of its axes' values; a bad key, engine,
    axis, value, device or selection is named with the valid ones."""
    stacks: dict[str, Stack] = {}
    for name, table in raw.items():
        where = f"[stacks.{name}]"
        named, device = checked_engines(where, table, engines, devices)
        combos = [[(axes[axis], str(v)) for v in values]
                  for axis, values in checked_axes(where, table, axes).items()]
        picked = tuple(table.get("selections", ("stacks",)))
        for sel in picked:
            if sel not in selections:
                raise MatrixError(unknown(f"selection in {where}", sel, selections))
        for combo in itertools.product(*combos):
            stack = Stack(name=name, engines=tuple(engines[e] for e in ENGINES if e in named),
                          axes=tuple((a.name, v) for a, v in combo),
                          axis_specs=tuple(a for a, _ in combo), device=device, python=python,
                          harness=harness, constraints=devices[device],
                          pins=tuple(table.get("pins", ())),
                          overrides=tuple(table.get("overrides", ())), selections=picked,
                          why=str(table.get("why", "")))
            if stack.id in stacks:
                raise MatrixError(f"{where}: stack {stack.id!r} is declared twice")
            stacks[stack.id] = stack
    return tuple(stacks.values())


def checked_engines(where: str, table: dict, engines: dict[str, EngineSpec],
                    devices: dict) -> tuple[list[str], str]:
    """The stack's keys, engines and device, each checked: (the engines named, the device)."""
    extra = sorted(set(table) - set(STACK_KEYS))
    if extra:
        raise MatrixError(unknown(f"key in {where}", extra[0], STACK_KEYS))
    named = list(table.get("engines", ()))
    if len(named) < 2:
        raise MatrixError(f"{where}: a stack holds at least two engines; give `engines = "
                          f"[...]` (available: {', '.join(sorted(engines))})")
    for engine in named:
        if engine not in engines:
            raise MatrixError(unknown(f"engine in {where}", engine, engines))
    if len(set(named)) != len(named):
        raise MatrixError(f"{where}: an engine is named twice in {named}")
    device = str(table.get("device", "cpu"))
    if device not in devices:
        raise MatrixError(unknown(f"device in {where}", device, devices))
    for engine in named:
        if device not in engines[engine].devices:
            raise MatrixError(f"{where}: engine {engine!r} has no {device} build "
                              f"(it runs on {', '.join(engines[engine].devices)})")
    return named, device


def checked_axes(where: str, table: dict, axes: dict[str, Axis]) -> dict[str, list]:
    """The stack's `axes = {name = [values]}`, each axis a package's and each value its own."""
    chosen = dict(table.get("axes", {}))
    for axis_name, values in chosen.items():
        if axis_name not in axes:
            raise MatrixError(unknown(f"axis in {where}", axis_name, axes))
        if axes[axis_name].engine_option:
            raise MatrixError(f"{where}: axis {axis_name!r} is an engine's own option, not a "
                              "package of the environment; a stack's axes are packages")
        for value in values:
            if str(value) not in axes[axis_name].values:
                raise MatrixError(unknown(f"value of axis {axis_name!r} in {where}", value,
                                          axes[axis_name].values))
    return chosen
