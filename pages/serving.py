"""reports/SERVING.md: what "OpenAI compatible" means server by server (the API-surface suite),
and how each server does as an engine over HTTP (start-up, conformance, parity with itself in
process)."""

from __future__ import annotations

from core.properties import PROPERTIES
from core.results import CellResult
from pages.loadgen import load_section
from pages.markdown import (
    CAVEAT,
    FAIL,
    KINDS,
    KNOWN,
    NOT_RUN,
    PASS,
    Footnotes,
    engine_label,
    header,
    table,
)
from pages.verdicts import is_server, property_entry

OTHER_KIND = "a property of "  # how the suite skips a property of the other kind of server




def checked(result: CellResult) -> bool:
    """A server whose API surface was checked (the api rung ran, passing or not)."""
    rung = result.rung("api")
    return is_server(result) and rung is not None and rung.status in ("pass", "fail")


def serving_page(results: list[CellResult], problems: list[str], load: list[dict] = (),
                 plot: str | None = None) -> str:
    """The API-surface table per kind of server, each server as an engine, then under load."""
    servers = [r for r in results if checked(r)]
    notes = Footnotes()
    lines = header("Serving", servers, problems)
    lines += ["Each server is started by its cell inside the cell's venv on a free loopback port, "
              "checked over HTTP, and stopped with its whole process group. Two suites run "
              "against it: the engine's own conformance suite through one HTTP adapter "
              "(engines/http/client.py), and the API-surface suite below (incell/conformance/"
              "test_api.py), which checks what OpenAI's API promises on the raw HTTP answers. "
              "An *endpoint* column is a server someone else runs, checked where it stands "
              "(`nox -s endpoint`): nothing started, the properties that need a local copy of "
              "the model ➖.", "",
              f"Legend: {PASS} as OpenAI's API · {CAVEAT} a departure the adapter declares, with "
              f"its reason · {FAIL} a departure · {NOT_RUN} not run (why). Every non-pass has a "
              "footnote with the server's own answer.", ""]
    for kind, heading in KINDS:
        cells = [r for r in servers if r.cell.kind == kind]
        if cells:
            lines += api_table(cells, heading, notes)
    if servers:
        lines += ["## The servers as engines", "",
                  "Start-up: seconds from the server's start until it answered /v1/models (the "
                  "load rung, first fixture). Conformance: the engine suite over HTTP (see "
                  "[CONFORMANCE.md](CONFORMANCE.md)). Wire parity: the same prompts through the "
                  "server and through the same engine in process.", "",
                  table([server_row(r) for r in servers],
                        ["server", "environment", "start-up", "conformance", "API surface",
                         "wire parity"]), ""]
    else:
        lines += ["No server cell has run yet: `nox -s serve`, then `nox -s report`.", ""]
    endpoints = [r for r in servers if r.rung("endpoint") is not None]
    if endpoints:
        lines += ["## Endpoints", "", *(line for r in endpoints for line in endpoint_lines(r))]
    lines += load_section(list(load), plot)
    if notes.notes:
        lines += ["## Footnotes", "", *notes.render()]
    return "\n".join(lines).rstrip() + "\n"


def endpoint_lines(result: CellResult) -> list[str]:
    """What an endpoint said of itself: its /models answer, the headers that name it, the
    fields beyond OpenAI's it took or refused."""
    d = result.rung("endpoint").detail
    names = ", ".join(f"`{m.get('id')}`" for m in d.models or [])
    models = (f"lists {names or 'nothing'}" if d.models is not None
              else f"no /models (HTTP {d.models_status})")
    lines = [f"- **{result.cell.env}**: `{d.url}`, model `{d.model}` ({d.kind}), checked "
             f"{result.started_at}; /models {models}"
             + (f"; it names itself {', '.join(f'{k}: `{v}`' for k, v in d.headers.items())}"
                if d.headers else "; no Server or version header")
             + (f"; took {', '.join(f'`{f}`' for f in d.fields)}" if d.fields else "")
             + "".join(f"; refused `{f}` ({why[:120]})" for f, why in d.refused.items())
             + ("" if d.tokenizer else "; no --tokenizer: what counts tokens did not run") + "."]
    return [*lines, ""]


def api_table(cells: list[CellResult], heading: str, notes: Footnotes) -> list[str]:
    """Properties x servers; a property only for the other kind of server is left out."""
    names = [n for n in PROPERTIES["api"]
             if any(applies(r, n) for r in cells)]
    head = ["property", *(f"{engine_label(r)} · {r.cell.env}" for r in cells)]
    rows = [[f"`{n}`", *(property_entry(r, n, notes, "api") for r in cells)] for n in names]
    return [f"## API surface: {heading.lower().replace('engines', 'servers')}", "",
            table(rows, head), ""]


def applies(result: CellResult, name: str) -> bool:
    """Whether the cell's record holds `name` as a property of its kind of server."""
    prop = result.properties("api").get(name)
    return prop is not None and not (prop.status == "skip" and prop.message.split("] ", 1)[-1]
                                     .startswith(OTHER_KIND))


def server_row(result: CellResult) -> list[str]:
    load = result.rung("load")
    fixtures = load.detail.fixtures if load is not None and load.detail is not None else {}
    first = next(iter(fixtures.values()), None)
    startup = f"{first.load_s:.1f} s" if first is not None else "–"
    api = result.properties("api")
    parity = api.get("wire_parity")
    parity_note = ("; ".join(f"{fixture}: {note}" for fixture, note in parity.notes.items())
                   if parity is not None and parity.notes else
                   (parity.status if parity is not None else "–"))
    return [engine_label(result), result.cell.env, startup, summary(result, "conformance"),
            summary(result, "api"), parity_note]


def summary(result: CellResult, suite: str) -> str:
    """"12 ✅ 2 ⚠️ 1 ❌ 4 ➖ (41 s)", or why the suite did not run."""
    rung = result.rung(suite)
    if rung is None or rung.status in ("not_run", "not_reached"):
        return f"{NOT_RUN} {rung.status.replace('_', ' ') if rung else 'not run'}"
    props = result.properties(suite).values()
    count = {status: sum(p.status == status for p in props)
             for status in ("pass", "deviation", "fail", "known", "skip")}
    marks = zip((PASS, CAVEAT, FAIL, KNOWN, NOT_RUN), count.values())
    return " ".join(f"{n} {mark}" for mark, n in marks if n) + f" ({rung.duration_s:.0f} s)"
