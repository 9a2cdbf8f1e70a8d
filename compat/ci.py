"""The CI matrix: `nox -l --json -t <selection>` in, GitHub Actions' `include` list out.

    nox -l --json -t default | python -m compat.ci > matrix.json

One entry per cell session ({"cell", "session", "runner"}): CPU cells on `--cpu-runner`, CUDA
cells on `--gpu-runner` (a label the user's GPU runners carry). The workflow
(.github/workflows/infermatrix.yml) asks nox each time, so its job list never goes out of date.
Stdlib only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import json
import sys

MAX_JOBS = 256
"""GitHub Actions runs at most this many jobs from one matrix."""


class MatrixTooLarge(ValueError):
    """More cells than one workflow matrix can hold."""


def include(sessions: list[dict], cpu_runner: str, gpu_runner: str) -> list[dict]:
    """The matrix entries of the cell sessions among `sessions` (nox -l --json's objects)."""
    cells = []
    for session in sessions:
        tags = session.get("tags") or []
        name = session.get("session", "")
        if "cell" not in tags or not name.startswith("cell(") or not name.endswith(")"):
            continue
        cells.append({"cell": name[len("cell("):-1], "session": name,
                      "runner": gpu_runner if "cuda" in tags else cpu_runner})
    if len(cells) > MAX_JOBS:
        raise MatrixTooLarge(
            f"{len(cells)} cells are more than the {MAX_JOBS} jobs GitHub runs from one matrix: "
            "split them by tag (-t generation, -t embedding, -t cuda) into workflows of their own")
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat.ci", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-runner", default="ubuntu-latest")
    parser.add_argument("--gpu-runner", default="gpu")
    args = parser.parse_args(argv)
    try:
        cells = include(json.load(sys.stdin), args.cpu_runner, args.gpu_runner)
    except ValueError as exc:  # bad JSON, or MatrixTooLarge
        print(f"python -m compat.ci: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
