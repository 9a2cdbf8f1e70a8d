"""Check a server someone else runs, where it stands: `nox -s endpoint -- --url URL --model NAME`.

    python -m incell.endpoint --url http://host:8000/v1 --model NAME [--kind generation|embedding]
        [--api-key-env VAR] [--tokenizer DIR|FIXTURE] [--name NAME] [--out DIR] [--no-load]
        [load options, as serve-bench takes them: --users 1,2,4 --rate 2 ...]

Before any suite runs, the endpoint is checked (incell/endpoint_preflight.py): the URL's scheme
and host, that it answers, that it serves --model (else the models it lists are named), and that
it answers the kind asked (/completions or /embeddings). Then, with engines/endpoint.py's
adapters (nothing started):

1. the API-surface suite (incell/conformance/test_api.py), every property of its kind;
2. the engine properties that need neither a reference nor the same engine in process
   (ENGINE_PROPERTIES), where --tokenizer gives the served model's tokenizer to count tokens;
3. the load sweep of serve-bench (incell/serve_bench.py), generation with --tokenizer.

What did not run is ➖ with its reason. The result, `endpoint-<name>.json` in --out (default
results/endpoint), is a cell result (the endpoint rung: its /models answer, the headers that
name it, the fields beyond OpenAI's it took; conformance, api, serve_bench), shown in SERVING.md
beside the server cells. The API key is read from the variable --api-key-env names and is never
written: every text that leaves the process has it scrubbed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.loadgen import LoadError
from core.ask import Ask
from core.details import ConformanceDetail, PropertyResult
from core.errors import unknown
from core.proc import REPO
from core.properties import PROPERTIES
from core.results import CellInfo, CellResult, ErrorInfo, Rung, machine_info
from engines import ENGINES
from engines.endpoint import REFERENCE_ENV, Endpoint, EndpointError, check_url
from fixtures.catalog import FixtureMissingError, folder_or_fixture
from incell.endpoint_preflight import preflight
from incell.scrub import Scrubbed, save_scrubbed
from incell.serve_bench import add_load_options, check_loads, sweep

KINDS = {"generation": "endpoint", "embedding": "endpoint_embed"}
"""The kind asked -> the registered adapter (engines/endpoint.py)."""
KIND_SUITES = {engine: kind for kind, engine in KINDS.items()}
ENGINE_PROPERTIES = {
    "generation": ("greedy_determinism", "batch_invariance", "padding_invariance",
                   "order_invariance", "streaming_equals_generate", "length_contract",
                   "stop_strings", "seeded_sampling", "continuation", "call_order_independence",
                   "idempotence"),
    "embedding": ("shape_and_dimension", "unit_norm", "batch_size_invariance", "order_invariance",
                  "whitespace_contract", "call_order_independence"),
}
"""The engine suite's properties that an endpoint can be held to on its own answers."""
NEEDS_LOCAL = ("compares with what only a local copy of the model gives (a reference tokenizer, "
               "transformers' ids or logits, the engine in process): not run against an endpoint")
NEEDS_TOKENIZER = ("counts and compares tokens: needs the served model's tokenizer, --tokenizer "
                   "DIR|FIXTURE (a folder with its tokenizer.json, or a fixture's name)")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nox -s endpoint --", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the OpenAI base URL, e.g. http://host:8000/v1")
    parser.add_argument("--model", required=True, help="the served model's name (/v1/models)")
    parser.add_argument("--kind", choices=sorted(KINDS), help="what it serves (default: what "
                        "it answers, completions before embeddings)")
    parser.add_argument("--api-key-env", default="", metavar="VAR",
                        help="the environment variable that holds the API key (sent as a Bearer "
                             "token, never written anywhere)")
    parser.add_argument("--tokenizer", type=model_folder, metavar="DIR|FIXTURE",
                        help="a folder with the served model's tokenizer.json (and config.json) "
                             "or a fixture's name (smollm2-135m-instruct): the engine properties "
                             "and the load sweep count tokens with it")
    parser.add_argument("--reference", metavar="ENGINE",
                        help="an in-process engine (e.g. transformers) to hold the endpoint to "
                             "(wire_parity), on --fixture, in a venv of one of its cells")
    parser.add_argument("--fixture", type=model_folder, metavar="DIR|FIXTURE", help="the served "
                        "model's local copy the reference loads (default: --tokenizer)")
    parser.add_argument("--reference-venv", type=Path, metavar="DIR",
                        help="the venv the reference runs in (default: .nox/cell-<ENGINE>-*)")
    parser.add_argument("--name", help="the result's name (default: host-port-model)")
    parser.add_argument("--out", type=Path, default=Path("results/endpoint"))
    parser.add_argument("--no-load", action="store_true", help="skip the load sweep")
    parser.add_argument("--load-only", action="store_true",
                        help="the load sweep alone: no API surface, no engine properties (they "
                             "take minutes before every sweep); their rungs say not run")
    parser.add_argument("--hypothesis-budget", type=int, default=10)
    add_load_options(parser)
    return parser


