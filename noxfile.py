"""infermatrix sessions, generated from compat/matrix.toml.

    nox                     run the default selection of cells (nox -s run), then the report
    nox -l                  list sessions (nox -l --json -t cell for a CI matrix)
    nox -s "cell(transformers-numpy2)" [-- --from-lock results/transformers-numpy2.json]
    nox -s resolve          resolve every cell of the full matrix (nothing installed)
    nox -s bisect -- PACKAGE CELL
    nox -s serve            the servers (vllm serve, llama_cpp.server, transformers serve,
                            infinity_emb v2) checked over HTTP, then the report
    nox -s stacks           several engines in one environment (compat/matrix.toml's [stacks]):
                            each engine's climb in it, the conflict chain where it does not
                            resolve, all of them in one process
    nox -s stack -- STACK [--nearest]   one stack; --nearest: the newest set that works together
    nox -s quant            each engine's quantizations (llama.cpp GGUF types, CTranslate2 int8,
                            onnxruntime-genai int4, the ONNX embedder's int8) against the float32
                            reference and beside its unquantized cell
    nox -s serve-bench      each generation server under load (steady-state points), then the report
    nox -s report           take results/ into reports/records/, render reports/ from the records
    nox -s report -- --check   the committed reports re-render from their records byte for byte
    nox -s bench            the throughput grid in the cells' venvs, then the reports
    nox -s bench -- --compare reports/results.json   this run against a saved one
    nox -s endpoint -- --url http://host:8000/v1 --model NAME [--tokenizer DIR] [--api-key-env VAR]
                            a server someone else runs: the API-surface suite, the engine
                            properties it can be held to, the load sweep (nothing started)
    nox -s realsize         every generation engine, in each precision, on a real model shape
    nox -s site             the static site (reports/site/index.html) from the results and history
    nox -s here -- --python PATH --engine ID [--device cuda]
                            a cell in an existing environment (nothing resolved or installed)
    nox -t cuda             the CUDA cells (on a machine without a GPU: resolve only, then ➖)
    nox -s tests            the suite's own tests
Any run takes `-- --exclude-newer YYYY-MM-DD` to resolve as of that date.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent))

from compat import cli, drive, ladder
from compat import matrix as matrix_mod
from compat.cell import Options
from compat.plan import bench_cells, check_pins, pick_runs, real_shape_runs
from compat.reuse import check_force, last_result
from core import layout
from core.errors import InfermatrixError
from core.proc import interrupt_on_signals

ROOT = Path(__file__).parent
RESULTS = Path(os.environ.get("INFERMATRIX_RESULTS", ROOT / "results"))
# what each session installs: pyproject.toml's extras, the one list of each
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
REPORT_DEPS, TEST_DEPS, ENDPOINT_DEPS = (tuple(EXTRAS[k]) for k in ("report", "test", "endpoint"))

MATRIX_FILE = Path(os.environ.get("INFERMATRIX_MATRIX", matrix_mod.MATRIX_PATH))
MATRIX = matrix_mod.load(MATRIX_FILE)  # a bad matrix stops here, before any environment is built

# SIGTERM and SIGHUP (a cancelled CI job, `timeout`, a closed terminal) stop a run as Ctrl-C
# does: every rung's processes and servers are killed; SIGKILL is core/guard.py's.
interrupt_on_signals()

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["run", "report"]


def _cell_session(cell: matrix_mod.Cell) -> None:
    tags = ["cell", cell.engine.id, cell.engine.kind, cell.device, *cell.selections]

    # python=False: the ladder makes the cell's venv itself (uv, under .nox/), so a
    # missing interpreter or a broken install is a recorded result, not a nox error.
    @nox.session(name=f"cell({cell.id})", python=False, tags=tags, default=False)
    def session(session: nox.Session) -> None:
        """One cell: resolve, install, import, load, conformance, api, bench; a failure is a result."""
        venv = ROOT / ".nox" / f"cell-{cell.id}"
        try:
            options = cli.cell_options(session.posargs, cell.engine.kind, cell.engine.transport)
            check_force(options.force, [cell.id])
            check_pins([cell])
        except InfermatrixError as exc:
            session.error(str(exc))
        result = ladder.run_cell(cell, venv=venv, results_dir=RESULTS, log=session.log,
                                 options=options)
        failed = result.first_failure
        summary = f"{failed.name} failed: {failed.error.signature}" if failed and failed.error \
            else "every rung passed" if not failed else f"{failed.name} failed"
        session.log(f"[{cell.id}] {summary} -> {RESULTS / (cell.id + '.json')}")


for _cell in MATRIX.cells:
    _cell_session(_cell)


@nox.session(python=False)
def resolve(session: nox.Session) -> None:
    """Resolve every cell of the full matrix in parallel (nothing installed), then report."""
    try:
        args = cli.resolve_args(session.posargs)
        cells = MATRIX.select(args.patterns, "full")
        check_pins(cells)
    except InfermatrixError as exc:
        session.error(str(exc))
    out = RESULTS / layout.RESOLVE
    session.log(f"resolving {len(cells)} cells with {args.workers} workers")
    options = Options(exclude_newer=args.exclude_newer)
    drive.resolve_all(list(cells), work=ROOT / ".nox" / "resolve", results_dir=out,
                       log=session.log, options=options, workers=args.workers)
    session.notify("report", posargs=[])  # takes results/resolve/ into reports/resolve/records/


@nox.session(python=False)
def bisect(session: nox.Session) -> None:
    """Where a package's releases stop (or start) working in a cell: -- PACKAGE CELL [--good V]."""
    from compat.bisect import bisect as run_bisect
    from compat.bisect import boundary

    try:
        args = cli.bisect_args(session.posargs)
        cell = MATRIX.cell(args.cell)
        options = Options(exclude_newer=args.exclude_newer)
        record = run_bisect(cell, args.package, venv=ROOT / ".nox" / f"bisect-{cell.id}",
                            results_dir=RESULTS, log=session.log, options=options,
                            good=args.good)
    except InfermatrixError as exc:
        session.error(str(exc))
    session.log(f"{record.package} in {record.cell}: {boundary(record.boundary)} "
                f"({len(record.probes)} probes of at most {record.max_probes}) "
                f"{record.boundary.note}")


