"""compat/index.py against the real package index."""

from __future__ import annotations

import pytest
from packaging.version import Version

from compat.index import PackageIndexError, check_pin, published_versions


def test_releases_are_final_and_sorted() -> None:
    versions = published_versions("embed", "3.11")
    assert versions[:3] == (Version("0.0.1"), Version("0.2.0"), Version("0.3.0"))
    assert all(not v.is_prerelease for v in versions)


def test_pin_to_a_version_never_published() -> None:
    with pytest.raises(PackageIndexError, match=r"'embed==0.9.9': embed 0.9.9 was never published"
                                                r".*Newest releases: 0.3.0, 0.2.0"):
        check_pin("embed==0.9.9")
    check_pin("embed==0.3.0")
    check_pin("pyarrow<20")  # only exact pins are checked


def test_package_that_does_not_exist() -> None:
    with pytest.raises(PackageIndexError, match=r"'no-such-package-infermatrix-x' has no release"):
        published_versions("no-such-package-infermatrix-x")
