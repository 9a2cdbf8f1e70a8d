"""What a package index publishes: release lists for bisection and pin checks.

Reads the simple repository API in its JSON form (PEP 691/700) from
PIP_INDEX_URL (default PyPI's), plus wheels in PIP_FIND_LINKS folders. Only
final, non-yanked releases count, and only those whose Requires-Python admits
the cell's Python.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from functools import cache
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from core.errors import InfermatrixError

DEFAULT_INDEX = "https://pypi.org/simple"
ACCEPT = "application/vnd.pypi.simple.v1+json"
_SDIST = re.compile(r"^(?P<name>.+?)-(?P<version>[^-]+)\.(tar\.gz|zip)$")


class PackageIndexError(InfermatrixError):
    """The index could not be read, or does not know the package."""


def _index_url() -> str:
    return os.environ.get("PIP_INDEX_URL", DEFAULT_INDEX).rstrip("/")


def _file_version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        match = _SDIST.match(filename)
        return Version(match["version"]) if match else None
    except (InvalidVersion, ValueError):
        return None


def _admits(requires_python: str | None, python: str) -> bool:
    if not requires_python:
        return True
    try:
        return Version(f"{python}.99") in SpecifierSet(requires_python) or \
            Version(f"{python}.0") in SpecifierSet(requires_python)
    except (InvalidSpecifier, InvalidVersion):
        return True


def _simple_page(name: str) -> tuple[str, dict]:
    url = f"{_index_url()}/{canonicalize_name(name)}/"
    request = urllib.request.Request(url, headers={"Accept": ACCEPT})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return url, json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return url, {"files": []}
        raise PackageIndexError(f"{_index_url()}: HTTP {exc.code} for {name!r}") from exc
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
        raise PackageIndexError(f"could not read {url}: {exc}") from exc


def sdist_url(package: str, version: str) -> str:
    """Where the index keeps the source distribution of package==version."""
    page, data = _simple_page(package)
    for entry in data.get("files", []):
        match = _SDIST.match(entry["filename"])
        if match and Version(match["version"]) == Version(version) and not entry.get("yanked"):
            return urllib.parse.urljoin(page, entry["url"])
    raise PackageIndexError(f"{package} {version} has no source distribution on {_index_url()}")


def download_sdist(package: str, version: str, folder: Path) -> Path:
    """The source distribution of package==version, fetched into `folder`."""
    url = sdist_url(package, version)
    target = Path(folder) / url.rsplit("/", 1)[-1].split("#")[0]
    with urllib.request.urlopen(url, timeout=120) as response, open(target, "wb") as out:
        shutil.copyfileobj(response, out)
    return target


@cache
def published_versions(package: str, python: str = "3.11") -> tuple[Version, ...]:
    """Final, non-yanked releases of `package` for `python`, oldest first."""
    name = canonicalize_name(package)
    found: set[Version] = set()
    _, data = _simple_page(package)
    for entry in data.get("files", []):
        version = _file_version(entry["filename"])
        if version is None or entry.get("yanked") or version.is_prerelease or version.is_devrelease:
            continue
        if _admits(entry.get("requires-python"), python):
            found.add(version)
    for folder in os.environ.get("PIP_FIND_LINKS", "").split():
        for wheel in Path(folder).glob("*.whl") if Path(folder).is_dir() else ():
            try:
                wheel_name, version, *_ = parse_wheel_filename(wheel.name)
            except ValueError:
                continue
            if wheel_name == name and not version.is_prerelease:
                found.add(version)
    if not found:
        raise PackageIndexError(f"package {package!r} has no release for Python {python} on "
                          f"{_index_url()} (is the name right?)")
    return tuple(sorted(found))


def check_pin(requirement: str, python: str = "3.11") -> None:
    """Stop with a clear message if an exact pin names a version that was never published."""
    match = re.match(r"^\s*([A-Za-z0-9._-]+)(\[[^\]]*\])?\s*==\s*([^\s;,]+)\s*(;.*)?$", requirement)
    if not match or "*" in match[3]:
        return
    versions = published_versions(match[1], python)
    if Version(match[3]) not in versions:
        newest = ", ".join(str(v) for v in versions[-8:][::-1])
        raise PackageIndexError(f"{requirement!r}: {match[1]} {match[3]} was never published for "
                          f"Python {python}. Newest releases: {newest}")


def release_pin(package: str, release: str, python: str = "3.11") -> str:
    """`package==VERSION` for a cell's engine release: "newest", "previous" (the one before the
    newest) or a version, checked against what the index publishes for `python`."""
    versions = published_versions(package, python)
    if release in ("newest", "previous"):
        if release == "previous" and len(versions) < 2:
            raise PackageIndexError(f"{package} has a single release for Python {python}; "
                                    "there is no previous one")
        return f"{package}=={versions[-1 if release == 'newest' else -2]}"
    pin = f"{package}=={release}"
    check_pin(pin, python)
    return pin
