"""The results folder's layout, spelled once: where each session writes its records and where
the reports read them.

    results/<cell id>.json                    one cell's climb (nox, nox -s serve, nox -s quant, ...)
    results/resolve/<cell id>.json            nox -s resolve
    results/bench/<cell id>.json              nox -s bench (the grid)
    results/serve-bench/<cell id>.json        nox -s serve-bench (a server's load sweep)
    results/serve-bench-chat/<cell id>.json   nox -s serve-bench -- --chat (its chat-mode sweep)
    results/endpoint/endpoint-<name>.json     nox -s endpoint
    results/real-shape/<shape>/[<variant>/]<cell id>.json        nox -s realsize
    results/real-shape/<shape>/serve-bench/<cell id>.json        nox -s serve-bench --fixture <shape>
    results/run/timeline-<start>.json         each run's timeline: when each cell's rungs ran
    results/stacks/<stack id>.json            a stack (core/stack_records.py): conflict, one process
    results/stacks/<stack id>/<member>.json   each engine's climb in the stack's environment
    reports/records/run/watch.json            what changed when that run was taken in (pages/records.py)

reports/records/ holds the same layout: `nox -s report` copies a run's results/ into it (its
resolve/ into reports/resolve/records/), and every page is rendered from there.

The reports merge every results folder they are given (a machine's results/, CI jobs'
artifacts); each subfolder is read from each of them.
"""

from __future__ import annotations

from pathlib import Path

RESOLVE = "resolve"
BENCH = "bench"
SERVE_BENCH = "serve-bench"
SERVE_BENCH_CHAT = "serve-bench-chat"
ENDPOINT = "endpoint"
REAL_SHAPE = "real-shape"
STACKS = "stacks"
RUN = "run"
"""The run's own records (its timeline, the release watch): not a cell's."""


def under(results_dirs: list[Path], sub: str) -> list[Path]:
    """`sub` in each results folder given, where it exists."""
    return [Path(d) / sub for d in results_dirs if (Path(d) / sub).is_dir()]


def files_under(results_dirs: list[Path], sub: str) -> list[Path]:
    """The JSON files directly in `sub` of each results folder given."""
    return [p for folder in under(results_dirs, sub) for p in sorted(folder.glob("*.json"))]


def real_shape_dir(results_dir: Path, shape: str) -> Path:
    return Path(results_dir) / REAL_SHAPE / shape


def serve_bench_dir(results_dir: Path, shape: str | None = None, chat: bool = False) -> Path:
    """A load sweep's folder: the small fixtures' (or the chat mode's), or a real shape's."""
    base = real_shape_dir(results_dir, shape) if shape else Path(results_dir)
    return base / (SERVE_BENCH_CHAT if chat else SERVE_BENCH)
