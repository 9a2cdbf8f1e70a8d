"""The README's excerpt of the published reports: the real-shape table (which engine and which
precision, on a real model's shape), the verdict tables and the every-cell throughput, kept
between START and END and refreshed whenever reports/ is rendered with
`--readme README.md` (`nox`, `nox -s report`, `nox -s bench`)."""

from __future__ import annotations

import re
from pathlib import Path

from core.errors import InfermatrixError
from core.results import write_atomic

START, END = "<!-- report:start -->", "<!-- report:end -->"
SECTIONS = (("THROUGHPUT.md", "On a real shape: which engine, which precision"),
            ("COMPATIBILITY.md", "Generation engines"), ("COMPATIBILITY.md", "Embedding engines"),
            ("COMPATIBILITY.md", "Cells of their own"),
            ("THROUGHPUT.md", "Generation: every cell"), ("THROUGHPUT.md", "Embedding: every cell"))
"""(page, "## heading") in the order the excerpt shows them; a page's plots are linked from
reports/."""


def sections(text: str) -> dict[str, str]:
    """{"## heading": body} of a rendered page."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {title.strip(): body.strip() for title, body in zip(parts[1::2], parts[2::2])}


def header_line(text: str) -> str:
    generated = re.search(r"^Generated (.+?) from", text, flags=re.MULTILINE)
    machine = re.search(r"^Machine: (.+)$", text, flags=re.MULTILINE)
    merged = re.search(r"^Machines \(results were merged\):\n\n((?:- .+\n?)+)", text,
                       flags=re.MULTILINE)
    where = machine.group(1) if machine else (
        "results merged from " + "; ".join(line[2:] for line in merged.group(1).splitlines())
        if merged else "(unknown machine)")
    return f"Run of {generated.group(1) if generated else '(unknown time)'} on {where}."


def excerpt(reports: Path) -> str:
    """The block's Markdown: tables under bold titles, then the footnotes they cite."""
    compat = (reports / "COMPATIBILITY.md").read_text(encoding="utf-8")
    lines = [header_line(compat), ""]
    for page, title in SECTIONS:
        path = reports / page
        found = sections(path.read_text(encoding="utf-8")) if path.is_file() else {}
        if title in found:
            lines += [f"**{title}**", "", found[title], ""]
    body = re.sub(r"\]\(([\w.-]+\.png)\)", rf"]({reports.name}/\1)", "\n".join(lines))
    notes = dict(re.findall(r"^\[\^(\w+)\]: (.*)$", sections(compat).get("Footnotes", ""),
                            flags=re.MULTILINE))
    cited = sorted(set(re.findall(r"\[\^(\w+)\]", body)) & set(notes),
                   key=lambda key: (not key.isdigit(), int(key) if key.isdigit() else 0, key))
    return "\n\n".join([body.rstrip(), *(f"[^{key}]: {notes[key]}" for key in cited)]) + "\n"


def update(readme: Path, reports: Path) -> None:
    """Replace what lies between START and END in `readme` with the excerpt of `reports`."""
    text = readme.read_text(encoding="utf-8")
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise InfermatrixError(f"{readme} needs exactly one {START} followed by one {END}; "
                               "add them where the excerpt of the reports should go")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    write_atomic(readme, f"{head}{START}\n{excerpt(reports)}{END}{tail}")
