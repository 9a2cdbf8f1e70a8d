"""Command-line options the nox sessions share, parsed and checked in one place.

    nox -- --exclude-newer 2025-06-01            every cell resolves as of that date
    nox -s "cell(X)" -- --from-lock results/X.json   re-run a cell from its recorded lock
    nox -s resolve -- "infinity_emb-*" --workers 8
    nox -s bisect -- infinity-emb infinity_emb-numpy2 [--good 0.0.45]
    nox -s bisect -- infinity-emb infinity_emb-numpy1-optimum2 --from 0.0.70   first that works
    nox -s "cell(X)" -- --property batch_invariance --hypothesis-budget 50
    nox -- --force ["transformers-*" ...]         climb again though nothing changed
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
from pathlib import Path

from compat.cell import Options
from core.errors import InfermatrixError, unknown
from core.properties import PROPERTIES

DATE_FORMS = "YYYY-MM-DD or an RFC 3339 time such as 2025-06-01T00:00:00Z"


class UsageError(InfermatrixError):
    """Bad command-line input to a session."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would exit; a session wants a message
        raise UsageError(f"{self.prog}: {message}\n{self.format_usage()}")


def exclude_newer(value: str) -> str:
    """Validate a date for uv's --exclude-newer."""
    text = value.strip()
    try:
        if len(text) == 10:
            dt.date.fromisoformat(text)
        else:
            dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; use {DATE_FORMS}") from None
    return text


def _existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value!r} is not a file")
    return path


def _existing_path(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value!r} does not exist")
    return path


def positive(value: str) -> int:
    """argparse type: an int > 0."""
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value!r}")
    return number


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exclude-newer", type=exclude_newer,
                        default=os.environ.get("INFERMATRIX_EXCLUDE_NEWER") or None,
                        help=f"resolve as of this date ({DATE_FORMS})")


def _force(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", nargs="*", metavar="CELL",
                        help="climb again even where nothing a cell depends on changed: every "
                             "cell, or the cells (id globs) named")


def _forced(args: argparse.Namespace) -> tuple[str, ...]:
    """--force alone: every cell ("*"); --force A B: those; absent: none."""
    if args.force is None:
        return ()
    return tuple(args.force) or ("*",)


def property_names(kind: str, transport: str = "process") -> list[str]:
    """The conformance properties of a kind, as registered in core/properties.py, and for a
    server (transport "http") the API-surface properties too."""
    return [*PROPERTIES[kind], *(PROPERTIES["api"] if transport == "http" else ())]


def cell_options(argv: list[str], kind: str = "generation", transport: str = "process") -> Options:
    """Options of a cell session: --exclude-newer, --from-lock, --property, --hypothesis-budget."""
    parser = _Parser(prog="nox -s 'cell(...)' --")
    _common(parser)
    parser.add_argument("--from-lock", type=_existing_file,
                        help="install this lock (uv lock text or a cell result JSON) instead of resolving")
    parser.add_argument("--property", action="append", default=[],
                        help="run only this conformance property (repeatable)")
    parser.add_argument("--hypothesis-budget", type=positive, default=10,
                        help="examples per generated-input property (default 10)")
    _force(parser)
    args, _ = parser.parse_known_args(argv)  # a plain `nox -- ...` hands posargs to every session
    valid = property_names(kind, transport)
    for name in args.property:
        if name not in valid:
            raise UsageError(unknown(f"{kind} property", name, valid))
    return Options(exclude_newer=args.exclude_newer, from_lock=args.from_lock,
                   properties=tuple(args.property), hypothesis_budget=args.hypothesis_budget,
                   force=_forced(args))


def _run_parser() -> _Parser:
    parser = _Parser(prog="nox -s run --")
    _common(parser)
    parser.add_argument("--workers", type=positive, default=min((os.cpu_count() or 1) + 1, 4),
                        help="cells climbing at once, up to conformance (default: cores + 1, "
                             "at most 4); the bench rungs always run one at a time")
    parser.add_argument("--hypothesis-budget", type=positive, default=10,
                        help="examples per generated-input property (default 10)")
    parser.add_argument("--selection", default="default",
                        help="the matrix selection to run (default: default; e.g. vllm-cpu)")
    _force(parser)
    return parser


def run_args(argv: list[str]) -> tuple[Options, int, str]:
    """Options of the default run (`nox` / `nox -s run`): --workers, --exclude-newer,
    --hypothesis-budget, --selection, --force."""
    args, _ = _run_parser().parse_known_args(argv)
    return Options(exclude_newer=args.exclude_newer, hypothesis_budget=args.hypothesis_budget,
                   force=_forced(args)), args.workers, args.selection


