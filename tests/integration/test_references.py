"""The committed parity references hold: transformers computes them again here (the random
fixtures on every CI run, the trained model's where INFERMATRIX_RECOMPUTE_TRAINED=1: the nightly
job) and each committed copy must give the same token ids exactly and every log-probability
within 1e-4 nats (CPU floats differ between machines). An edited copy fails here; a stale one
fails tests/unit/test_references.py."""

from __future__ import annotations

import gzip
import json
import os
import subprocess

import pytest

from fixtures.catalog import TRAINED, cache_root
from fixtures.ensure import build_fixtures, helper_python
from fixtures.parity import REQUIREMENTS, reference_path
from fixtures.references import COMMITTED, committed_path
from tests.conftest import REPO

TOLERANCE = 1e-4


def differences(fresh, committed, at: str = "") -> list[str]:
    """Where two references part: any id, text or count unequal, a float more than TOLERANCE off."""
    if isinstance(fresh, dict) and isinstance(committed, dict):
        if fresh.keys() != committed.keys():
            return [f"{at}: keys {sorted(fresh.keys() ^ committed.keys())}"]
        return [d for key in fresh for d in differences(fresh[key], committed[key], f"{at}.{key}")]
    if isinstance(fresh, list) and isinstance(committed, list):
        if len(fresh) != len(committed):
            return [f"{at}: {len(fresh)} items against {len(committed)}"]
        return [d for i, (a, b) in enumerate(zip(fresh, committed)) for d in differences(a, b, f"{at}[{i}]")]
    if isinstance(fresh, float) or isinstance(committed, float):
        return [] if abs(fresh - committed) <= TOLERANCE else [f"{at}: {fresh} against {committed}"]
    return [] if fresh == committed else [f"{at}: {fresh!r} against {committed!r}"]


def test_differences_part_ids_exactly_and_floats_within_the_tolerance() -> None:
    committed = {"ids": [1, 2, 3], "logprob": -1.23456}
    assert differences({"ids": [1, 2, 3], "logprob": -1.23460}, committed) == []
    assert differences({"ids": [1, 2, 4], "logprob": -1.23456}, committed) == [".ids[2]: 4 against 3"]
    assert differences({"ids": [1, 2, 3], "logprob": -1.2}, committed)[0].startswith(".logprob")


@pytest.mark.slow
def test_the_committed_references_are_what_transformers_computes(tmp_path) -> None:
    names = [n for n in COMMITTED if n not in TRAINED or os.environ.get("INFERMATRIX_RECOMPUTE_TRAINED")]
    assert build_fixtures(names, 1800, print) is None
    python, failed = helper_python("parity", REQUIREMENTS, 1800)
    assert failed is None, failed and failed.output[-2000:]
    (tmp_path / "fixtures").symlink_to(cache_root() / "fixtures")  # the fixtures, not the references
    env = {**os.environ, "PYTHONPATH": str(REPO), "INFERMATRIX_CACHE": str(tmp_path),
           "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([str(python), "-m", "fixtures.parity", *names], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for name in names:
        fresh = json.loads((tmp_path / "parity" / reference_path(name).name).read_text("utf-8"))
        committed = json.loads(gzip.decompress(committed_path(name).read_bytes()))
        found = differences(fresh, committed)
        assert not found, f"{name}: {len(found)} differences, first {found[:5]}"
