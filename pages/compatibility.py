"""reports/COMPATIBILITY.md: the matrix of verdicts, one section per kind of cell (in-process
engines, servers, quantizations, the engines' own releases), each failure's footnote, the known
incompatibilities, and what changed since the previous run."""

from __future__ import annotations

from pathlib import Path

from compat.bisect import boundary, load_records
from compat.matrix import Matrix
from core.results import RUNGS, CellResult
from pages.markdown import (
    FAIL,
    KINDS,
    LEGEND,
    NOT_RUN,
    PASS,
    Footnotes,
    code,
    engine_label,
    header,
    table,
)
from pages.stacks import section as stacks_section
from pages.verdicts import in_order, is_server, key_versions, status_of, verdict
from pages.watch import section as watch_section

WIDE = 6  # more environment columns than this and the matrix is drawn one row per cell










def callouts(results: list[CellResult], matrix: Matrix | None) -> list[str]:
    """Undeclared failures, for the top (declared ones that now pass: pages/watch.py)."""
    new = []
    for r in results:
        failed = r.first_failure
        if failed is None:
            continue
        sig = failed.error.signature if failed.error else failed.reason
        if matrix is None or matrix.known_for(r.cell.id, failed.name, sig) is None:
            new.append(f"- `{r.cell.id}` fails at **{failed.name}**: {code(sig)}")
    if new:
        return [f"**{len(new)} failure(s) not declared in compat/matrix.toml `[[known]]`** "
                "(new, or not yet understood):", "", *new, ""]
    return ["No undeclared failures.", ""]


def bisections(result_dirs: list[Path]) -> list[str]:
    records = load_records(result_dirs)
    if not records:
        return []
    rows = [[f"`{r.cell}`", r.package, boundary(r.boundary),
             f"{r.failing_rung}: `{r.signature}`" if r.failing_rung else "",
             f"{len(r.probes)} / {r.max_probes} over {r.releases_considered} releases",
             r.boundary.note] for r in records]
    head = ["cell", "package", "boundary", "fails at", "probes", "note"]
    return ["## Bisections", "", "`nox -s bisect -- PACKAGE CELL`: each probe climbs the same "
            "rungs with the package pinned to one release.", "", table(rows, head), ""]


def rung_mark(result: CellResult, name: str) -> str:
    rung = result.rung(name)
    if rung is None:
        return NOT_RUN
    symbol = {"pass": PASS, "fail": FAIL}.get(rung.status, NOT_RUN)
    return f"{symbol} {rung.duration_s:.1f}s" if rung.status in ("pass", "fail") else symbol


def ran(result: CellResult) -> str:
    """When the cell last climbed, and whether the latest run reused that result."""
    when = result.finished_at[:16].replace("T", " ")
    return f"reused · last ran {when}" if result.reused_at else f"ran {when}"




def env_columns(results: list[CellResult]) -> list[str]:
    return sorted({r.cell.env for r in results})


def python_of(result: CellResult) -> str:
    """The interpreter the cell ran (from its venv), else the version it asked for."""
    install = result.rung("install")
    ran = install.detail.python if install is not None and install.detail is not None else None
    return ran or result.cell.python




def kind_sections(grid: list[CellResult], notes: Footnotes, matrix: Matrix | None) -> list[str]:
    """Per kind of engine: engines x environments (or one row per cell where too many)."""
    by_cell = {(r.cell.engine, r.cell.env): r for r in grid}
    lines = []
    for kind, heading in KINDS:
        engines = sorted({r.cell.engine for r in grid if r.cell.kind == kind})
        if not engines:
            continue
        envs = env_columns([r for r in grid if r.cell.kind == kind])
        if len(envs) <= WIDE:
            rows = [[f"`{e}`", *(verdict(by_cell[(e, env)], notes, matrix) if (e, env) in by_cell
                                 else f"{NOT_RUN} no result" for env in envs)] for e in engines]
            lines += [f"## {heading}", "", table(rows, ["engine", *envs]), ""]
        else:  # too many environments for columns: one row per cell
            rows = [[f"`{r.cell.engine}`", r.cell.env, verdict(r, notes, matrix)]
                    for r in grid if r.cell.kind == kind]
            lines += [f"## {heading}", "", table(rows, ["engine", "environment", "verdict"]), ""]
    return lines


def server_section(servers: list[CellResult], notes: Footnotes,
                   matrix: Matrix | None) -> list[str]:
    """The servers' cells (`nox -s serve`): one row each; what their APIs do is SERVING.md's."""
    if not servers:
        return []
    rows = [[engine_label(r), r.cell.kind, r.cell.env, verdict(r, notes, matrix)] for r in servers]
    return ["## Servers, over HTTP", "",
            "Each started in its cell and checked through its OpenAI-compatible API: the "
            "engine suite, then the API surface (table and footnotes in [SERVING.md](SERVING.md)).",
            "", table(rows, ["server", "kind", "environment", "verdict"]), ""]


