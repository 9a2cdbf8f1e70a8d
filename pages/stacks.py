"""COMPATIBILITY.md's Stacks section (and the site's page per stack): several engines in one
environment, each engine's verdict inside it, the conflict chain where the stack does not
resolve with what the forced install breaks, and what the one-process step found only together.
Every figure is derived here from the records' raw samples (core/stack_records.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from bench.stats import distinguishable
from compat.conflict import describe
from compat.matrix import Matrix
from compat.nearest import answer
from compat.stack_run import paired_ratio, slower
from core import layout
from core.results import CellResult, load_results
from core.stack_records import OneProcess, StackResult, Together, load_stack
from pages.markdown import FAIL, NOT_RUN, PASS, Footnotes, code, table
from pages.verdicts import verdict


@dataclass
class StackView:
    """A stack's record with its members' records beside it."""

    record: StackResult
    members: list[CellResult] = field(default_factory=list)
    forced: StackView | None = None

    @property
    def id(self) -> str:
        return self.record.stack.id

    def member(self, engine: str) -> CellResult | None:
        return next((m for m in self.members if m.cell.engine == engine), None)


def load_stacks(result_dirs: list[Path]) -> tuple[list[StackView], list[str]]:
    """Every stack record in the folders' stacks/, its members and its forced install beside it
    (a forced install is shown under the stack it forces), and the files that could not be read."""
    views, problems = {}, []
    for folder in layout.under(result_dirs, layout.STACKS):
        for path in sorted(folder.glob("*.json")):
            try:
                record = load_stack(path)
            except (ValueError, TypeError, KeyError) as exc:
                problems.append(f"{path.name}: {exc}")
                continue
            members, unreadable = load_results(sorted((folder / record.stack.id).glob("*.json")))
            problems += unreadable
            order = {m: i for i, m in enumerate(record.members)}
            members.sort(key=lambda m: order.get(m.cell.id, len(order)))
            views[record.stack.id] = StackView(record, members)
    for view in views.values():
        view.forced = views.get(view.record.forced)
    for view in views.values():  # a forced install forced again: the last one stands for it
        while view.forced is not None and view.forced.forced is not None:
            view.forced = view.forced.forced
    shown = [v for v in views.values() if not v.record.stack.forced_from]
    return sorted(shown, key=lambda v: v.id), problems


def climbed(member: CellResult) -> CellResult:
    """The member as the page judges it: a member never climbs the bench rung (the one-process
    step measures it), so that rung's "not run" is left out."""
    return dataclasses.replace(member, rungs=[r for r in member.rungs if r.name != "bench"])


def member_verdicts(view: StackView, notes: Footnotes, matrix: Matrix | None) -> str:
    return " · ".join(f"{m.cell.engine} {verdict(climbed(m), notes, matrix)}"
                      for m in view.members) or "(no member climbed)"


def only_together(view: StackView, part: Together) -> list[str]:
    """The subset's properties that passed in the engine's own climb and fail together."""
    member = view.member(part.engine)
    alone = member.properties() if member is not None else {}
    return sorted(name for name, p in part.properties.items()
                  if p.status == "fail" and getattr(alone.get(name), "status", "") == "pass")


def slowdown(part: Together) -> str:
    """together ÷ alone over the pairs, with its interval and pair count; "" with too few."""
    found = paired_ratio(part)
    if found is None:
        return ""
    ratio, low, high = found
    told = "slower" if ratio > 1 else "faster"
    mark = f"**×{ratio:.2f} {told}**" if distinguishable(low, high) else f"×{ratio:.2f} (no difference)"
    return f"{mark} [{low:.2f}, {high:.2f}], {len(part.together_s)} pairs"


