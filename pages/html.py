"""The site's HTML, shared by its pages: escaping, the page frame with the site's navigation, a
table of already-escaped cells, a report page converted from its Markdown."""

from __future__ import annotations

import html
import re
from pathlib import Path

PAGES = {"THROUGHPUT.md": ("throughput.html", "Throughput"), "SERVING.md": ("serving.html", "Serving"),
         "QUANTIZATION.md": ("quantization.html", "Quantization"),
         "CONFORMANCE.md": ("conformance.html", "Conformance"), "ENGINES.md": ("engines.html", "Engines"),
         "COMPATIBILITY.md": ("compatibility.html", "Compatibility (full)")}

def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def slug(word: str) -> str:
    return word.replace(" ", "-")


def page(title: str, body: str, *, depth: int = 0, here: str = "") -> str:
    """A whole page: the header with the site's navigation, then `body`."""
    up = "../" * depth
    nav = [("index.html", "Matrix"), ("cells.html", "Cells"), ("history.html", "History"),
           *[(name, label) for name, label in PAGES.values()], ("badges.html", "Badges"),
           ("docs/index.html", "Docs")]
    links = " ".join(f'<a href="{up}{href}"{" class=here" if href == here else ""}>{esc(label)}</a>'
                     for href, label in nav)
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)} · infermatrix</title>"
            f"<link rel=stylesheet href='{up}assets/site.css'>"
            f"<script src='{up}assets/site.js'></script></head>\n"
            f"<body><header><strong>infermatrix</strong> · {links}</header>\n<main>\n{body}\n</main>"
            f"</body></html>\n")


def rows_table(head: list[str], rows: list[list[str]], attrs: list[str] | None = None) -> str:
    """An HTML table of already-escaped cells; `attrs` per row (data-* for the filters)."""
    out = ["<table><thead><tr>", *(f"<th>{h}</th>" for h in head), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        extra = f" {attrs[i]}" if attrs else ""
        out.append(f"<tr{extra}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def strip_refs(text: str) -> str:
    """A verdict's text without its Markdown footnote references."""
    return re.sub(r"\[\^\d+\]", "", text).replace("`", "").strip()


def markdown_page(source: Path, title: str, here: str) -> str:
    """A report page converted from its Markdown, its links to other pages made the site's."""
    return markdown_html(source.read_text(encoding="utf-8"), title, here)


def markdown_html(text: str, title: str, here: str = "", depth: int = 0) -> str:
    """A page from Markdown text, its links to the report pages made the site's."""
    import markdown

    for name, (target, _) in PAGES.items():
        text = text.replace(f"]({name}", f"]({target}")
    body = markdown.markdown(text, extensions=["tables", "fenced_code", "footnotes", "md_in_html"])
    return page(title, body, here=here, depth=depth)