def model_folder(text: str) -> Path:
    """A folder as given, or the folder of the fixture of that name (fixtures/catalog.py)."""
    try:
        return folder_or_fixture(text)
    except FixtureMissingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The options, checked: a bad one stops here with a message naming it."""
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        args.url = check_url(args.url)
        check_loads(args)
    except (EndpointError, LoadError) as exc:
        parser.error(str(exc))
    if args.tokenizer is not None and not (args.tokenizer / "tokenizer.json").is_file():
        parser.error(f"--tokenizer {args.tokenizer}: no tokenizer.json there")
    if args.load_only and args.no_load:
        parser.error("--load-only and --no-load ask for nothing at all: give one of them")
    if args.load_only and args.tokenizer is None:
        parser.error("--load-only runs the load sweep, which needs --tokenizer DIR (prompts of "
                     "exactly --input-tokens tokens)")
    if args.name is not None and not re.fullmatch(r"[A-Za-z0-9._-]+", args.name):
        parser.error(f"--name {args.name!r}: use letters, digits, '.', '_' and '-' only")
    if args.reference is not None:
        try:
            args.reference_python = reference_python(args.reference, args.reference_venv)
        except EndpointError as exc:
            parser.error(str(exc))
        args.fixture = args.fixture or args.tokenizer
        args.tokenizer = args.tokenizer or args.fixture  # a local copy has its tokenizer
        if args.fixture is None or not (args.fixture / "config.json").is_file():
            parser.error("--reference needs --fixture DIR (or --tokenizer DIR): the served model's "
                         "local copy, a folder with its config.json")
    return args


def reference_python(engine: str, venv: Path | None) -> Path:
    """The python of a venv where the reference engine runs: --reference-venv, else a cell's."""
    local = {e: v for e, v in ENGINES.items() if v.transport == "process"}
    if engine not in local:
        raise EndpointError(unknown("--reference engine", engine, local))
    found = [venv] if venv is not None else sorted(
        (REPO / ".nox").glob(f"cell-{engine}-*/"), reverse=True)  # numpy2 before numpy1
    for folder in found:
        if (folder / "bin" / "python").is_file():
            return folder / "bin" / "python"
    raise EndpointError(f"--reference {engine}: no venv to run it in ({venv or f'.nox/cell-{engine}-*'}); "
                        f"make one with nox -s \"cell({engine}-numpy2)\" or give --reference-venv DIR")


def default_name(url: str, model: str) -> str:
    """host-port-model, the model's last path part where its name is a path."""
    host = httpx.URL(url)
    model = model.rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{host.host}-{host.port or host.scheme}-{model}").strip("-")


def suite(rung: str, engine_id: str, fixture_dir: Path, properties: list[str], budget: int) -> Rung:
    """A conformance suite against the endpoint, in this process (incell/worker.run_suite)."""
    from incell.worker import run_suite

    started = time.perf_counter()
    ask = Ask(engine=engine_id, suite=rung if rung == "api" else KIND_SUITES[engine_id],
              fixtures=(str(fixture_dir),), hypothesis_budget=budget, properties=tuple(properties))
    result = run_suite(rung, ask)
    result.duration_s = round(time.perf_counter() - started, 2)
    return result


def wire_parity(args: argparse.Namespace, engine_id: str) -> dict[str, PropertyResult]:
    """The API suite's wire_parity, the endpoint against --reference on --fixture, run in the
    reference's venv (it imports the engine's library)."""
    from core.results import read_rung

    print(f"wire parity against {args.reference} in process", flush=True)
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "parity.json"
        done = subprocess.run(
            [str(args.reference_python), "-m", "pytest", str(REPO / "incell/conformance/test_api.py"),
             "-q", "-p", "no:cacheprovider", "-c", str(REPO / "incell/conformance/pytest.ini"),
             "--rootdir", str(REPO), "--ask", Ask(engine=engine_id, suite="api",
                                                   fixtures=(str(args.fixture.resolve()),),
                                                   properties=("wire_parity",)).arg(),
             "--conformance-json", str(out)],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), REFERENCE_ENV: args.reference},
            capture_output=True, text=True, check=False)
        print(done.stdout[-2000:], flush=True)
        if not out.is_file():
            return not_run(["wire_parity"], f"the reference run wrote nothing: {done.stderr[-300:]}")
        return {"wire_parity": read_rung(out).detail.properties["wire_parity"]}


def not_run(names, reason: str) -> dict[str, PropertyResult]:
    return {name: PropertyResult(status="skip", message=reason) for name in names}


def with_others(rung: Rung, others: dict[str, PropertyResult]) -> Rung:
    """The rung's record with the properties found outside its suite run added: those not run
    (➖ with their reason), and wire parity where a reference ran it."""
    if rung.detail is None:
        rung.detail = ConformanceDetail()
    rung.detail.properties = {**others, **rung.detail.properties}
    return rung