@nox.session(python=False)
def matrix(session: nox.Session) -> None:
    """Print the cells of compat/matrix.toml and what each installs."""
    for cell in MATRIX.cells:
        session.log(f"cell({cell.id}): {' '.join(cell.requirements)}")


@nox.session(venv_backend="uv")
def run(session: nox.Session) -> None:
    """The default selection (or -- --selection NAME): cells climb to the api rung side by side
    (-- --workers N), then every bench rung runs alone (timings want a quiet machine). `nox` runs
    this, then the report."""
    run_selection(session, session.posargs)


@nox.session(venv_backend="uv")
def serve(session: nox.Session) -> None:
    """The servers (selection "serve"): each started in its cell on a free loopback port, checked
    over HTTP by its engine's suite and the API-surface suite, stopped; then the report."""
    run_selection(session, ["--selection", "serve", *session.posargs])
    session.notify("report", posargs=[])


@nox.session(venv_backend="uv")
def quant(session: nox.Session) -> None:
    """The quantizations (selection "quant"): each engine's quantized cells beside its
    unquantized one, quality against the float32 reference and speed; then the report
    (reports/QUANTIZATION.md)."""
    run_selection(session, ["--selection", "quant", *session.posargs])
    session.notify("report", posargs=[])


@nox.session(venv_backend="uv")
def stacks(session: nox.Session) -> None:
    """The stacks (selection "stacks", docs/stacks.md): several engines in one environment each,
    resolved and installed once; every engine climbs in it, then all of them run in one process
    (both import orders); a stack that does not resolve gets its conflict chain and a forced
    install. Then the report (COMPATIBILITY.md's Stacks section)."""
    run_selection(session, ["--selection", "stacks", *session.posargs])
    session.notify("report", posargs=[])


