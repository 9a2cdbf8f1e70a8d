"""Climb a stack (compat/stacks.py): one environment, every engine in it, then all of them in one
process.

1. The first member resolves and installs the environment with every engine's requirements
   together; each member then climbs import → load → conformance (api where it is a server) in
   it, its record under results/stacks/<stack id>/ like any cell's (reused when nothing it
   depends on changed).
2. Where the stack does not resolve: the conflict as a chain from each engine
   (compat/conflict.py), then the install forced as users force it (the colliding pin lifted as
   a uv override) and climbed the same way, a stack record of its own that says what breaks.
3. The one-process step (incell/together.py), in the registry's order and then in reverse, over
   the members that loaded alone: what fails, or slows, only together.

Stdlib only: this runs in the driver's interpreter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from bench.stats import MIN_PAIRS, paired_ratio_interval
from compat.cell import DEFAULTS, CellRun, Log, Options, cell_env
from compat.conflict import describe, find_conflict, lifted
from compat.ladder import now, run_cell
from compat.reuse import forced as forced_again
from compat.reuse import module_file
from compat.stacks import Stack
from core import layout
from core.proc import run_tool
from core.records import read
from core.results import CellResult, ErrorInfo, machine_info
from core.stack_records import OneProcess, StackInfo, StackResult, Together, load_stack, save_stack
from core.timeline import Recorder

MAX_LIFTS = 3
"""Pins a forced install lifts, one conflict at a time, before it says it still does not resolve."""
BENCH_ROUNDS = 10
"""Pairs of the short bench, alone vs together (bench/stats.MIN_PAIRS)."""
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}
"""Where an engine is slower together, the first order runs again with OpenMP's threads told to
sleep rather than spin-wait between parallel regions (on both sides of each pair): a slowdown
that goes away there is named as spinning OpenMP threads."""


def stacks_dir(results_dir: Path) -> Path:
    return Path(results_dir) / layout.STACKS


def info(stack: Stack, forced_from: str = "") -> StackInfo:
    return StackInfo(id=stack.id, name=stack.name, engines=[e.id for e in stack.engines],
                     axes=dict(stack.axes), device=stack.device, python=stack.python,
                     requirements=[*stack.requested, *stack.harness],
                     overrides=list(stack.overrides), why=stack.why, forced_from=forced_from)


@dataclass
class Climbed:
    """A stack whose members climbed: what its one-process step needs."""

    stack: Stack
    record: StackResult
    members: list[CellResult]
    forced: Climbed | None = None
    """The same stack installed by force, where it did not resolve."""


def climb_stack(stack: Stack, *, venv_root: Path, results_dir: Path, log: Log = print,
                options: Options = DEFAULTS, timeline: Recorder | None = None,
                forced_from: str = "", lifts_left: int = MAX_LIFTS) -> Climbed:
    """Step 1 (and 2 where it does not resolve): the members climb in the stack's venv; the
    record is written without its one-process step (together_step adds it). A forced install
    that does not resolve either is forced again, one more pin lifted, `lifts_left` times."""
    record = StackResult(stack=info(stack, forced_from), machine=machine_info(), started_at=now())
    folder = stacks_dir(results_dir) / stack.id
    venv = Path(venv_root) / stack.id
    climbing = dataclasses.replace(options, last_rung="api")
    members: list[CellResult] = []
    for cell in stack.members:
        members.append(run_cell(cell, venv=venv, results_dir=folder, log=log, options=climbing,
                                timeline=timeline, shared=members[0] if members else None))
    record.members = [m.cell.id for m in members]
    climbed = Climbed(stack, record, members)
    resolved = members[0].rung("resolve")
    if resolved is not None and resolved.status == "fail" and resolved.error is not None \
            and resolved.error.type == "ResolutionError":
        record.conflict = find_conflict(stack, resolved.error.text, options=options, log=log,
                                        work=venv.parent / f"{venv.name}.conflict")
        lift = tuple(o for o in lifted(record.conflict) if o not in stack.overrides)
        if lift and lifts_left > 0:
            forced = stack.forced(lift)
            log(f"[{stack.id}] forcing the install as users do: override {', '.join(lift)} "
                f"-> {forced.id}")
            record.forced = forced.id
            climbed.forced = climb_stack(forced, venv_root=venv_root, results_dir=results_dir,
                                         log=log, options=options, timeline=timeline,
                                         forced_from=forced_from or stack.id,
                                         lifts_left=lifts_left - 1)
    record.finished_at = now()
    keep_together(record, stacks_dir(results_dir) / f"{stack.id}.json",
                  together_key(stack, members, BENCH_ROUNDS))
    save_stack(record, stacks_dir(results_dir))
    verdicts = ", ".join(f"{m.cell.engine} {m.first_failure.name if m.first_failure else 'ok'}"
                         for m in members)
    log(f"[{stack.id}] climbed: {verdicts}"
        + (f"; conflict: {describe(record.conflict)}" if record.conflict else ""))
    return climbed


def keep_together(record: StackResult, path: Path, key: str) -> None:
    """The earlier record's one-process step, kept in the climb's record where it was measured
    on the same inputs (`key`), so that writing the climb does not drop what together_step
    would then reuse (a warm run measured it again each time: about 2 minutes)."""
    earlier = load_stack(path) if path.is_file() else None
    if earlier is not None and earlier.key == key and earlier.together:
        record.key, record.together = earlier.key, earlier.together


def together_key(stack: Stack, members: list[CellResult], rounds: int) -> str:
    """The one-process step's inputs: each member's inputs, its own code, the rounds."""
    code = module_file("incell.together").read_bytes()
    parts = [m.inputs.get("key", "") for m in members] + [hashlib.sha256(code).hexdigest(),
                                                          str(rounds), stack.id]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def together_step(climbed: Climbed, *, venv_root: Path, results_dir: Path, log: Log = print,
                  options: Options = DEFAULTS, rounds: int = BENCH_ROUNDS) -> StackResult:
    """Step 3, in both orders, over the members that loaded alone (of the forced install too,
    where there is one); an earlier record of the same inputs is reused. Run on a quiet
    machine: its short bench is paired, not alone."""
    if climbed.forced is not None:
        together_step(climbed.forced, venv_root=venv_root, results_dir=results_dir, log=log,
                      options=options, rounds=rounds)
    stack, record, members = climbed.stack, climbed.record, climbed.members
    ready = [m for m in members if getattr(m.rung("load"), "status", "") == "pass"]
    if len(ready) < 2:
        log(f"[{stack.id}] one process: not run ({len(ready)} engine(s) loaded alone)")
        return record
    record.key = together_key(stack, members, rounds)
    path = stacks_dir(results_dir) / f"{stack.id}.json"
    earlier = load_stack(path) if path.is_file() else None
    if earlier is not None and earlier.key == record.key and earlier.together \
            and not forced_again(stack.id, options.force):
        record.together = earlier.together
        log(f"[{stack.id}] one process: reused (nothing it depends on changed)")
    else:
        cell = next(c for c in stack.members if c.engine.id == ready[0].cell.engine)
        run = CellRun(cell=cell, venv=Path(venv_root) / stack.id, options=options, log=log)
        specs = [f"{m.cell.engine}={m.cell.fixtures[0]}" for m in ready]
        first = one_process(run, specs, rounds, log)
        record.together = [first, one_process(run, specs[::-1], 0, log)]
        if any(slower(part) for part in first.engines):  # ask the cause: spinning OpenMP threads?
            record.together.append(one_process(run, specs, rounds, log, PASSIVE))
    save_stack(record, stacks_dir(results_dir))
    return record


def paired_ratio(part: Together) -> tuple[float, float, float] | None:
    """together ÷ alone over the bench's pairs and its ~95% interval; None with too few pairs."""
    if len(part.together_s) < MIN_PAIRS or len(part.alone_s) != len(part.together_s):
        return None
    return paired_ratio_interval(part.together_s, part.alone_s)


