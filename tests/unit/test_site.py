"""The static site in a real browser: Debian's chromium, headless, driven by Playwright.

The site is built from the committed results and history (reports/results.json and
reports/history.jsonl: what `nox -s site` publishes); every
page is opened from disk as a user would, with no server. Screenshots go to $INFERMATRIX_ARTIFACTS
(CI keeps them), else to the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from compat.matrix import load as load_matrix
from pages.history import append, read_history
from pages.site import build
from tests.conftest import REPO

CHROMIUM = Path(os.environ.get("INFERMATRIX_CHROMIUM", "/usr/bin/chromium"))
WAIT_FOR_CHROMIUM_S = 600
""".ci/run installs chromium in the background while the tests run; this test waits for it."""


def chromium() -> Path:
    deadline = time.monotonic() + WAIT_FOR_CHROMIUM_S
    marker = os.environ.get("INFERMATRIX_CHROMIUM_INSTALLING")
    while marker and Path(marker).exists() and not CHROMIUM.exists() and time.monotonic() < deadline:
        time.sleep(2)
    if not CHROMIUM.exists():
        pytest.fail(f"no chromium at {CHROMIUM}: install Debian's with "
                    "`apt-get install chromium` (or set INFERMATRIX_CHROMIUM to a Chromium binary)")
    return CHROMIUM


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    reports = out / "reports"
    reports.mkdir()
    for page in REPO.glob("reports/*.md"):
        shutil.copy2(page, reports / page.name)
    for image in REPO.glob("reports/*.png"):
        shutil.copy2(image, reports / image.name)
    shutil.copy2(REPO / "reports" / "history.jsonl", reports / "history.jsonl")
    build([REPO / "reports" / "results.json"], reports, out / "site", load_matrix(),
          "https://example.org/infermatrix")
    return out / "site"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        handle = driver.chromium.launch(executable_path=str(chromium()), headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])
        yield handle
        handle.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("INFERMATRIX_ARTIFACTS")
    path = Path(folder) / "screenshots" if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def opened(browser, path: Path):
    """A page opened from disk, with every console error and failed load it saw."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"failed to load {r.url}"))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors


def local_target(base: Path, href: str) -> Path | None:
    """The file a link points to on disk, or None for an external link or an anchor."""
    parsed = urlparse(href)
    if parsed.scheme in ("http", "https", "mailto") or href.startswith("#"):
        return None
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return (base.parent / unquote(parsed.path)).resolve()


def test_every_page_loads_without_errors_and_every_link_resolves(site, browser, shots) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20, pages
    broken, failed = [], []
    page, errors = opened(browser, pages[0])  # one tab goes through every page
    for path in pages:
        errors.clear()
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        failed += [f"{path.relative_to(site)}: {e}" for e in errors]
        hrefs = page.eval_on_selector_all("a[href], img[src], link[href], script[src]",
                                          "els => els.map(e => e.getAttribute('href') || "
                                          "e.getAttribute('src'))")
        for href in hrefs:
            target = local_target(path, href)
            if target is not None and not target.exists():
                broken.append(f"{path.relative_to(site)} -> {href}")
        if path.name in ("index.html", "history.html", "throughput.html"):
            page.screenshot(path=str(shots / f"{path.stem}.png"), full_page=True)
    page.close()
    assert not failed, failed[:20]
    assert not broken, broken[:20]


def test_the_front_page_is_the_grid_and_a_square_opens_its_cell(site, browser, shots) -> None:
    """index.html opens on engines by environments, per kind, as COMPATIBILITY.md shows them:
    every cell one square, a square its cell's page; the list of every cell one click away."""
    page, errors = opened(browser, site / "index.html")
    grids = page.locator("table.grid")
    assert grids.count() == 2  # generation, embedding
    squares = page.eval_on_selector_all("a[data-square]", "els => els.map(e => e.dataset.square)")
    every = page.eval_on_selector_all("header a", "els => els.map(e => e.getAttribute('href'))")
    assert "cells.html" in every
    cells, _ = opened(browser, site / "cells.html")
    listed = cells.eval_on_selector_all("tr[data-cell]", "els => els.map(e => e.dataset.cell)")
    assert sorted(squares) == sorted(listed) and len(squares) > 50
    engines = page.eval_on_selector_all("table.grid tbody tr td:first-child",
                                        "els => els.map(e => e.textContent)")
    assert "llama_cpp" in engines and "sentence_transformers" in engines
    page.screenshot(path=str(shots / "index-grid.png"), full_page=False)
    first = squares[0]
    page.click(f"a[data-square='{first}']")
    page.wait_for_load_state("load")
    assert page.url.endswith(f"cells/{first}.html")
    assert not errors


