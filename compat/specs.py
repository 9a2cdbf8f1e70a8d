"""The parts of compat/matrix.toml that describe engines, axes, selections and known
incompatibilities, as frozen dataclasses validated on creation; and requirement names.

Pure: nothing here builds an environment, imports an engine or touches the network.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from core.errors import MatrixError, unknown
from engines import ENGINES

TOOLS = ("llama.cpp",)
"""Native tools a matrix engine may ask the install rung for (`tools = [...]`)."""

_OPS = (("===", "eq"), ("==", ""), ("!=", "ne"), ("~=", "compat"), (">=", "ge"), ("<=", "le"),
        (">", "gt"), ("<", "lt"))


def requirement_name(requirement: str) -> str:
    """'infinity-emb[torch]>=0.0.58; python_version<"3.13"' -> 'infinity-emb' (as uv writes it)."""
    name = re.split(r"[<>=!~\[ ;@]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def slug(requirement: str) -> str:
    """A requirement as an id part: 'transformers==4.44.2' -> 'transformers4.44.2'."""
    text = requirement.split(";", maxsplit=1)[0].replace(" ", "")
    for op, word in _OPS:
        text = text.replace(op, word)
    return re.sub(r"[^A-Za-z0-9.+_-]", "", text.replace(",", "-"))


def override_slug(override: str) -> str:
    """'torchvision; sys_platform == "never"' -> 'no-torchvision'; 'numpy>=2' -> 'lift-numpy'."""
    if "never" in override.partition(";")[2]:
        return f"no-{requirement_name(override)}"
    return f"lift-{requirement_name(override)}"


@dataclass(frozen=True)
class Build:
    """An engine's build for one device, where it is published apart (vLLM's CPU build)."""

    requires: tuple[str, ...]
    """What the resolver is asked for on that device, instead of the engine's `requires`."""
    overrides: tuple[str, ...] = ()
    """uv overrides every cell of the engine on that device needs (e.g. removing a package
    whose PyPI build does not load there); they are not part of the cell's id."""


@dataclass(frozen=True)
class EngineSpec:
    """How to install and exercise one engine (its kind and devices: the registry's)."""

    id: str
    """Registry id (engines/__init__.py)."""
    requires: tuple[str, ...]
    """Requirement strings the engine needs, as uv/pip read them."""
    fixtures: tuple[str, ...]
    """Fixture names (fixtures/catalog.py) the engine is tested on."""
    build_wheels: tuple[str, ...] = ()
    """Packages published as source only: built into a wheel once (the install rung keeps it
    in the wheelhouse under the cache), so later installs compile nothing."""
    builds: dict[str, Build] = field(default_factory=dict)
    """Device -> the engine's own build there ([engines.<id>.<device>] in the matrix)."""
    tools: tuple[str, ...] = ()
    """Native tools the engine runs, built once per machine by the install rung: "llama.cpp"
    (llama-server, llama-bench, llama-perplexity from llama-cpp-python's tree; compat/llama_tools.py)."""
    harness: tuple[str, ...] = ()
    """What infermatrix itself needs beside this engine (a fixture converter, a fixture's package),
    not what the engine needs: in an environment infermatrix did not make (nox -s here, a user's
    stack) it rides on a path of its own after the environment's packages (compat/harness.py)."""

    def __post_init__(self) -> None:
        if self.id not in ENGINES:
            raise MatrixError(unknown("engine", self.id, ENGINES))
        if not self.fixtures:
            raise MatrixError(f"Engine {self.id!r} names no fixtures; it needs at least one.")
        for tool in self.tools:
            if tool not in TOOLS:
                raise MatrixError(unknown(f"tool of engine {self.id!r}", tool, TOOLS))
        for device in self.builds:
            if device not in self.devices:
                raise MatrixError(unknown(f"device of a build of engine {self.id!r}", device,
                                          self.devices))

    def requires_on(self, device: str) -> tuple[str, ...]:
        """What the engine asks the resolver for on `device`."""
        return self.builds[device].requires if device in self.builds else self.requires

    def overrides_on(self, device: str) -> tuple[str, ...]:
        return self.builds[device].overrides if device in self.builds else ()

    @property
    def kind(self) -> str:
        """"generation" or "embedding": which conformance suite and benchmark apply."""
        return ENGINES[self.id].kind

    @property
    def devices(self) -> tuple[str, ...]:
        """Devices the engine runs on, and so gets cells for."""
        return ENGINES[self.id].devices

    @property
    def transport(self) -> str:
        """"process" or "http" (a server): whether the API-surface suite applies."""
        return ENGINES[self.id].transport


