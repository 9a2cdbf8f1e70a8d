"""A stack's one-process step, inside its environment: every engine imported, loaded and run in
one process, in the order given (the driver runs the registry's order, then its reverse).

    python -m incell.together --engine transformers=small-llama --engine llama_cpp=small-llama \
        --out FILE [--rounds 10]

1. Each engine's adapter is imported in turn. Before each import the attributes of every module
   already imported (and of the classes they define) are noted; after it, any that now hold a
   value defined in another package is a patch, named with where the new value comes from
   (vLLM patches transformers at import). The OpenMP runtimes mapped into the process
   (/proc/self/maps) are read after each import.
2. Each engine is loaded on its first fixture; all stay loaded.
3. Each engine runs a short subset of its conformance (SUBSET) among the others, then a short
   bench: the same call timed round by round here and in a process of its own that holds that
   engine alone (`--alone`, answering "go" on its stdin), back to back, so each round is a pair.

The record (core/stack_records.OneProcess) is written even where an engine fails: its failure is
its part of the record. A crash of the whole process is named by the driver.
"""

from __future__ import annotations

import argparse
import inspect
import re
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

from core.ask import Ask
from core.records import to_json
from core.results import ErrorInfo, write_atomic
from core.stack_records import Imported, OneProcess, Patch, Together

REPO = Path(__file__).resolve().parent.parent
SUBSET = {"generation": ("greedy_parity", "batch_invariance"), "embedding": ("reference_parity",)}
"""The conformance properties each engine runs among the others: the ones whose reference lives
outside the process (the pinned transformers ids, sentence-transformers' vectors)."""
OPENMP = re.compile(r"lib(gomp|iomp5|omp)[^/]*\.so")
SECONDS = "infermatrix-seconds "
PROMPT = "Several engines share one process, its threads and its memory"
TEXTS = [f"Sentence {i} about engines sharing one process and its threads." for i in range(16)]


def within(path: str) -> tuple[str, ...]:
    """A file's path from its package's folder: the parts after site-packages/, or after this
    repository's root; () for a file of neither (the standard library, a system library)."""
    parts = Path(path).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return parts[parts.index(marker) + 1:]
    try:
        return Path(path).resolve().relative_to(REPO).parts
    except ValueError:
        return ()


def package_of(path: str) -> str:
    """The top-level package a file belongs to ("vllm", this repository's "tests"), or ""."""
    parts = within(path)
    return parts[0].removesuffix(".py") if parts else ""


def origin(value: object) -> str:
    """The file that defined `value`, where it is a function, a method or a class (what a patch
    puts in place), or "": a module, a lazy proxy, data. Looked up statically: a lazy module's
    attribute access would import it."""
    if isinstance(value, types.ModuleType):
        return ""
    function = value.__func__ if isinstance(value, (staticmethod, classmethod, types.MethodType)) \
        else value
    if isinstance(function, types.FunctionType):
        return function.__code__.co_filename
    if isinstance(value, type):
        module = sys.modules.get(inspect.getattr_static(value, "__module__", "") or "")
        return getattr(module, "__file__", None) or "" if module is not None else ""
    return ""


def watched() -> dict[str, object]:
    """The modules imported so far that belong to a package (not the standard library, not
    infermatrix's own kernel), by name."""
    ours = ("core", "incell", "engines", "fixtures", "bench", "compat")
    found = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if module is None or not path or name.split(".")[0] in ours:
            continue
        if package_of(path) and package_of(path) != "incell":
            found[name] = module
    return found


def snapshot() -> dict[str, int]:
    """id() of every attribute of the watched modules, and of the classes each defines."""
    seen: dict[str, int] = {}
    with warnings.catch_warnings():  # a deprecated attribute warns when it is looked at
        warnings.simplefilter("ignore")
        for name, module in watched().items():
            note(seen, name, module)
    return seen


def note(seen: dict[str, int], name: str, module: object) -> None:
    try:
        items = list(vars(module).items())
    except TypeError:
        return
    for attr, value in items:
        seen[f"{name}.{attr}"] = id(value)
        if isinstance(value, type) and getattr(value, "__module__", None) == name:
            for cattr, cvalue in list(vars(value).items()):
                seen[f"{name}.{attr}.{cattr}"] = id(cvalue)


def resolve_target(target: str) -> object:
    """The current value at a snapshot's dotted key (module name, then attributes)."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is not None:
            value = module
            for attr in parts[cut:]:
                value = vars(value).get(attr) if hasattr(value, "__dict__") else None
            return value
    return None


def patches(before: dict[str, int]) -> list[Patch]:
    """Attributes that hold another object than before, defined in another package than the
    module's own: a package's own lazy loading fills its modules, which is not a patch."""
    found = []
    for target, old in before.items():
        if target.rpartition(".")[2].startswith("__"):
            continue  # a dunder is the object's own bookkeeping (a rebuilt validator, a docstring)
        value = resolve_target(target)
        if value is None or id(value) == old:
            continue
        where = origin(value)
        owner = package_of(where) if where else ""
        if owner and owner != target.split(".")[0] and owner not in ("typing", "functools"):
            found.append(Patch(target=target, by=short_path(where)))
    return found


def short_path(path: str) -> str:
    """A file as from its package's folder: ".../site-packages/vllm/x.py" -> "vllm/x.py"."""
    return "/".join(within(path)) or path