@nox.session(python=False)
def stack(session: nox.Session) -> None:
    """One stack: -- STACK [--nearest] (a stack id, or its [stacks.NAME] where that declares one),
    or -- FILE [--extra NAME] [--axis numpy=2] (a requirements.txt, pyproject.toml or uv.lock:
    your own stack, judged on its packages): its climb, its conflict chain and forced install
    where it does not resolve, the one-process step; --nearest searches the newest set of
    versions that works together. Then the report."""
    from compat.nearest import one_stack
    from compat.stack_file import stack_named

    try:
        args = cli.stack_args(session.posargs)
        chosen = stack_named(args.stack, MATRIX, extras=tuple(args.extra), axes=tuple(args.axis))
    except InfermatrixError as exc:
        session.error(str(exc))
    one_stack(chosen, venv_root=ROOT / ".nox", results_dir=RESULTS, log=session.log,
              options=args.options, search=args.nearest)
    session.notify("report", posargs=[])


@nox.session(name="serve-bench", venv_backend="uv")
def serve_bench(session: nox.Session) -> None:
    """Each generation server under load (incell/serve_bench.py), in the venv `nox -s serve` left: a
    closed-loop sweep of users to saturation, and open-loop rates if asked; then the report.
    Options after --, as python -m incell.serve_bench takes them: --users 1,2,4,8,16 --rate 1,2
    --mode poisson|constant --cap N --input-tokens 128 --output-tokens 32 --duration 60
    --warmup 2 --min-requests 20 --per-user 10 --slo ttft=1s,tpot=100ms,e2e=10s (a closed-loop
    point shorter than the defaults is marked: no steady state). `-- --compare DIR` compares
    results/serve-bench with a saved folder of records instead (reports/SERVE_COMPARE.md).
    `-- --cell llama_server-base` (repeatable) measures only those servers. `-- --chat --fixture
    smollm2-135m-instruct`: /v1/chat/completions with user turns of real text (seeded lengths),
    its records in results/serve-bench-chat.
    `-- --fixture smollm2-135m-shape` serves a real shape (fixtures/catalog.REAL_SHAPES): built
    first, its records in results/real-shape/<shape>/serve-bench, shown in THROUGHPUT.md's
    real-shape section."""
    from fixtures.catalog import REAL_SHAPES

    servers = [c for c in MATRIX.selected("serve") if c.engine.kind == "generation"]
    try:
        args = cli.serve_bench_args(session.posargs, [s.id for s in servers])
    except InfermatrixError as exc:
        session.error(str(exc))
    out = layout.serve_bench_dir(RESULTS, chat=args.chat)
    if args.fixture in REAL_SHAPES:
        out = layout.serve_bench_dir(RESULTS, args.fixture)
        build_or_stop(session, args.fixture)
    if args.compare:
        session.install(*REPORT_DEPS)
        session.run("python", "-m", "bench.compare", "--serving", str(args.compare), str(out),
                    "--out", str(ROOT / "reports" / "SERVE_COMPARE.md"), *args.load,
                    env={"PYTHONPATH": str(ROOT)})
        return
    ran = 0
    for cell in (c for c in servers if not args.cells or c.id in args.cells):
        venv = ROOT / ".nox" / f"cell-{cell.id}"
        if not (venv / "bin" / "python").exists():
            session.log(f"{cell.id}: no venv yet; `nox -s serve` makes it")
            continue
        session.log(f"serve-bench: {cell.id}")
        ran += drive.serve_bench(cell, venv=venv, results_dir=out, log=session.log,
                                 args=tuple(args.load)) is not None
    if not ran:
        session.error("no server could be measured: run `nox -s serve` first")
    session.notify("report", posargs=[])


def build_or_stop(session: nox.Session, *fixtures: str) -> None:
    """Build fixtures (a real shape, the trained model) into the cache, or stop the session
    with the build's error."""
    from fixtures.ensure import FixtureBuildError, build_fixtures

    try:
        build_fixtures(list(fixtures), limit=1800, log=session.log)
    except FixtureBuildError as exc:
        session.error(f"fixture build failed: {exc.error.message}\n{exc.error.text}")