def resolve_args(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(prog="nox -s resolve --", description="Resolve every cell, install nothing.")
    parser.add_argument("patterns", nargs="*", help="cell id globs (default: every cell)")
    parser.add_argument("--workers", type=positive, default=8)
    _common(parser)
    return parser.parse_args(argv)


def report_args(argv: list[str]) -> list[str]:
    """The report session's own arguments, with the run's options (`nox -- --force`, which
    nox hands to the report too) taken out."""
    parser = _run_parser()
    parser.add_help = False
    _, rest = parser.parse_known_args(argv)
    return rest


def report_options(argv: list[str]) -> argparse.Namespace:
    """`nox -s report -- [--check | --cuda DIR | FOLDER ... --out DIR [--title T]]`: what the
    report session does (the run's own options, which nox hands it too, taken out first)."""
    parser = _Parser(prog="nox -s report --",
                     description="Take the run's results/ into reports/records/ and render every "
                                 "published page from the committed records.")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--check", action="store_true",
                      help="render the committed records into a temporary folder and compare: "
                           "exit 1 on any page, image, results.json or docs include that differs")
    what.add_argument("--cuda", type=_existing_path, metavar="DIR",
                      help="take the GPU check's results (compat.gpucheck --results DIR) into "
                           "reports/cuda/records/, then render")
    parser.add_argument("folders", nargs="*", type=_existing_path,
                        help="render these folders of records elsewhere (with --out), taking "
                             "nothing in: CI jobs' artifacts, a saved results/")
    parser.add_argument("--out", type=Path, help="where FOLDER's pages go")
    parser.add_argument("--title", default="Compatibility matrix")
    args = parser.parse_args(report_args(argv))
    if args.folders and args.out is None:
        parser.error("FOLDER needs --out DIR: the published reports/ are rendered only from "
                     "reports/records/ (plain `nox -s report` takes results/ in first)")
    if args.out is not None and not args.folders:
        parser.error("--out needs the FOLDER(s) of records to render")
    if args.folders and (args.check or args.cuda):
        parser.error("FOLDER renders elsewhere; --check and --cuda act on the published reports")
    return args


def serve_bench_args(argv: list[str], servers: list[str]) -> argparse.Namespace:
    """`nox -s serve-bench -- [--cell ID ...] [--fixture NAME] [--chat] [load options] |
    --compare DIR [...]`: the session's own options taken out (`cell`, `fixture`, `chat`,
    `compare`); `load` keeps what incell/serve_bench.py takes, --fixture and --chat included,
    as given. `servers`: the generation servers a --cell may name."""
    parser = _Parser(prog="nox -s serve-bench --", add_help=False, allow_abbrev=False)
    parser.add_argument("--cell", action="append", default=[])
    parser.add_argument("--compare", type=_existing_path)
    args, load = parser.parse_known_args(argv)
    unknown_ids = [c for c in args.cell if c not in servers]
    if unknown_ids:
        raise UsageError(f"--cell {unknown_ids[0]!r} is not a generation server; valid: "
                         f"{', '.join(servers)}")
    fixture = next((b for a, b in itertools.pairwise(load) if a == "--fixture"), None)
    return argparse.Namespace(cells=args.cell, compare=args.compare, fixture=fixture,
                              chat="--chat" in load, load=load)


def bisect_args(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(prog="nox -s bisect --",
                     description="The release of PACKAGE (any package, the engine's own too) "
                                 "where CELL stops working, or, where the newest works and "
                                 "the starting release fails, where it starts working.")
    parser.add_argument("package")
    parser.add_argument("cell")
    parser.add_argument("--good", "--from", dest="good", metavar="VERSION",
                        help="the starting release (default: what the cell resolves to); "
                             "from a failing one, the search finds the first that works")
    _common(parser)
    return parser.parse_args(argv)


def stack_args(argv: list[str]) -> argparse.Namespace:
    """`nox -s stack -- STACK [--nearest] [--force]`: one stack of compat/matrix.toml."""
    parser = _Parser(prog="nox -s stack --",
                     description="One stack (several engines in one environment, docs/stacks.md): "
                                 "its climb, its conflict chain where it does not resolve, the "
                                 "one-process step.")
    parser.add_argument("stack", help="a stack id (nox -l lists the stacks session; COMPATIBILITY.md "
                                      "names them), its [stacks.NAME] where that declares one "
                                      "stack, or a FILE: a requirements.txt, pyproject.toml or "
                                      "uv.lock (docs/stacks.md)")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME",
                        help="with a pyproject.toml or uv.lock: add this optional group")
    parser.add_argument("--axis", action="append", default=[], metavar="NAME=VALUE",
                        help="with a FILE: override its requirement on the axis's package, e.g. "
                             "numpy=2 (the question before an upgrade)")
    parser.add_argument("--nearest", action="store_true",
                        help="where it fails, search the newest set of versions under which every "
                             "engine passes in one environment (at most 30 resolves, 3 climbs)")
    _common(parser)
    _force(parser)
    args = parser.parse_args(argv)
    args.options = Options(exclude_newer=args.exclude_newer, force=_forced(args))
    return args


