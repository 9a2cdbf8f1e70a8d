"""What a run learned, for the end of the terminal (rendered with rich): the verdicts counted by
kind, the undeclared failures by name with their signatures, what changed since the last run,
and where the pages are. The same verdicts as COMPATIBILITY.md's cells."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from compat.matrix import Matrix
from core.results import CellResult
from pages.markdown import CAVEAT, FAIL, KNOWN, NOT_RUN, PASS, Footnotes
from pages.verdicts import verdict

ORDER = (PASS, CAVEAT, FAIL, KNOWN, NOT_RUN)
NAMES = {PASS: "pass", CAVEAT: "pass with a caveat", FAIL: "fail", KNOWN: "known incompatible",
         NOT_RUN: "not run"}


def kind_of(text: str) -> str:
    """The one mark a cell's verdict text stands for (a cell that passed what it ran but not all
    of it is ➖)."""
    for mark in (KNOWN, FAIL):
        if text.startswith(mark):
            return mark
    if NOT_RUN in text:
        return NOT_RUN
    return CAVEAT if text.startswith(CAVEAT) else PASS


def marks_of(results: list[CellResult], matrix: Matrix | None) -> dict[str, str]:
    """Each cell's one mark (✅ ⚠️ ❌ ⛔ ➖), as COMPATIBILITY.md's verdict gives it."""
    notes = Footnotes()
    return {r.cell.id: kind_of(verdict(r, notes, matrix)) for r in results}


def failure_line(result: CellResult) -> str:
    """"rung: signature" of the first failing rung ("" where none failed)."""
    failed = result.first_failure
    if failed is None:
        return ""
    return f"{failed.name}: {failed.error.signature if failed.error else failed.reason}"


def summary(results: list[CellResult], matrix: Matrix | None) -> tuple[Counter, list[tuple[str, str]]]:
    """Verdicts counted by mark, and (cell, "rung: signature") of every undeclared failure."""
    marks = marks_of(results, matrix)
    failures = [(r.cell.id, failure_line(r)) for r in results if marks[r.cell.id] == FAIL]
    return Counter(marks.values()), failures


def plain(markdown: str) -> str:
    """A watch bullet without its Markdown."""
    return re.sub(r"\*\*|`|^- ", "", markdown)


def headline(results: list[CellResult], changed: dict[str, Any], out: Path,
             matrix: Matrix | None):
    """A rich renderable: the run's headline."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    counts, failures = summary(results, matrix)
    line = Text(f"{len(results)} cells: ")
    line.append("  ".join(f"{counts[m]} {m} {NAMES[m]}" for m in ORDER if counts[m]))
    parts = [line]
    if failures:
        table = Table(title=f"{len(failures)} undeclared failure(s)", title_justify="left",
                      show_header=True, header_style="bold")
        table.add_column("cell")
        table.add_column("first failing rung: signature", overflow="fold")
        for cell, why in failures:
            table.add_row(cell, why)
        parts.append(table)
    bullets = [plain(c) for c in changed.get("changes", []) if c.startswith("- ")]
    since = changed.get("since") or ""
    if since:
        parts.append(Text(f"Since the run of {since}: " + (f"{len(bullets)} change(s)" if bullets
                                                             else "nothing changed")))
        parts += [Text(f"  • {b}") for b in bullets[:12]]
        if len(bullets) > 12:
            parts.append(Text(f"  … and {len(bullets) - 12} more (COMPATIBILITY.md)"))
    pages = sorted(p.name for p in Path(out).glob("*.md"))
    parts.append(Text(f"Pages in {out}/: {', '.join(pages)}"))
    index = Path(out) / "site" / "index.html"
    parts.append(Text(f"Site: {index.resolve().as_uri()}" if index.is_file()
                      else f"Site: `nox -s site` builds {index}"))
    return Panel(Group(*parts), title="infermatrix", expand=False)
