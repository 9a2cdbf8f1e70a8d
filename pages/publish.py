"""The published reports, rendered from their committed records, and the check that they are.

    python -m pages.publish            render reports/, reports/resolve/ and reports/cuda/ from
                                       their records, and every figure include of README.md and
                                       docs/ (what `nox -s report` does after taking a run in)
    python -m pages.publish --check    render them into a temporary folder and compare every .md,
                                       .png and results.json with the committed ones, and every
                                       include with its record; exit 1 on any difference

The site is left out of the check: it is built from the same records, and CI publishes it.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path

from compat.matrix import Matrix
from compat.matrix import load as load_matrix
from pages.includes import IncludeError, prose_files, rewrite, stale
from pages.records import PUBLISHED, Published
from pages.render import render

COMPARED = ("*.md", "*.png", "results.json", "*.sources.json")
"""What of a published folder the check compares (its top level; the site is left out)."""
SHOWN = 12
"""Differing lines shown a file."""


def render_one(root: Path, published: Published, out: Path, matrix: Matrix | None) -> bool:
    """Render one published folder from its records into `out`; False where it has no records."""
    records = Path(root) / published.records
    if not records.is_dir():
        return False
    render([records], out, matrix=matrix, title=published.title)
    return True


def compared(folder: Path) -> dict[str, Path]:
    return {p.name: p for pattern in COMPARED for p in Path(folder).glob(pattern) if p.is_file()}


def differences(committed: Path, rendered: Path, name: str) -> list[str]:
    """What differs between a committed folder and its render: the first differing lines of each
    text file, a note for each image, each file only one side has."""
    old, new = compared(committed), compared(rendered)
    out = []
    for file in sorted(old.keys() | new.keys()):
        where = f"{name}/{file}"
        if file not in new:
            out.append(f"{where}: committed, but its records render no such page")
            continue
        if file not in old:
            out.append(f"{where}: its records render it, but it is not committed")
            continue
        a, b = old[file].read_bytes(), new[file].read_bytes()
        if a == b:
            continue
        if file.endswith(".png"):
            out.append(f"{where}: the committed image differs from its render ({len(a)} vs {len(b)} bytes)")
            continue
        diff = list(difflib.unified_diff(a.decode("utf-8", "replace").splitlines(),
                                         b.decode("utf-8", "replace").splitlines(),
                                         f"{where} (committed)", f"{where} (rendered)", n=0,
                                         lineterm=""))
        out.append("\n".join(line[:300] for line in diff[:SHOWN + 2]))
    return out


def check(root: Path, matrix: Matrix | None) -> list[str]:
    """Every difference between the committed reports and a fresh render of their records, and
    every stale figure include: empty where the reports are a function of their records."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="infermatrix-check-") as tmp:
        for published in PUBLISHED:
            out = Path(tmp) / published.out
            if render_one(root, published, out, matrix):
                problems += differences(Path(root) / published.out, out, published.out)
    problems += [str(item) for item in stale(prose_files(root), Path(root) / "reports", Path(root))]
    return problems


def publish(root: Path, matrix: Matrix | None, log=print) -> None:
    """Render every published folder from its records, in place, and every include."""
    for published in PUBLISHED:
        if render_one(root, published, Path(root) / published.out, matrix):
            log(f"{published.out}/: rendered from {published.records}/")
    for path in prose_files(root):
        text = path.read_text(encoding="utf-8")
        try:
            new = rewrite(text, Path(root) / "reports")
        except IncludeError as exc:
            msg = (f"{path.relative_to(root)}: {exc}: a figure include names a record that is not "
                   "committed; take the run that wrote it in (`nox -s report`), or fix the include")
            raise SystemExit(msg) from None
        if new != text:
            path.write_text(new, encoding="utf-8")
            log(f"{path.relative_to(root)}: figure includes rewritten from their records")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pages.publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(), help="the repository (default: .)")
    parser.add_argument("--matrix", type=Path, help="default: ROOT/compat/matrix.toml")
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    matrix = load_matrix(args.matrix or args.root / "compat" / "matrix.toml")
    if not args.check:
        publish(args.root, matrix)
        return 0
    problems = check(args.root, matrix)
    for item in problems:
        print(item)
    if problems:
        print(f"\n{len(problems)} difference(s): the committed reports are not what their records "
              "render. Take the run in and render (`nox -s report`), or restore the records.")
        return 1
    print("the committed reports re-render from their records byte for byte; every figure "
          "include holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