def findings(view: StackView) -> list[str]:
    """What the one-process step found, in words: patches, OpenMP runtimes, failures and
    slowdowns that appear only together, the cause of a slowdown where a run asked it, crashes."""
    found = []
    plain = [run for run in view.record.together if not run.env]
    for run in plain:
        order = " → ".join(run.order)
        if run.error is not None:
            found.append(f"{FAIL} the process died ({order}): {code(run.error.signature)}")
        for imp in run.imports:
            for patch in imp.patched:
                found.append(f"importing {imp.engine} patched `{patch.target}` "
                             f"(with `{patch.by}`; order {order})")
            if imp.error is not None:
                found.append(f"{FAIL} {imp.engine} fails to import after "
                             f"{', '.join(run.order[:run.order.index(imp.engine)]) or 'nothing'}: "
                             f"{code(imp.error.signature)}")
        for part in run.engines:
            if part.error is not None:
                found.append(f"{FAIL} {part.engine} fails together ({order}): "
                             f"{code(part.error.signature)}")
            bad = only_together(view, part)
            if bad:
                found.append(f"{FAIL} {part.engine} fails {', '.join(bad)} only together ({order})")
            ratio = paired_ratio(part)
            if ratio is not None and distinguishable(*ratio[1:]):
                found.append(f"{part.engine}: {slowdown(part)} together than alone ({order})"
                             + cause(view, run, part.engine))
    runtimes = sorted({lib for run in plain for imp in run.imports for lib in imp.openmp})
    if len(runtimes) > 1:
        found.append(f"{len(runtimes)} OpenMP runtimes in one process: "
                     + ", ".join(f"`{lib}`" for lib in runtimes))
    if view.record.together and not found:
        found.append(f"{PASS} nothing appears only together")
    return found


def cause(view: StackView, run: OneProcess, engine: str) -> str:
    """What the run with OpenMP's threads told to sleep (stack_run.PASSIVE) says of a slowdown:
    gone there, it was spinning OpenMP threads; still there, it was not."""
    asked = next((r for r in view.record.together if r.env and r.order == run.order), None)
    part = next((p for p in asked.engines if p.engine == engine), None) if asked else None
    if part is None or paired_ratio(part) is None:
        return ""
    setting = " ".join(f"{k}={v}" for k, v in asked.env.items())
    if not slower(part):
        return (f"; with `{setting}` it goes away ({slowdown(part).replace('**', '')}): "
                "OpenMP threads spin-waiting between parallel regions take the cores it needs")
    return f"; with `{setting}` it stays ({slowdown(part).replace('**', '')}): not spinning threads"


def section(result_dirs: list[Path], notes: Footnotes, matrix: Matrix | None) -> list[str]:
    """## Stacks: a row per stack, then per stack its one-process detail."""
    views, _ = load_stacks(result_dirs)
    if not views:
        return []
    lines = ["## Stacks", "",
             "Several engines in one environment (docs/stacks.md): resolved "
             "and installed once with every engine's requirements together; each engine's "
             "verdict is its climb inside that environment. **One process**: all of them "
             "imported, loaded and run together (in the registry's order, then in reverse), "
             "each running greedy parity and batch invariance (generation) or embedding parity, "
             "and a short bench paired round by round with a process that holds it alone.", ""]
    rows = []
    for view in views:
        conflict = view.record.conflict
        env = (f"{FAIL} does not resolve: {describe(conflict)}" if conflict else
               member_verdicts(view, notes, matrix))
        if view.forced is not None:
            env += (f"<br>forced ({', '.join(f'`{o}`' for o in view.forced.record.stack.overrides)}"
                    f" overridden): {member_verdicts(view.forced, notes, matrix)}")
        if view.record.nearest is not None:
            env += f"<br>nearest working set: {answer(view.record.nearest)}"
        together = "<br>".join(findings(view.forced or view) or
                               [f"{NOT_RUN} not run: fewer than two engines loaded"])
        rows.append([f"`{view.id}`", env, together])
    lines += [table(rows, ["stack", "each engine in it", "one process"]), ""]
    for view in views:
        lines += detail(view)
    return lines