def test_a_filter_changes_what_is_shown(site, browser, shots) -> None:
    page, errors = opened(browser, site / "cells.html")
    rows = page.locator("tr[data-cell]")
    total = rows.count()
    visible = lambda: page.locator("tr[data-cell]:visible").count()  # noqa: E731
    assert visible() == total > 0
    page.select_option("#filter-engine", "llama_cpp")
    shown = visible()
    assert 0 < shown < total
    assert all(e == "llama_cpp" for e in page.eval_on_selector_all(
        "tr[data-cell]:not([hidden])", "els => els.map(e => e.dataset.engine)"))
    assert page.locator("#shown").inner_text() == str(shown)
    assert "engine=llama_cpp" in page.url  # a filtered view can be linked to
    page.select_option("#filter-verdict", "fail")
    assert all(v == "fail" for v in page.eval_on_selector_all(
        "tr[data-cell]:not([hidden])", "els => els.map(e => e.dataset.verdict)"))
    page.screenshot(path=str(shots / "cells-filtered.png"), full_page=True)
    page.click("#reset")
    assert visible() == total
    # the hash alone selects: a link to a filtered view opens filtered
    linked, _ = opened(browser, site / "cells.html")
    linked.goto((site / "cells.html").as_uri() + "#kind=embedding")
    linked.reload()
    assert all(k == "embedding" for k in linked.eval_on_selector_all(
        "tr[data-cell]:not([hidden])", "els => els.map(e => e.dataset.kind)"))
    assert not errors


def test_a_failing_cell_page_shows_its_error(site, browser, shots) -> None:
    index, _ = opened(browser, site / "cells.html")
    failing = [*index.eval_on_selector_all("tr[data-verdict='fail']",
                                           "els => els.map(e => e.dataset.cell)"),
               *index.eval_on_selector_all("tr[data-verdict='known']",
                                           "els => els.map(e => e.dataset.cell)")]
    assert failing, "the committed results hold no failing cell"
    cell = failing[0]
    page, errors = opened(browser, site / "cells" / f"{cell}.html")
    assert page.locator("#error").count() == 1, f"{cell}: no error section"
    text = page.locator("pre.error").inner_text()
    assert text.strip(), f"{cell}: an empty error"
    assert f'cell({cell})' in page.locator("pre").first.inner_text()  # the command to reproduce
    page.screenshot(path=str(shots / "failing-cell.png"), full_page=True)
    assert not errors


def test_sorting_a_column_orders_its_rows(site, browser) -> None:
    page, errors = opened(browser, site / "cells.html")
    page.click("th:nth-child(2)")  # the cell id
    ids = page.eval_on_selector_all("tr[data-cell]", "els => els.map(e => e.dataset.cell)")
    assert ids == sorted(ids, key=str.lower)
    page.click("th:nth-child(2)")
    again = page.eval_on_selector_all("tr[data-cell]", "els => els.map(e => e.dataset.cell)")
    assert again == sorted(ids, key=str.lower, reverse=True)
    assert not errors


def test_the_history_survives_a_corrupt_line_and_shows_a_change(site, tmp_path) -> None:
    history, problems = read_history(REPO / "reports" / "history.jsonl")
    assert not problems, problems
    assert len({e.run for e in history}) >= 2
    damaged = tmp_path / "history.jsonl"
    damaged.write_text((REPO / "reports" / "history.jsonl").read_text(encoding="utf-8")
                       + "{not json\n" + json.dumps({"schema": 99}) + "\n", encoding="utf-8")
    kept, notes = read_history(damaged)
    assert len(kept) == len(history) and len(notes) == 2, notes
    assert "not JSON" in notes[0] and "schema 99" in notes[1]
    assert append(damaged, history[:3]) == 0  # lines it holds are not added twice
    page = (site / "history.html").read_text(encoding="utf-8")
    assert "Verdicts that changed" in page and "→" in page
