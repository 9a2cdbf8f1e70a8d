"""The resolve rung: uv pip compile for the cell's Python, every version kept, silent fallbacks
flagged with the resolver's own reason, or the lock of an earlier run installed as it was."""

from __future__ import annotations

import json
from pathlib import Path

from compat.cell import CellRun, RungFailed
from compat.matrix import requirement_name
from core.details import Fallback, ResolveDetail
from core.proc import parse_lock, run_tool, tool_error, uv_binary, uv_index_args
from core.results import CellResult, ErrorInfo, Rung
from core.signatures import uv_error


def compile_args(run: CellRun, reqs: Path) -> list[str]:
    """`uv pip compile` for the cell's Python, with its overrides and the run's date."""
    cmd = [uv_binary(), "pip", "compile", str(reqs), "--quiet", "--python-version",
           run.cell.python, *uv_index_args()]
    if run.cell.constraints:
        constraints = run.work / "constraints.txt"
        constraints.write_text("\n".join(run.cell.constraints) + "\n", encoding="utf-8")
        cmd += ["--constraint", str(constraints)]
    overrides = (*run.cell.build_overrides, *run.cell.overrides)
    if overrides:
        path = run.work / "overrides.txt"
        path.write_text("\n".join(overrides) + "\n", encoding="utf-8")
        cmd += ["--override", str(path)]
    if run.options.exclude_newer:
        cmd += ["--exclude-newer", run.options.exclude_newer]
    return cmd


def requirements(run: CellRun) -> list[str]:
    """What the resolver is asked for: the cell's requirements, and its engine release pinned
    to the version the index names for it ("previous": the one before the newest)."""
    if not run.cell.release:
        return list(run.cell.requirements)
    from compat.index import PackageIndexError, release_pin

    try:
        pin = release_pin(run.cell.engine_package, run.cell.release, run.cell.python)
    except PackageIndexError as exc:
        raise RungFailed(ErrorInfo.from_message("PackageIndexError", str(exc))) from exc
    return [*run.cell.requirements, pin]


def resolve(run: CellRun) -> Rung:
    """uv pip compile the cell's requirements; keep every version; flag silent fallbacks."""
    lock = run.work / "lock.txt"
    if run.options.from_lock is not None:
        lock.write_text(lock_text(run.options.from_lock), encoding="utf-8")
        text = lock.read_text(encoding="utf-8")
        return Rung("resolve", "pass", detail=ResolveDetail(
            versions=parse_lock(text), lock=text, from_lock=str(run.options.from_lock)))
    reqs = run.work / "requirements.in"
    asked = requirements(run)
    reqs.write_text("\n".join(asked) + "\n", encoding="utf-8")
    result = run_tool([*compile_args(run, reqs), "-o", str(lock)], run.limits.resolve)
    if result.returncode != 0:
        raise RungFailed(*tool_error("resolve", result, run.limits.resolve, "ResolutionError"))
    text = lock.read_text(encoding="utf-8")
    versions = parse_lock(text)
    fallbacks = find_fallbacks(run, versions, asked)
    rung = Rung("resolve", "pass", detail=ResolveDetail(versions=versions, lock=text,
                                                        fallbacks=fallbacks))
    if fallbacks:
        rung.reason = "; ".join(f"resolved only by falling back from {f.package} "
                                f"{f.newest} to {f.resolved}" for f in fallbacks)
        first = fallbacks[0]
        rung.error = ErrorInfo(type="Fallback", message=rung.reason,
                               signature=f"Fallback: {first.package} {first.newest} → {first.resolved}",
                               text="\n\n".join(f"{f.package}: {f.why}" for f in fallbacks))
    return rung


def lock_text(path: Path) -> str:
    """A lock from a uv lock file or from a cell result JSON (its `lock` field)."""
    text = Path(path).read_text(encoding="utf-8")
    if Path(path).suffix == ".json":
        text = CellResult.from_dict(json.loads(text)).lock
        if not text:
            raise ValueError(f"{path} holds no lock (its resolve rung did not pass)")
    return text


def find_fallbacks(run: CellRun, versions: dict[str, str], asked: list[str]) -> list[Fallback]:
    """Requested packages that resolved older than the newest release their own spec allows.

    The newest is what `uv pip compile --no-deps` picks for the same requirement
    (this Python, this platform, this date); device constraints go along so the CPU
    torch build is not called a fallback. Each fallback gets the resolver's own
    reason, from forcing the newest release.
    """
    alone = run.work / "newest.in"
    alone.write_text("\n".join(asked) + "\n", encoding="utf-8")
    newest_lock = run.work / "newest.txt"
    result = run_tool([*compile_args(run, alone), "--no-deps", "-o", str(newest_lock)],
                      run.limits.resolve)
    if result.returncode != 0:
        return []  # the full resolve passed; no comparison possible is not a fallback
    newest = parse_lock(newest_lock.read_text(encoding="utf-8"))
    requested = {requirement_name(r) for r in run.cell.requested}
    fallbacks = []
    for name in sorted(requested):
        have, best = versions.get(name), newest.get(name)
        if have and best and version_key(have) < version_key(best):
            fallbacks.append(Fallback(package=name, newest=best, resolved=have,
                                      why=fallback_reason(run, asked, name, best, versions)))
    return fallbacks


def fallback_reason(run: CellRun, asked: list[str], name: str, newest: str,
                    versions: dict[str, str]) -> str:
    """Why `name==newest` does not fit: the resolver's explanation when forced to it, or, where it
    fits, what forcing it would move back instead."""
    forced = run.work / f"force-{name}.in"
    forced.write_text("\n".join((*asked, f"{name}=={newest}")) + "\n",
                      encoding="utf-8")
    forced_lock = run.work / f"force-{name}.txt"
    result = run_tool([*compile_args(run, forced), "-o", str(forced_lock)], run.limits.resolve)
    if result.returncode != 0:
        return uv_error(result.output)[1]
    return also_resolves(name, newest, versions,
                         parse_lock(forced_lock.read_text(encoding="utf-8")))


def also_resolves(name: str, newest: str, versions: dict[str, str], forced: dict[str, str]) -> str:
    """What the resolver traded: the packages that forcing name==newest would move back."""
    back = [f"{pkg} {have} → {forced[pkg]}" for pkg, have in sorted(versions.items())
            if pkg != name and pkg in forced and version_key(forced[pkg]) < version_key(have)]
    if back:
        return (f"{name}=={newest} also resolves, but moves {', '.join(back)}: the resolver "
                "preferred those newer")
    return (f"{name}=={newest} also resolves and moves nothing else back; the resolver "
            "preferred an older release anyway")


def version_key(version: str) -> tuple:
    """Sortable form of a version string (packaging is nox's dependency, so it is here)."""
    from packaging.version import InvalidVersion, Version

    try:
        return (Version(version),)
    except InvalidVersion:
        return (Version("0"),)