def detail(view: StackView, heading: bool = True) -> list[str]:
    """One stack's one-process runs, engine by engine; uv's explanation where it did not resolve."""
    lines = [f"### `{view.id}`", ""] if heading else []
    if view.record.stack.why:
        lines += [view.record.stack.why, ""]
    conflict = view.record.conflict
    if conflict is not None:
        lines += [f"Conflict, found in {conflict.resolves} resolves (each engine alone, then in "
                  f"pairs): {describe(conflict)}", "",
                  "<details><summary>uv's own explanation</summary>", "", "```",
                  *conflict.text.strip().splitlines()[-60:], "```", "", "</details>", ""]
    found = view.record.nearest
    if found is not None:
        rows = [[", ".join(f"`{p}`" for p in probe.pins), PASS if probe.resolved else FAIL,
                 (PASS if probe.passed else f"{FAIL} {probe.verdicts}") if probe.climbed else ""]
                for probe in found.probes]
        lines += [f"Nearest working set (`--nearest`, one engine stepped back at a time, newest "
                  f"first): {answer(found)}.", "",
                  table(rows, ["pinned", "resolves", "every engine passes"]), ""]
    shown = view.forced or view
    if view.forced is not None:
        lines += [f"Forced install `{shown.id}`: the same stack with "
                  f"{', '.join(f'`{o}`' for o in shown.record.stack.overrides)} as uv overrides.",
                  ""]
    for run in shown.record.together:
        lines += one_process_table(shown, run)
    return lines


def one_process_table(view: StackView, run: OneProcess) -> list[str]:
    rows = []
    parts = {p.engine: p for p in run.engines}
    for imp in run.imports:
        part = parts.get(imp.engine)
        props = ", ".join(f"{n} {PASS if p.status == 'pass' else FAIL if p.status == 'fail' else NOT_RUN}"
                          for n, p in sorted(part.properties.items())) if part else ""
        error = imp.error or (part.error if part else None)
        rows.append([imp.engine, f"{imp.seconds:.1f}", ", ".join(f"`{x}`" for x in imp.openmp),
                     "<br>".join(f"`{p.target}`" for p in imp.patched),
                     f"{FAIL} {code(error.signature)}" if error else props,
                     f"{slowdown(part) or f'{len(part.together_s)} pairs: too few'}; {part.call}"
                     if part and part.together_s else ""])
    setting = "".join(f", `{k}={v}`" for k, v in run.env.items())
    head = f"**One process, {' → '.join(run.order)}{setting}** ({run.duration_s:.0f} s)"
    if run.error is not None:
        head += f": {FAIL} {code(run.error.signature)}"
    return [head, "",
            table(rows, ["engine", "import s", "OpenMP runtimes after its import",
                         "patched on import", "conformance subset, together",
                         "together ÷ alone (time per call)"]), ""]


def stack_markdown(view: StackView, matrix: Matrix | None = None) -> str:
    """The site's page of one stack: each engine's verdict in it, the conflict and the forced
    install, the one-process runs, and the command that reproduces it."""
    notes = Footnotes()
    info = view.record.stack
    lines = [f"# Stack `{view.id}`", "",
             f"Engines: {', '.join(info.engines)} · axes: "
             f"{', '.join(f'{k} {v}' for k, v in info.axes.items()) or 'none'} · {info.device}", "",
             f"Each engine in it: {member_verdicts(view, notes, matrix)}", ""]
    if view.forced is not None:
        lines += [f"Forced install: {member_verdicts(view.forced, notes, matrix)}", ""]
    lines += ["What appears only together:", "", *(f"- {f}" for f in findings(view.forced or view)
                                                   or ["(the one-process step did not run)"]), ""]
    lines += detail(view, heading=False)
    lines += ["Reproduce it:", "", "```", f"nox -s stack -- {view.id}", "```", ""]
    if notes.notes:
        lines += ["## Footnotes", "", *notes.render()]
    return "\n".join(lines)
