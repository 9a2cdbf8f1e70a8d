"""What a cell's outcome reads as, shared by every page and the site: its verdict (✅ ⚠️ ❌ ⛔ ➖)
and the cause behind it, which results belong to the matrix, a server's cell, the quantized
cells in order and their quality check's status, a conformance property's entry."""

from __future__ import annotations

from compat.matrix import Matrix, requirement_name
from core.details import PropertyResult
from core.results import CellResult, Rung
from core.signatures import decisive_chain
from engines import ENGINES, QUANTIZATIONS
from pages.markdown import (
    CAVEAT,
    FAIL,
    KNOWN,
    NOT_RUN,
    PASS,
    Footnotes,
    known_failures,
)


def cause_of(rung: Rung) -> str:
    """One line a reader can act on: the resolver's explanation, or the error's first line."""
    if rung.reason and rung.error and rung.error.type != "Fallback":
        return rung.reason
    if rung.error is not None and rung.error.type == "Fallback":
        return " ".join(rung.error.text.split())[:400]
    return rung.error.message if rung.error else rung.reason


def override_note(result: CellResult, passed: bool) -> str:
    """What an override cell says: is a lifted pin needed, does it work without a removed package."""
    lifted, removed = [], []
    for override in result.cell.overrides:
        name = requirement_name(override)
        (removed if "never" in override.partition(";")[2] else lifted).append(name)
    if passed:
        notes = [f"the {n} pin looks unnecessary: every rung passes" for n in lifted]
        notes += [f"passes without {n}" for n in removed]
    elif lifted:  # one sentence, whatever the number of pins lifted: "... fails at <rung>"
        pins = " and ".join(lifted)
        notes = [f"the {pins} pin{'s are' if len(lifted) > 1 else ' is'} needed: fails at"]
    else:
        notes = [f"fails even without {', '.join(removed)} at"]
    return "; ".join(notes)


def verdict(result: CellResult, notes: Footnotes, matrix: Matrix | None = None) -> str:
    """The cell's symbol: first failing rung, known incompatibility, caveat or not-run reason."""
    cid, overridden = result.cell.id, bool(result.cell.overrides)
    caveats = []
    for rung in result.rungs:
        if rung.status == "pass" and rung.error is not None:  # e.g. a silent fallback
            caveats.append(f"{CAVEAT} fell back {caveat_refs(result, rung, notes)}")
    understood = known_failures(result)
    if understood:  # climbed on over failures compat/matrix.toml declares understood
        caveats.append(f"{KNOWN} known: {', '.join(f'`{n}`' for n in understood)} "
                       f"(see CONFORMANCE.md)")
    failed = result.first_failure
    if failed is not None:
        sig = failed.error.signature if failed.error else failed.reason or "failed"
        text = failed.error.text if failed.error else ""
        known = matrix.known_for(cid, failed.name, sig) if matrix else None
        if known is not None:
            cause = f"known: {known.reason}" + (f" ({known.link})" if known.link else "")
            head = f"{KNOWN} {failed.name} {notes.ref(sig, cid, failed.name, text, cause)}"
        else:
            ref = notes.ref(sig, cid, failed.name, text, cause_of(failed))
            prefix = f"{override_note(result, passed=False)} " if overridden else ""
            head = f"{FAIL} {prefix}{failed.name} {ref}"
        return " ".join([head, *caveats])
    not_run = next((r for r in result.rungs if r.status in ("not_run", "not_reached")
                    and not r.not_applicable), None)
    if not_run is not None:
        passed = [r.name for r in result.rungs if r.status == "pass"]
        head = caveats[0] if caveats else (f"{PASS} {passed[-1]}" if passed else "")
        return f"{head} · {NOT_RUN} {not_run.name}: {not_run.reason}".lstrip(" ·")
    if caveats:
        return " ".join(caveats)
    if overridden:
        return f"{CAVEAT} {override_note(result, passed=True)}"
    return PASS


def caveat_refs(result: CellResult, rung: Rung, notes: Footnotes) -> str:
    """A footnote per fallback the rung records, the engine's own package first, each keyed by
    its own reason (cells share a footnote only where the reason is the same)."""
    fallbacks = rung.detail.fallbacks if rung.name == "resolve" and rung.detail else []
    if not fallbacks:
        return notes.ref(rung.error.signature, result.cell.id, rung.name, rung.error.text,
                         cause_of(rung))
    order = {name: i for i, name in enumerate(result.cell.key_packages)}
    refs = []
    for f in sorted(fallbacks, key=lambda f: order.get(f.package, len(order))):
        why = " ".join(f.why.split())
        cause = decisive_chain(why, f.package) or why[:400]  # the full text stays in the result
        refs.append(notes.ref(f"Fallback: {f.package} {f.newest} → {f.resolved}", result.cell.id,
                              rung.name, f.why, cause, key=("fallback", f.package, f.newest,
                                                            f.resolved, why)))
    return "".join(refs)


def foreign(results: list[CellResult], matrix: Matrix | None) -> tuple[list[CellResult], list[str]]:
    """Results of cells the matrix does not hold (another matrix, or a cell since removed):
    named and left out, never merged silently. A cell run in an existing environment (nox -s
    here) is the matrix's engine in an environment the matrix does not make: it is kept."""
    if matrix is None:
        return results, []
    ids = {c.id for c in matrix.cells}
    kept = [r for r in results if r.cell.id in ids or r.cell.existing]
    return kept, [f"{r.cell.id}.json: cell {r.cell.id!r} is not in the matrix (a result of "
                  "another matrix, or of a cell since removed); skipped"
                  for r in results if r not in kept]