def bench_args(argv: list[str]) -> argparse.Namespace:
    """`nox -s bench -- [CELL ...] [--profile P] [shape options] | --compare PATH`.

    Shape options are incell/throughput/run.py's, checked here so that a bad value stops the
    session before any cell is touched.
    """
    from bench.metrics import BenchInputError
    from bench.profiles import PROFILES, add_shape_options, profile, shape_overrides
    from fixtures.catalog import REAL_SHAPES, TRAINED

    parser = _Parser(prog="nox -s bench --",
                     description="The throughput grid in the cells' existing venvs, then "
                                 "reports/THROUGHPUT.md; or compare a run with a saved one.")
    parser.add_argument("cells", nargs="*", help="cell ids (default: one passing default-"
                        "selection cell per engine, from results/)")
    parser.add_argument("--compare", type=_existing_path, metavar="PATH",
                        help="compare results/ with a saved reports/results.json or results folder")
    parser.add_argument("--metric", action="append", default=[],
                        help="with --compare: only this metric (repeatable)")
    parser.add_argument("--profile", default="full", choices=sorted(PROFILES))
    parser.add_argument("--fixture", choices=sorted({*REAL_SHAPES, *TRAINED}),
                        help="time this model instead of each cell's first fixture: a real shape "
                             "(built first, then cached) or the trained model")
    add_shape_options(parser.add_argument)
    args = parser.parse_args(argv)
    try:
        profile(args.profile, **shape_overrides(vars(args)))
        for name in args.metric:
            from bench.metrics import check_metric

            check_metric(name)
    except BenchInputError as exc:
        raise UsageError(str(exc)) from None
    return args


def real_shape_args(argv: list[str]) -> argparse.Namespace:
    """`nox -s realsize -- [CELL-GLOB ...] [--shape NAME] [--limit-min N] [--against-random]`."""
    from fixtures.catalog import DEFAULT_REAL_SHAPE, REAL_SHAPES, TRAINED

    parser = _Parser(prog="nox -s realsize --",
                     description="Every generation engine, in each precision it offers, on a real "
                                 "model shape (seeded random weights, the real vocabulary) or on "
                                 "the trained model, one after another; then reports/THROUGHPUT.md "
                                 "opens with the table. Shapes: "
                                 + "; ".join(f"{k}: {v}" for k, v in REAL_SHAPES.items())
                                 + "; the trained model: " + ", ".join(TRAINED))
    parser.add_argument("cells", nargs="*", metavar="CELL-GLOB",
                        help="only these runs (globs over cell ids; default: every one)")
    parser.add_argument("--shape", default=DEFAULT_REAL_SHAPE, choices=[*REAL_SHAPES, *TRAINED],
                        help=f"the real shape, or the trained model (default: {DEFAULT_REAL_SHAPE})")
    parser.add_argument("--limit-min", type=positive, default=10,
                        help="minutes one engine may take before it is stopped and shown as timed "
                             "out (default: 10)")
    parser.add_argument("--against-random", action="store_true",
                        help="with the trained model: each engine also on its shape's seeded random "
                             "weights right after, in the same run (the trained ÷ random table)")
    args = parser.parse_args(argv)
    if args.against_random and args.shape not in TRAINED:
        parser.error(f"--against-random: {args.shape!r} is not a trained model; give --shape "
                     + " or ".join(TRAINED))
    args.also = TRAINED[args.shape].shape if args.against_random else ""
    args.shapes = (args.shape, *([args.also] if args.also else []))
    return args


def bench_run_args(args: argparse.Namespace) -> tuple[str, ...]:
    """incell/throughput/run.py's arguments for the chosen profile and shape options."""
    from bench.profiles import shape_argv

    fixture = getattr(args, "fixture", None)
    return ("--profile", args.profile, *(("--fixture", fixture) if fixture else ()),
            *shape_argv(vars(args)))