def check(args: argparse.Namespace) -> CellResult:
    """Every suite against the endpoint; what fails inside is a result."""
    endpoint = Endpoint(args.url, args.model, args.api_key_env)
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    detail = preflight(endpoint, args.kind, args.tokenizer)
    endpoint = Endpoint(endpoint.url, endpoint.model, endpoint.key_env, tuple(detail.fields))
    os.environ.update(endpoint.env())
    engine_id, kind = KINDS[detail.kind], detail.kind
    name = args.name or default_name(args.url, args.model)
    cell = CellInfo(id=f"endpoint-{name}", engine=engine_id, kind=kind, env=name)
    rungs = [Rung("endpoint", "pass", detail=detail)]
    with tempfile.TemporaryDirectory() as empty:
        fixture_dir = args.tokenizer.resolve() if args.tokenizer else Path(empty)
        if args.load_only:
            rungs += [Rung(name, "not_run", reason="--load-only") for name in ("api", "conformance")]
            rungs.append(load_sweep(args, engine_id, kind, endpoint, fixture_dir))
            return finished(cell, started_at, rungs)
        print(f"endpoint {endpoint.url} ({kind}, model {endpoint.model}): API surface", flush=True)
        api = [n for n in PROPERTIES["api"] if n != "wire_parity"]
        parity = (wire_parity(args, engine_id) if args.reference
                  else not_run(["wire_parity"], NEEDS_LOCAL))
        rungs.append(with_others(suite("api", engine_id, fixture_dir, api, args.hypothesis_budget),
                                parity))
        ours = list(ENGINE_PROPERTIES[kind]) if args.tokenizer or kind == "embedding" else []
        local = not_run([n for n in PROPERTIES[kind] if n not in ENGINE_PROPERTIES[kind]], NEEDS_LOCAL)
        if ours:
            print("engine properties", flush=True)
            rungs.append(with_others(suite("conformance", engine_id, fixture_dir, ours,
                                          args.hypothesis_budget), local))
        else:
            rungs.append(with_others(Rung("conformance", "pass"),
                                    {**not_run(ENGINE_PROPERTIES[kind], NEEDS_TOKENIZER), **local}))
        api_rung = rungs[1].detail.properties if rungs[1].detail else {}
        keeps_alive = getattr(api_rung.get("keep_alive"), "status", "pass") != "fail"
        rungs.append(load_sweep(args, engine_id, kind, endpoint, fixture_dir,
                                keeps_alive=keeps_alive))
    return finished(cell, started_at, rungs)


def finished(cell: CellInfo, started_at: str, rungs: list[Rung]) -> CellResult:
    return CellResult(cell=cell, machine=machine_info(), started_at=started_at,
                      finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                      rungs=rungs, climbed_to="serve_bench")


def load_sweep(args, engine_id: str, kind: str, endpoint: Endpoint, fixture_dir: Path, *,
               keeps_alive: bool = True) -> Rung:
    """The load sweep against the endpoint; `keeps_alive` False (its keep_alive property failed):
    a connection of its own for each request."""
    if args.no_load:
        return Rung("serve_bench", "not_run", reason="--no-load")
    if kind != "generation":
        return Rung("serve_bench", "not_run", reason="the load sweep streams completions; an "
                                                      "embedding server has none")
    if args.tokenizer is None:
        return Rung("serve_bench", "not_run", reason="prompts of exactly --input-tokens tokens, "
                                                      "and a count where the server sends no "
                                                      "usage, need --tokenizer DIR")
    from engines import load_engine_class

    print("load sweep", flush=True)
    started = time.perf_counter()
    engine = load_engine_class(engine_id)()
    engine.reuses_connections = keeps_alive
    try:
        engine.load(fixture_dir)
        args.engine, args.fixture = engine_id, endpoint.model
        detail = sweep(engine, args, endpoint.headers(), eos_off="ignore_eos" in endpoint.fields)
        return Rung("serve_bench", "pass", duration_s=round(time.perf_counter() - started, 2),
                    detail=detail)
    except Exception as exc:  # a failure inside is the rung's result
        return Rung("serve_bench", "fail", error=ErrorInfo.from_exception(exc))
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    endpoint = Endpoint(args.url, args.model, args.api_key_env)
    try:
        endpoint.key()  # an unset key variable is named before any request
    except EndpointError as exc:
        print(f"nox -s endpoint: {exc}", file=sys.stderr)
        return 2
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Scrubbed(sys.stdout, endpoint), Scrubbed(sys.stderr, endpoint)
    try:
        result = check(args)
        path = save_scrubbed(result, args.out, endpoint)
        for rung in result.rungs:
            print(f"  {rung.name}: {rung.status}" + (f" ({rung.reason})" if rung.reason else ""))
        print(f"endpoint {endpoint.url}: {path} (then nox -s report: reports/SERVING.md)")
        return 0
    except EndpointError as exc:
        print(f"nox -s endpoint: {exc}", file=sys.stderr)
        return 2
    finally:
        sys.stdout, sys.stderr = streams


if __name__ == "__main__":
    raise SystemExit(main())