def key_versions(result: CellResult) -> str:
    """Versions of what the cell is about: the engine's packages and every axis."""
    wanted = dict.fromkeys([*result.cell.key_packages, "torch"])
    return ", ".join(f"{n} {result.versions[n]}" for n in wanted if n in result.versions)


def is_server(result: CellResult) -> bool:
    """A server's cell: its engine is registered with the HTTP transport."""
    entry = ENGINES.get(result.cell.engine)
    return entry is not None and entry.transport == "http"


PROPERTY = "quantization_quality"
"""The property whose figures QUANTIZATION.md shows, and whose status COMPATIBILITY.md shows beside each
quantized cell."""


def in_order(results: list[CellResult]) -> list[CellResult]:
    """The quantized cells by engine, then from the unquantized to the smallest format."""
    rank = {q: i for i, q in enumerate(QUANTIZATIONS)}
    return sorted((r for r in results if r.quantization is not None),
                  key=lambda r: (r.cell.engine, r.cell.device != "cpu",
                                 rank.get(r.quantization, len(rank))))


def undecided(name: str, prop) -> str:
    """Why a passing property's deciding measurement did not run ("" where it did): a pass with
    nothing behind it reads ➖ "not decided", never ✅. text_quality is decided by the
    perplexity against the reference's; with none (an engine that gives no log-probabilities at
    every position), its answers alone decide nothing."""
    if name != "text_quality" or prop is None or prop.status != "pass":
        return ""
    texts = [f.text for f in prop.figures.values() if f.text is not None]
    if not texts or any(t.perplexity is not None for t in texts):
        return ""
    text = texts[0]
    return (f"not decided: no perplexity ({text.no_perplexity or 'none measured'}); "
            f"{text.answers_same}/{text.answers} greedy answers the reference's")


def status_of(result: CellResult, name: str = PROPERTY) -> str:
    """A quality property's verdict in one cell (quantization_quality, or text_quality): the
    cell's first failure where the property never ran."""
    rung = result.rung("conformance")
    prop = rung.detail.properties.get(name) if rung is not None and rung.detail else None
    if prop is None:
        failed = result.first_failure
        skipped = next((r for r in result.rungs if r.status == "not_run" and r.reason), None)
        return f"{FAIL} {failed.name}: `{failed.error.signature}`" if failed and failed.error \
            else f"{NOT_RUN} {skipped.reason}" if skipped else f"{NOT_RUN} not measured"
    if prop.status == "fail":
        return f"{FAIL} {prop.message.split(']', 1)[-1].strip()[:160]}"
    if prop.status == "known" and prop.known is not None:
        return f"{KNOWN} {known_text(prop)}"
    why = undecided(name, prop)
    if why:
        return f"{NOT_RUN} {why[:120]}"
    return PASS if prop.status == "pass" else f"{NOT_RUN} {prop.message[:80]}"


def property_entry(result: CellResult, name: str, notes: Footnotes,
                   suite: str = "conformance") -> str:
    """A property's symbol in a cell, and a footnote for anything but a pass; `suite` names the
    rung whose record holds it ("conformance", or "api" for the API-surface suite)."""
    cid = result.cell.id
    rung = result.rung(suite)
    if rung is None or rung.status in ("not_run", "not_reached"):
        failed = result.first_failure
        why = (f"not reached: {failed.name} failed (see COMPATIBILITY.md)" if failed
               else f"not run: {rung.reason if rung else f'no {suite} rung'}")
        return f"{NOT_RUN} {notes.ref(why, cid, suite, '')}"
    prop = result.properties(suite).get(name)
    if prop is None:
        return f"{NOT_RUN} {notes.ref('not run in this cell', cid, name, '')}"
    why = undecided(name, prop)
    if why:
        return f"{NOT_RUN} {notes.ref(f'{name}: {why}', cid, name, '')}"
    if prop.status == "pass":
        return PASS
    if prop.status == "deviation":
        dev = prop.deviation
        why = f"declared deviation: {dev.reason}" + (f" ({dev.link})" if dev.link else "")
        return f"{CAVEAT} {notes.ref(f'{name}: {why}', cid, name, prop.message)}"
    if prop.status == "known" and prop.known is not None:
        return f"{KNOWN} {notes.ref(f'{name}: {known_text(prop)}', cid, name, prop.message)}"
    message = prop.message
    if prop.status == "skip":
        return f"{NOT_RUN} {notes.ref(f'{name}: {message}', cid, name, '')}"
    failing = [case for case, status in prop.cases.items() if status == "fail"]
    cases = f" (failing: {', '.join(failing)})" if len(failing) > 1 else ""
    return f"{FAIL} {notes.ref(f'{name}: {first_line(message)[:200]}{cases}', cid, name, message)}"


def known_text(prop: PropertyResult) -> str:
    """A property's failure compat/matrix.toml declares understood: its first line, why, and the
    upstream reference."""
    why = prop.known.reason + (f" ({prop.known.link})" if prop.known.link else "")
    return f"known failure: {first_line(prop.message.split(']', 1)[-1])[:160]}; {why}"


def first_line(message: str) -> str:
    """The failure's own words, without pytest's assertion introspection below them."""
    return message.strip().splitlines()[0] if message.strip() else ""
