"""The nearest working stack (`nox -s stack -- ID --nearest`): the newest set of versions under
which every engine of a failing stack passes in one environment.

The search is coordinate-wise, as a person bisects by hand: one engine stepped back through its
releases at a time, newest first, the others left to the resolver. Each candidate is resolved
first (cheap); only one that resolves is climbed (at most MAX_CLIMBS). Where no candidate within
MAX_RESOLVES resolves and passes, the answer is the engine that has to live in an environment of
its own: the one whose removal lets the others resolve together, with the conflict that says why.
It never runs in the default run. Stdlib only (the driver's interpreter).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from compat.cell import DEFAULTS, Log, Options
from compat.conflict import Resolver, describe
from compat.index import published_versions
from compat.ladder import now
from compat.matrix import requirement_name
from compat.stack_run import climb_stack, stacks_dir, together_step
from compat.stacks import Stack
from core import layout
from core.stack_records import Nearest, Probe, StackResult, save_stack
from core.timeline import Recorder, Timeline, file_name

MAX_RESOLVES, MAX_CLIMBS = 30, 3
PER_ENGINE = 8
"""Releases of one engine tried, newest first, before the next engine is stepped back."""


def nearest(stack: Stack, *, venv_root: Path, results_dir: Path, why: str = "",
            log: Log = print, options: Options = DEFAULTS) -> Nearest:
    """Search; `why`: the stack's own conflict, quoted where an engine has to live apart."""
    resolve = Resolver(stack, Path(venv_root) / f"{stack.id}.nearest", options, log)
    found = Nearest()
    for engine in stack.engines:
        package = requirement_name(engine.requires_on(stack.device)[0])
        older = [str(v) for v in published_versions(package, stack.python)[::-1][1:PER_ENGINE + 1]]
        for version in older:  # the newest is the stack as it failed
            if resolve.count >= MAX_RESOLVES - 2 * len(stack.engines):
                break  # what is left is for naming the engine that lives apart
            pin = f"{package}=={version}"
            probe = Probe(pins=[pin], resolved=resolve(stack.engines, (pin,)).ok)
            found.probes.append(probe)
            log(f"[{stack.id}] nearest: {pin} {'resolves' if probe.resolved else 'does not resolve'}")
            if probe.resolved and found.climbs < MAX_CLIMBS:
                found.climbs += 1
                candidate = dataclasses.replace(stack, pins=(*stack.pins, pin))
                members = climb_stack(candidate, venv_root=venv_root, results_dir=results_dir,
                                      log=log, options=options, forced_from=stack.id,
                                      lifts_left=0).members
                probe.climbed = True
                probe.passed = all(m.first_failure is None for m in members)
                probe.verdicts = ", ".join(
                    f"{m.cell.engine} {m.first_failure.name if m.first_failure else 'ok'}"
                    for m in members)
                if probe.passed:
                    found.found, found.resolves = [pin], resolve.count
                    return found
    apart = [e for e in stack.engines if resolve(tuple(x for x in stack.engines if x is not e)).ok]
    # of those, the one that does not fit the stack's axes even alone at its newest release (its
    # recent releases pin against them): the others keep their newest
    held_back = [e for e in apart if not resolve((e,), (newest_pin(e, stack),)).ok]
    if apart:
        lives_apart = (held_back or apart)[0]
        found.apart = lives_apart.id
        axes = ", ".join(f"{name} {value}" for name, value in stack.axes) or "the stack's pins"
        found.why = "; ".join(
            ([f"{newest_pin(lives_apart, stack)} does not resolve even alone under {axes}"]
             if lives_apart in held_back else []) + ([f"the others' releases collide with the "
                                                      f"ones it falls back to: {why}"] if why else []))
    found.resolves = resolve.count
    return found


def newest_pin(engine, stack: Stack) -> str:
    """`package==newest` of the engine's own distribution on the stack's device."""
    package = requirement_name(engine.requires_on(stack.device)[0])
    return f"{package}=={published_versions(package, stack.python)[-1]}"


def answer(found: Nearest) -> str:
    """The search's answer in one line."""
    if found.found:
        return f"works with {', '.join(found.found)}"
    if found.apart:
        return (f"no set within {found.resolves} resolves and {found.climbs} climbs: "
                f"{found.apart} in an environment of its own" + (f" ({found.why})" if found.why else ""))
    return f"no set within {found.resolves} resolves and {found.climbs} climbs"


def one_stack(stack: Stack, *, venv_root: Path, results_dir: Path, log: Log = print,
              options: Options = DEFAULTS, search: bool = False) -> StackResult:
    """`nox -s stack -- STACK [--nearest]`: the stack's climb and one-process step, then, where
    an engine fails in it and `search` asks, the nearest working set, kept in its record."""
    started = now()
    timeline = Recorder(Path(results_dir) / layout.RUN / file_name(started),
                        Timeline(started_at=started, selection=f"stack {stack.id}", workers=1,
                                 cells=len(stack.members)))
    climbed = climb_stack(stack, venv_root=venv_root, results_dir=results_dir, log=log,
                          options=options, timeline=timeline)
    climb_s = timeline.now()
    record = together_step(climbed, venv_root=venv_root, results_dir=results_dir, log=log,
                           options=options)
    timeline.write(finished_at=now(), climb_s=climb_s)
    members = climbed.members
    if search and any(m.first_failure for m in members):
        why = describe(record.conflict) if record.conflict else ""
        record.nearest = nearest(stack, venv_root=venv_root, results_dir=results_dir, why=why,
                                 log=log, options=options)
        save_stack(record, stacks_dir(results_dir))
        log(f"[{stack.id}] nearest: {answer(record.nearest)}")
    return record