def run_selection(session: nox.Session, argv: list[str]) -> None:
    from compat.live import LivePages
    from compat.reuse import strays

    try:
        options, workers, selection = cli.run_args(argv)
        cells = list(MATRIX.selected(selection))
        stacks = MATRIX.selected_stacks(selection)
        check_force(options.force, [c.id for c in cells] + [m.id for s in stacks for m in s.members])
        check_pins(cells)
    except InfermatrixError as exc:
        session.error(str(exc))
    for stray in strays(RESULTS, [c.id for c in MATRIX.cells]):
        session.log(f"results/{stray}.json: cell {stray!r} is no longer in {MATRIX_FILE.name}; "
                    "not resumed, and the report names and skips it (delete the file to quiet this)")
    session.install(*REPORT_DEPS)  # the pages are written as cells land (compat/live.py)
    pages = LivePages(Path(session.virtualenv.location) / "bin" / "python", RESULTS,
                      ROOT / "reports", len(cells), matrix_file=MATRIX_FILE, log=session.log)
    session.log(f"{len(cells)} cells and {len(stacks)} stack(s), {workers} at a time; then the "
                "bench rungs one by one "
                "(a cell whose inputs did not change since its last result is reused; --force); "
                "the verdicts so far in reports/COMPATIBILITY.md and reports/site/index.html")
    try:
        results = drive.run_matrix(cells, venv_root=ROOT / ".nox", results_dir=RESULTS,
                                   log=session.log, options=options, workers=workers, pages=pages,
                                   selection=selection, stacks=stacks, durations=drive.
                                   committed_durations(ROOT / "reports" / "results.json"))
    finally:
        pages.close()
    failed = sum(1 for r in results if r.first_failure)
    session.log(f"{len(results) - failed} cells passed every rung, {failed} stopped at a rung "
                f"(a result, not an error) -> {RESULTS}")


@nox.session(venv_backend="uv")
def report(session: nox.Session) -> None:
    """Take the run's results/ into reports/records/ (its resolve/ into reports/resolve/records/),
    then render every published page, docs include and the site from the committed records.

    nox -s report -- --check          render the records into a temporary folder and compare
                                      with the committed pages (exit 1 on any difference)
    nox -s report -- --cuda DIR       take the GPU check's results into reports/cuda/records/
    nox -s report -- FOLDER ... --out DIR [--title T]   render other records elsewhere"""
    session.install(*REPORT_DEPS)
    try:
        args = cli.report_options(session.posargs)
    except InfermatrixError as exc:
        session.error(str(exc))
    env, matrix = {"PYTHONPATH": str(ROOT)}, ("--matrix", str(MATRIX_FILE))
    if args.check:
        session.run("python", "-m", "pages.publish", "--check", *matrix, env=env)
        return
    if args.folders:
        session.run("python", "-m", "pages.render", *map(str, args.folders), "--out", str(args.out),
                    "--title", args.title, *matrix, env=env)
        return
    takes = [(args.cuda, "reports/cuda", ())] if args.cuda else [
        (RESULTS, "reports", (layout.RESOLVE,)), (RESULTS / layout.RESOLVE, "reports/resolve", ())]
    for source, out, skip in takes:
        if Path(source).is_dir():
            session.run("python", "-m", "pages.records", str(source), "--into",
                        str(ROOT / out / "records"), *(a for s in skip for a in ("--skip", s)),
                        *matrix, env=env)
    session.run("python", "-m", "pages.publish", "--root", str(ROOT), *matrix, env=env)
    session.run("python", "-m", "pages.site", "--reports", str(ROOT / "reports"), "--out",
                str(ROOT / "reports" / "site"), "--matrix", str(MATRIX_FILE), env=env)


@nox.session(venv_backend="uv")
def audit(session: nox.Session) -> None:
    """The reports audit themselves (pages/audit.py): every derived figure recomputed from its
    inputs, every raw sample held to its device's measured limits, every ✅ to a check that ran.

    nox -s audit [-- RESULTS ...]   results.json files or records folders (default: the
    committed reports/records/ and reports/cuda/records/); exit 1 on any finding."""
    session.install(*REPORT_DEPS)
    session.run("python", "-m", "pages.audit", *session.posargs, env={"PYTHONPATH": str(ROOT)})