ENGINE_OPTIONS = {"": "", "quantization": "quantizations", "dtype": "dtypes"}
"""An axis's engine_option -> the EngineEntry field that lists the values an engine offers."""


@dataclass(frozen=True)
class Axis:
    """One dependency axis: a name and its values, each a requirement string."""

    name: str
    """Axis name, used in cell ids ("numpy" -> "numpy2")."""
    values: dict[str, str]
    """Value label -> requirement, e.g. {"2": "numpy>=2"}."""
    doc: str = ""
    """One line for the report."""
    engines: tuple[str, ...] = ()
    """Engines the axis applies to; empty means every engine."""
    fixtures: tuple[str, ...] = ()
    """Where set, the cells on this axis whose engine has any of these fixtures run on those only
    (the quantization axis: small-llama, whose sizes K-quants need; an embedder keeps MiniLM)."""
    engine_option: str = ""
    """Where the axis is an engine's own option rather than a package ("quantization", "dtype"):
    each engine gets only the values its registry entry offers (EngineEntry.quantizations,
    .dtypes), and a value's requirement may be empty."""

    def __post_init__(self) -> None:
        if not self.values:
            raise MatrixError(f"Axis {self.name!r} has no values.")
        if self.engine_option not in ENGINE_OPTIONS:
            raise MatrixError(unknown(f"engine_option of axis {self.name!r}", self.engine_option,
                                      [o for o in ENGINE_OPTIONS if o]))
        if self.engine_option:
            for engine in self.engines or ENGINES:
                for value in self.offered(engine):
                    if value not in self.values:
                        raise MatrixError(f"Axis {self.name!r}: engine {engine!r} offers {value!r}"
                                          f", which the axis does not list. Valid: "
                                          f"{', '.join(self.values)}")
        for engine in self.engines:
            if engine not in ENGINES:
                raise MatrixError(unknown(f"engine in axis {self.name!r}", engine, ENGINES))

    def applies_to(self, engine: str) -> bool:
        return not self.engines or engine in self.engines

    def offered(self, engine: str) -> tuple[str, ...]:
        """The values of this engine option that `engine`'s registry entry offers."""
        return getattr(ENGINES[engine], ENGINE_OPTIONS[self.engine_option])

    def values_for(self, engine: str) -> list[str]:
        """The labels a cell of `engine` may take: all, or for an engine option those offered."""
        if self.engine_option:
            return [v for v in self.values if v in self.offered(engine)]
        return list(self.values)


@dataclass(frozen=True)
class Selection:
    """A named set of cells: `default` is what plain `nox` runs, `full` what `nox -s resolve` covers."""

    name: str
    engines: tuple[str, ...]
    axes: tuple[str, ...]
    devices: tuple[str, ...]


@dataclass(frozen=True)
class Known:
    """A declared, understood incompatibility: shown as ⛔ known, not as a regression.

    With `property`, one conformance (or API) property's failure, understood: the rung passes
    with that property shown ⛔ known, and the cell climbs on to bench, its speed row marked."""

    cells: tuple[str, ...]
    """Glob patterns over cell ids."""
    rung: str
    """The rung where it fails."""
    signature: str
    """Glob over the failure's signature (with `property`: over the property's message)."""
    reason: str
    link: str = ""
    property: str = ""
    """The property whose failure is understood, or "": the whole rung fails."""

    def matches(self, cell_id: str, rung: str, signature: str) -> bool:
        return (not self.property and self.covers(cell_id) and rung == self.rung
                and fnmatch.fnmatchcase(signature, self.signature))

    def matches_property(self, rung: str, name: str, message: str) -> bool:
        """Whether it declares this property's failure (the cell is one it covers)."""
        return (rung == self.rung and name == self.property
                and fnmatch.fnmatchcase(message, self.signature))

    def covers(self, cell_id: str) -> bool:
        return any(fnmatch.fnmatchcase(cell_id, pattern) for pattern in self.cells)
