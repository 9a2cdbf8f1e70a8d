"""docs/ on the site: each Markdown page of the manual as an HTML page under docs/, with an index,
its links to other docs, to the report pages and to the README made the site's own."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
"""The manual: one Markdown page per topic (README.md's table lists them)."""


def title_of(text: str, fallback: str) -> str:
    found = re.search(r"^# (.+)$", text, flags=re.MULTILINE)
    return found.group(1).strip() if found else fallback


def site_links(text: str, report_pages: dict[str, str]) -> str:
    """Links as the site serves them: another doc's .md -> .html, a report page -> its site page
    one level up, the README -> the site's index."""
    for name, target in report_pages.items():
        text = text.replace(f"](../reports/{name}", f"](../{target}")
    text = text.replace("](../README.md)", "](../index.html)")
    return re.sub(r"\]\(([\w-]+)\.md(#[^)]*)?\)", lambda m: f"]({m.group(1)}.html{m.group(2) or ''})",
                  text)


def write_docs(out: Path, report_pages: dict[str, str], html_page: Callable[[str, str], str],
               docs: Path = DOCS) -> list[Path]:
    """Write docs/*.md into out/docs/ as HTML (`html_page(title, body_html)` wraps a page in the
    site's header), the images beside them, and an index; the pages written."""
    import markdown

    if not docs.is_dir():
        return []
    target = out / "docs"
    target.mkdir(parents=True, exist_ok=True)
    if (docs / "images").is_dir():
        shutil.copytree(docs / "images", target / "images", dirs_exist_ok=True)
    written, entries = [], []
    for source in sorted(docs.glob("*.md")):
        text = source.read_text(encoding="utf-8")
        title = title_of(text, source.stem)
        body = markdown.markdown(site_links(text, report_pages),
                                 extensions=["tables", "fenced_code", "footnotes", "md_in_html"])
        path = target / f"{source.stem}.html"
        path.write_text(html_page(title, body), encoding="utf-8")
        written.append(path)
        entries.append(f'<li><a href="{source.stem}.html">{title}</a></li>')
    index = target / "index.html"
    index.write_text(html_page("Documentation", "<h1>Documentation</h1>\n<ul>\n" + "\n".join(entries)
                               + "\n</ul>"), encoding="utf-8")
    return [index, *written]