@nox.session(venv_backend="uv")
def site(session: nox.Session) -> None:
    """The static site from results/ and reports/ (history.jsonl, the pages, the plots), into
    reports/site/: open reports/site/index.html from disk, or publish it (CI deploys it to Pages).

    nox -s site [-- RESULTS ... --base-url https://OWNER.github.io/REPO]
    RESULTS: result folders or merged results.json files (default: the committed
    reports/results.json, what the published reports were made from).
    """
    session.install(*REPORT_DEPS)
    args = session.posargs or [str(ROOT / "reports" / "results.json")]
    session.run("python", "-m", "pages.site", *args, "--reports", str(ROOT / "reports"),
                "--out", str(ROOT / "reports" / "site"), "--matrix", str(MATRIX_FILE),
                env={"PYTHONPATH": str(ROOT)})


@nox.session(venv_backend="uv")
def endpoint(session: nox.Session) -> None:
    """A server someone else runs, checked where it stands (incell/endpoint.py): the API-surface
    suite, the engine properties it can be held to, the load sweep; nothing started or stopped.

    nox -s endpoint -- --url http://host:8000/v1 --model NAME [--kind generation|embedding]
        [--api-key-env VAR] [--tokenizer DIR] [--name NAME] [--no-load | --load-only (the sweep
        alone)] [serve-bench's load options: --chat --users 1,2,4 --rate 2 --input-tokens 128 ...]
    nox -s endpoint -- --compare OLD.json NEW.json     two runs of the same endpoint

    The result goes to results/endpoint/endpoint-<name>.json; the report shows it in SERVING.md."""
    session.install(*ENDPOINT_DEPS)
    env = {"PYTHONPATH": str(ROOT)}
    if session.posargs[:1] == ["--compare"]:
        session.run("python", "-m", "bench.compare", "--endpoint", *session.posargs[1:], env=env)
        return
    session.run("python", "-m", "incell.endpoint", "--out", str(RESULTS / layout.ENDPOINT),
                *session.posargs, env=env)
    session.notify("report", posargs=[])


@nox.session(venv_backend="uv")
def bench(session: nox.Session) -> None:
    """The throughput grid (batch x length) in the cells' venvs, then the reports.

    nox -s bench                          one passing default cell per engine, full profile
    nox -s bench -- transformers-numpy2 --batches 1,4 --input-lengths 128
    nox -s bench -- vllm-quantnone --fixture smollm2-135m-shape --batches 1,2,3,4 --input-lengths 128
    nox -s bench -- --compare reports/results.json [--metric decode_tokens_per_s]
    """
    try:
        args = cli.bench_args(session.posargs)
    except InfermatrixError as exc:
        session.error(str(exc))
    session.install(*REPORT_DEPS)
    env = {"PYTHONPATH": str(ROOT)}
    if args.compare:
        session.run("python", "-m", "bench.compare", str(args.compare), str(RESULTS), "--out",
                    str(ROOT / "reports" / "BENCH_COMPARE.md"),
                    *(a for m in args.metric for a in ("--metric", m)), env=env)
        return
    try:
        cells = [MATRIX.cell(cid) for cid in args.cells] or bench_cells(MATRIX, RESULTS)
    except InfermatrixError as exc:
        session.error(str(exc))
    if not cells:
        session.error("no cell of the default selection has passed every rung in results/: "
                      "run `nox` first, or name cells: nox -s bench -- CELL ...")
    if args.fixture:
        build_or_stop(session, args.fixture)
    options = Options(bench_args=cli.bench_run_args(args))
    grid = RESULTS / layout.BENCH
    for i, cell in enumerate(cells, 1):
        session.log(f"bench {i}/{len(cells)}: {cell.id} ({args.profile} profile)")
        ladder.bench_only(cell, venv=ROOT / ".nox" / f"cell-{cell.id}", results_dir=grid,
                         log=session.log, options=options, base=last_result(RESULTS, cell.id))
    session.notify("report", posargs=[])