def slower(part: Together) -> bool:
    """A slowdown together: enough pairs, and a paired interval above 1."""
    ratio = paired_ratio(part)
    return ratio is not None and ratio[1] > 1


def one_process(run: CellRun, specs: list[str], rounds: int, log: Log,
                env: dict[str, str] | None = None) -> OneProcess:
    """incell/together.py over `specs` in this order (with `env` on both sides of each pair);
    a process that ends without its record is the record's error."""
    out = run.work / f"together-{'-'.join(s.split('=')[0] for s in specs)}{'-env' if env else ''}.json"
    out.unlink(missing_ok=True)
    order = [s.split("=")[0] for s in specs]
    limit = run.limits.conformance
    tool = run_tool([str(run.python), "-m", "incell.together",
                     *(a for s in specs for a in ("--engine", s)), "--rounds", str(rounds),
                     "--device", run.cell.device, "--out", str(out)], limit,
                    env=cell_env(run) | (env or {}))
    if out.is_file():
        record = read(OneProcess, json.loads(out.read_text(encoding="utf-8")))
        record.env = dict(env or {})
        log(f"[{run.cell.stack}] one process ({' → '.join(order)}"
            f"{''.join(f', {k}={v}' for k, v in record.env.items())}): {record.duration_s:.0f} s")
        return record
    kind = "Timeout" if tool.timed_out else "ProcessCrashed"
    message = (f"the one-process step ran past {limit:.0f} s" if tool.timed_out else
               f"the one-process step ended without its record (exit {tool.returncode})")
    log(f"[{run.cell.stack}] one process ({' → '.join(order)}): {message}")
    return OneProcess(order=order, error=ErrorInfo.from_message(kind, message, tool.output[-6000:]),
                      env=dict(env or {}))