def openmp_runtimes() -> list[str]:
    """The OpenMP runtime libraries mapped into this process, by file name, each once."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found = {short_path(line.split()[-1]) for line in maps.splitlines()
             if OPENMP.search(line.rsplit("/", 1)[-1])}
    return sorted(found)


def loaded(spec: str, fixture: str, device: str):
    from fixtures.catalog import locate
    from incell.probe import engine_class

    adapter = engine_class(spec)()
    adapter.load(locate(fixture), device=device)
    return adapter


def timed_call(adapter) -> tuple[float, str]:
    """One round of the short bench: seconds, and what the round does."""
    from engines.base import Generator, SamplingParams

    started = time.perf_counter()
    if isinstance(adapter, Generator):
        adapter.generate([PROMPT], SamplingParams(max_new_tokens=16, ignore_eos=True))
        what = f"greedy 16 tokens after a {len(PROMPT.split())}-word prompt"
    else:
        adapter.embed(TEXTS)
        what = f"{len(TEXTS)} sentences embedded"
    return time.perf_counter() - started, what


def run_subset(spec: str, fixture: str, device: str, kind: str) -> dict:
    from incell.worker import run_suite

    ask = Ask(engine=spec, device=device, fixtures=(fixture,), suite=kind,
              properties=SUBSET[kind], hypothesis_budget=3)
    outcome = run_suite("conformance", ask)
    if outcome.error is not None:
        raise RuntimeError(f"{outcome.error.message}")
    return outcome.detail.properties


class Alone:
    """A process of its own holding one engine alone: the other side of each bench pair."""

    def __init__(self, spec: str, fixture: str, device: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "incell.together", "--alone", spec, "--fixture", fixture,
             "--device", device], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=REPO)

    def call(self) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(SECONDS):
                return float(line[len(SECONDS):])
        raise RuntimeError(f"the alone process ended (exit {self.proc.wait()}) without a time")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def bench_pairs(part: Together, adapter, rounds: int, device: str) -> None:
    """`rounds` pairs: the call in the alone process, then here (a pause between, so that a
    spinning thread pool of one side does not run into the other's round)."""
    alone = Alone(part.engine, part.fixture, device)
    try:
        alone.call()
        timed_call(adapter)  # both sides warm
        for _ in range(rounds):
            time.sleep(0.3)
            part.alone_s.append(round(alone.call(), 6))
            time.sleep(0.3)
            seconds, part.call = timed_call(adapter)
            part.together_s.append(round(seconds, 6))
    finally:
        alone.close()


def together(fixtures: dict[str, str], device: str, rounds: int) -> OneProcess:
    """The one-process step over `fixtures` (engine → the fixture it loads), in their order."""
    from incell.probe import engine_class

    specs = list(fixtures)
    record = OneProcess(order=specs)
    classes = {}
    for spec in specs:
        before = snapshot()
        started = time.perf_counter()
        part = Imported(engine=spec)
        try:
            classes[spec] = engine_class(spec)
        except BaseException as exc:  # the import's failure is this engine's result
            part.error = ErrorInfo.from_exception(exc)
        part.seconds = round(time.perf_counter() - started, 3)
        try:
            part.patched = patches(before)
        except Exception as exc:  # the check's own failure is said, never the step's end
            part.patched = [Patch(target="(the patch check failed)",
                                  by=f"{type(exc).__name__}: {exc}")]
        part.openmp = openmp_runtimes()
        record.imports.append(part)
    adapters = {}
    for spec in (s for s in specs if s in classes):
        part = Together(engine=spec, fixture=fixtures[spec])
        record.engines.append(part)
        try:
            adapters[spec] = loaded(spec, part.fixture, device)
        except BaseException as exc:
            part.error = ErrorInfo.from_exception(exc)
    for part in record.engines:
        if part.engine not in adapters:
            continue
        try:
            part.properties = run_subset(part.engine, part.fixture, device, classes[part.engine].kind)
            if rounds:
                bench_pairs(part, adapters[part.engine], rounds, device)
        except BaseException as exc:
            part.error = ErrorInfo.from_exception(exc)
    for adapter in adapters.values():
        adapter.close()
    return record


def serve_alone(spec: str, fixture: str, device: str) -> int:
    """The alone side: load the one engine, then time one call per "go" line on stdin."""
    adapter = loaded(spec, fixture, device)
    for line in sys.stdin:
        if line.strip() == "go":
            seconds, _ = timed_call(adapter)
            print(f"{SECONDS}{seconds}", flush=True)
    adapter.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m incell.together", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", action="append", default=[], metavar="ENGINE=FIXTURE",
                        help="an engine id (or module:Class) and the fixture it loads, in the "
                             "order to import them")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=10, help="bench pairs per engine (0: none)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--alone", help="serve one engine alone (the bench's other side)")
    parser.add_argument("--fixture", help="with --alone: the fixture to load")
    args = parser.parse_args(argv)
    if args.alone:
        return serve_alone(args.alone, args.fixture, args.device)
    pairs = [spec.rpartition("=") for spec in args.engine]
    if len(pairs) < 2 or args.out is None or any(not (e and f) for e, _, f in pairs):
        parser.error(f"give at least two --engine ENGINE=FIXTURE and --out (got {args.engine})")
    started = time.perf_counter()
    record = together({e: f for e, _, f in pairs}, args.device, args.rounds)
    record.duration_s = round(time.perf_counter() - started, 3)
    import json

    write_atomic(args.out, json.dumps(to_json(record), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