@nox.session(venv_backend="uv")
def realsize(session: nox.Session) -> None:
    """Every generation engine, in each precision it offers, on a real model shape, then the reports.

    nox -s realsize                               the default shape (SmolLM2-135M's), every engine
    nox -s realsize -- --shape qwen2-0.5b-shape   Qwen2-0.5B's (about 2 GB at float32)
    nox -s realsize -- --shape smollm2-135m-instruct   the trained model (and its shipped GGUF)
    nox -s realsize -- --shape smollm2-135m-instruct --against-random   and its shape, one run
    nox -s realsize -- 'llama_cpp-*' --limit-min 5
    Runs in the venvs `nox` and `nox -s quant` left; where CUDA is present, on the CUDA cells."""
    from fixtures.catalog import TRAINED

    try:
        args = cli.real_shape_args(session.posargs)
        runs = pick_runs(real_shape_runs(MATRIX, ladder.cuda_available(),
                                         trained=args.shape in TRAINED), args.cells)
    except InfermatrixError as exc:
        session.error(str(exc))
    session.install(*REPORT_DEPS)
    session.log(f"building {' and '.join(args.shapes)} (once; then cached by content)")
    build_or_stop(session, *args.shapes)
    missing = [r for r in runs if not (ROOT / ".nox" / f"cell-{r.cell.id}").is_dir()]
    for run in missing:
        session.log(f"{run.label}: no venv yet; climbing its cell first")
        ladder.run_cell(run.cell, venv=ROOT / ".nox" / f"cell-{run.cell.id}", results_dir=RESULTS,
                        log=session.log, options=Options(last_rung="api"))
    drive.real_shape(runs, args.shape, venv_root=ROOT / ".nox", results_dir=RESULTS, also=args.also,
                     out=RESULTS / layout.REAL_SHAPE, log=session.log, limit_s=args.limit_min * 60)
    session.notify("report", posargs=[])


@nox.session(python=False)
def here(session: nox.Session) -> None:
    """Any existing environment as a cell: -- --python PATH --engine ID [--device cuda] [--dtype
    bfloat16] [--name NAME]; resolve and install not run, its versions read from it, the rungs
    from import upwards in it (python -m compat.here --help), then the report."""
    from compat.here import main as here_main

    try:
        code = here_main(["--results", str(RESULTS), *session.posargs])
    except SystemExit as exc:  # argparse's own exit: its message is printed already
        code = exc.code
    if code == 2:
        session.error("bad input to compat.here (above)")
    session.notify("report", posargs=[])


@nox.session(python=False)
def fixtures(session: nox.Session) -> None:
    """Build the tiny LM fixtures into the cache (cells do this themselves when needed)."""
    from fixtures.catalog import OPT_IN, built_dir, built_names
    from fixtures.ensure import FixtureBuildError, build_fixtures

    names = [n for n in built_names() if n not in OPT_IN]
    try:
        build_fixtures(names, limit=600, log=session.log)
    except FixtureBuildError as exc:
        session.error(f"fixture build failed: {exc.error.message}\n{exc.error.text}")
    for name in names:
        session.log(f"{name}: {built_dir(name)}")


@nox.session(venv_backend="uv")
def tests(session: nox.Session) -> None:
    """The suite's own tests (pytest; options after --): those that time nothing over the cores in
    parallel (pytest-xdist; each file's tests on one worker, sharing its module fixtures), then
    the timing tests alone."""
    session.install(*TEST_DEPS)
    # bytecode written once: a machine that sets PYTHONDONTWRITEBYTECODE makes every test process
    # compile what it imports again (an empty value unsets it for Python)
    env = {"PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": ""}
    workers = str(min(4, os.cpu_count() or 1))
    # a core a worker: the engines the tests start (torch, llama.cpp) take one thread each, not
    # a pool per core spinning against the other worker's
    one_thread = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    session.run("pytest", "-n", workers, "--dist", "loadfile", "-m", "not timing", *session.posargs,
                env=env | one_thread)
    # exit 5: no timing test chosen (the first run already failed on an empty choice). A timing test
    # measures a shared machine: a failure gets a second try, said in the log; two fail the session
    first = session.run("pytest", "-m", "timing", *session.posargs, env=env,
                        success_codes=[0, 1, 5], silent=True)
    print(first)
    if "failed" in first.strip().splitlines()[-1]:
        session.log("a timing test failed once (above); running the timing tests again")
        session.run("pytest", "-m", "timing", *session.posargs, env=env, success_codes=[0, 5])


@nox.session(venv_backend="uv")
def lint(session: nox.Session) -> None:
    """ruff check."""
    session.install("ruff")
    session.run("ruff", "check", ".", *session.posargs)