def pins_of(result: CellResult) -> list[str]:
    """What a cell of its own fixes: the engine's release, pins, overrides."""
    release = [f"{result.cell.engine} release `{result.cell.release}`"] if result.cell.release else []
    return [*release, *result.cell.pins, *(f"override `{o}`" for o in result.cell.overrides)]


def quantized_section(cells: list[CellResult], notes: Footnotes,
                      matrix: Matrix | None) -> list[str]:
    """The quantization cells (`nox -s run -- --selection quant`): one row each; their quality
    and speed figures are QUANTIZATION.md's."""
    if not cells:
        return []
    rows = [[f"`{r.cell.engine}`", f"`{r.quantization}`", verdict(r, notes, matrix), status_of(r),
             status_of(r, "text_quality")] for r in cells]
    return ["## Quantizations", "", "The same weights quantized by each engine: the cell's verdict, "
            "its next-token distributions against the float32 reference within the "
            "quantization's bound on random weights (`quantization_quality`), and on the trained "
            "model its perplexity against the reference's (`text_quality`), both on "
            "[QUANTIZATION.md](QUANTIZATION.md), where that check ran; ➖ says why it did not.", "",
            table(rows, ["engine", "quantization", "verdict", "random weights (small-llama)",
                         "trained model (perplexity)"]), ""]


def own_section(own: list[CellResult], notes: Footnotes, matrix: Matrix | None) -> list[str]:
    """The cells declared in [[cells]]: their verdicts, pins and overrides, and why."""
    if not own:
        return []
    rows = [[f"`{r.cell.id}`", verdict(r, notes, matrix),
             ", ".join(pins_of(r)),
             r.cell.why] for r in own]
    return ["## Cells of their own", "",
            "Declared in `[[cells]]`: pins of any package, and uv overrides that lift a "
            "requirement a package declares (is the pin needed?) or remove a dependency.",
            "", table(rows, ["cell", "verdict", "pins and overrides", "why"]), ""]


def compatibility(results: list[CellResult], problems: list[str], *, matrix: Matrix | None = None,
                  title: str = "Compatibility matrix", extra: list[str] = (),
                  changed: dict | None = None, stack_dirs: list[Path] = ()) -> str:
    notes = Footnotes()
    own = [r for r in results if not is_server(r) and (r.cell.why or pins_of(r))]
    lines = header(title, results, problems)
    lines += watch_section(changed or {}, results, matrix)
    lines += callouts(results, matrix)
    lines += [f"Legend: {LEGEND}", "",
              "Rows are engines, columns environments (`numpy2` = the newest NumPy 2.x "
              "that resolves). A cell climbs resolve → install → import → load → "
              "conformance → api (servers only) → bench; the first failing rung is named.", ""]
    servers = [r for r in results if is_server(r) and r not in own]
    quantized = [r for r in in_order(results) if r not in own]
    lines += kind_sections([r for r in results if r not in (*own, *servers, *quantized)], notes,
                           matrix)
    lines += server_section(servers, notes, matrix)
    lines += quantized_section(quantized, notes, matrix)
    lines += own_section(own, notes, matrix)
    lines += stacks_section(list(stack_dirs), notes, matrix)
    rows = [[f"`{r.cell.id}`", *(rung_mark(r, n) for n in RUNGS), ran(r)] for r in results]
    lines += ["## Rungs per cell", "", "A cell whose inputs (resolved versions, fixtures, the "
              "suite's code it runs, the machine, the options) did not change since its last "
              "result is reused, not climbed again (`nox -- --force [CELL ...]` climbs anyway).",
              "", table(rows, ["cell", *RUNGS, "ran"]), ""]
    lines += ["Conformance, property by property: [CONFORMANCE.md](CONFORMANCE.md). Each engine's "
              "capabilities, parity tolerance and measured parity: [ENGINES.md](ENGINES.md). "
              "What each server's \"OpenAI compatible\" API really does: [SERVING.md](SERVING.md).",
              ""]
    rows = [[f"`{r.cell.id}`", python_of(r), key_versions(r) or "(not resolved)"]
            for r in results]
    lines += ["## Versions each cell ran", "",
              "The full lock of every cell is in its JSON (the resolve rung's `lock`); "
              "`uv pip sync` on it re-creates the environment.", "",
              table(rows, ["cell", "python", "resolved versions"]), "", *extra]
    if notes.notes:
        lines += ["## Footnotes", "", *notes.render()]
    return "\n".join(lines).rstrip() + "\n"
