"""reports/ENGINES.md: one section per engine: what it declares, how close it is to the
reference, and the versions each of its cells ran."""

from __future__ import annotations

from core.details import ImportDetail, PropertyResult
from core.results import CellResult
from engines import ENGINES, NO_CUDA_CELL
from pages.markdown import FAIL, KINDS, NOT_RUN, PASS, engine_label, header, table

REFERENCE = {"generation": "transformers (pinned, fixtures/requirements-parity.txt), greedy ids",
             "embedding": "sentence-transformers (torch) in the same cell, cosine per text"}
PARITY = {"generation": ("greedy_parity", "logprobs"), "embedding": ("reference_parity",)}
CAPABILITIES = {  # the Capabilities fields that mean something for each kind
    "generation": ("streaming", "chat", "seeded_sampling", "stop_strings", "stop_string_kept",
                   "logprobs", "logits", "token_input", "min_new_tokens", "stop_token_ids",
                   "batching", "batch_decode", "lora"),
    "embedding": ("batching", "whitespace_insensitive", "empty_string"),
}


def declared(results: list[CellResult]) -> ImportDetail | None:
    """What the adapter class declares, from the first cell whose import rung recorded it."""
    for r in results:
        rung = r.rung("import")
        if rung is not None and rung.detail is not None and rung.detail.capabilities is not None:
            return rung.detail
    return None


def tolerance(kind: str, info: ImportDetail | None) -> str:
    if info is not None and kind == "generation" and info.parity_top_k is not None:
        text = (f"ids equal; at a first divergence each side's token in the other's "
                f"top-{info.parity_top_k}, equal lengths")
        if info.logprob_tolerance is not None and info.capabilities.logprobs:
            text += f"; log-probabilities within {info.logprob_tolerance:g} nats"
        if not (info.capabilities.logits or info.capabilities.logprobs):
            text += ("; it gives neither logits nor log-probabilities, so what is checked is its "
                     "ids: equal, or at a divergence its token in the reference's top-k (the "
                     "reference's token in its own top-k cannot be read)")
        return text
    if info is not None and kind == "embedding" and info.parity_tolerance is not None:
        return f"cosine ≥ 1 − {info.parity_tolerance:g}"
    return "(not recorded: no cell imported the engine)"


def parity_cells(prop: PropertyResult | None) -> list[str]:
    """[status, what it measured] of one parity property in one cell."""
    if prop is None:
        return [NOT_RUN, "not run"]
    if prop.status == "skip":
        return [NOT_RUN, prop.message[:300]]
    symbol = {"pass": PASS, "fail": FAIL}.get(prop.status, NOT_RUN)
    notes = "; ".join(f"{case}: {note}" for case, note in sorted(prop.notes.items()))
    return [symbol, notes or prop.message[:300]]


def parity_rows(results: list[CellResult], kind: str) -> list[list[str]]:
    rows = []
    for r in results:
        props = r.properties()
        if PARITY[kind][0] not in props:
            failed = r.first_failure
            why = f"not reached: {failed.name} failed" if failed else "not run"
            rows.append([f"`{r.cell.id}`", *[NOT_RUN, why] * len(PARITY[kind])])
            continue
        cells = [c for name in PARITY[kind] for c in parity_cells(props.get(name))]
        rows.append([f"`{r.cell.id}`", *cells])
    return rows


def parity_headers(kind: str) -> list[str]:
    return ["cell", *[h for name in PARITY[kind] for h in (f"`{name}`", "measured")]]


def engine_section(engine: str, results: list[CellResult]) -> list[str]:
    kind = results[0].cell.kind
    info = declared(results)
    caps = info.capabilities if info is not None else None
    entry = ENGINES.get(engine)
    devices = list(entry.devices) if entry is not None else info.devices if info is not None else []
    dtypes = ", ".join(entry.dtypes) if entry is not None else "(not registered)"
    no_cuda = f" · no CUDA cell: {NO_CUDA_CELL[engine]}" if engine in NO_CUDA_CELL else ""
    lines = [f"### `{engine}`", "",
             f"Fixtures: {', '.join(results[0].cell.fixtures)} · devices: "
             f"{', '.join(devices) or '(not recorded)'} · dtypes: {dtypes}{no_cuda}", ""]
    if caps is not None:
        why = info.unsupported
        flags = [[name, value if isinstance(value, str) else PASS if value else NOT_RUN,
                  why.get(name, "")] for name in CAPABILITIES[kind] for value in [getattr(caps, name)]]
        lines += [table(flags, ["capability", "declared", "why not"]), ""]
    for name, dev in (info.deviations if info is not None else {}).items():
        lines += [f"- Declared deviation from `{name}`: {dev.reason}"]
    lines += [f"Parity reference: {REFERENCE[kind]}. Tolerance: {tolerance(kind, info)}.", "",
              table(parity_rows(results, kind), parity_headers(kind)), ""]
    loads = load_rows(results)
    if loads:
        lines += ["Load (creating the adapter to a loaded model) and the first call after it "
                  "(one token, or one text), per fixture:", "",
                  table(loads, ["cell", "ran", "fixture", "load", "first call"]), ""]
    return lines


def load_rows(results: list[CellResult]) -> list[list[str]]:
    rows = []
    for r in results:
        rung = r.rung("load")
        if rung is None or rung.detail is None:
            continue
        rows += [[f"`{r.cell.id}`", engine_label(r), name, f"{f.load_s:.1f} s",
                  "–" if f.first_call_s is None else f"{f.first_call_s:.2f} s"]
                 for name, f in rung.detail.fixtures.items()]
    return rows


def engines_page(results: list[CellResult], problems: list[str]) -> str:
    lines = header("Engines", results, problems)
    lines += ["Each engine's declared capabilities (a capability it does not declare is skipped "
              "in the conformance suite, with the reason shown here), its parity tolerance "
              "against the reference, and the parity each of its cells measured. Versions per "
              "cell: [COMPATIBILITY.md](COMPATIBILITY.md#versions-each-cell-ran).", ""]
    for kind, heading in KINDS:
        engines = sorted({r.cell.engine for r in results if r.cell.kind == kind})
        if engines:
            lines += [f"## {heading}", ""]
        for engine in engines:
            lines += engine_section(engine, [r for r in results if r.cell.engine == engine])
    return "\n".join(lines).rstrip() + "\n"
