"""core/ask.py: the one JSON form in which the driver asks a process inside a cell for
something, read the same way by the worker, the conformance suites and the bench."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.ask import Ask, AskError
from tests.conftest import REPO


def test_an_ask_survives_its_json_form() -> None:
    ask = Ask(engine="tests.broken.generation:RightPadding", device="cuda",
              fixtures=("tiny-llama", "smollm2-135m-instruct"), suite="generation",
              properties=("greedy_parity",), hypothesis_budget=3,
              bench_args=("--profile", "full", "--batches", "1,4"))
    assert Ask.parse(ask.arg()) == ask
    assert ask.engine_class == "tests.broken.generation:RightPadding"
    assert Ask(engine="transformers").engine_class == ""


@pytest.mark.parametrize(("text", "said"), [
    ('{"engine": "transformers", "device": "gpu"}', "Unknown device 'gpu'. Did you mean 'cpu'?"),
    ('{"engine": "transformers", "devise": "cpu"}', "no field(s) ['devise']; valid: ['bench_args'"),
    ('{"engine": "transformers", "suite": "embeddings"}', "Did you mean 'embedding'?"),
    ('{"engine": "transformers", "hypothesis_budget": 0}', "hypothesis_budget must be > 0, got 0"),
    ('{"device": "cpu"}', "missing 1 required positional argument: 'engine'"),
    ('["transformers"]', "a JSON object of"),
    ("transformers", "the ask is not JSON"),
])
def test_a_bad_ask_is_named_with_what_is_valid(text: str, said: str) -> None:
    with pytest.raises((AskError, TypeError), match=None) as raised:
        Ask.parse(text)
    assert said in str(raised.value)


def test_each_reader_refuses_a_bad_ask_before_it_loads_anything(tmp_path) -> None:
    bad = '{"engine": "transformers", "device": "tpu"}'
    for argv in (["-m", "incell.worker", "--dir", str(tmp_path), "--ask", bad],
                 ["-m", "incell.throughput.run", "--ask", bad, "--out", str(tmp_path / "b.json")],
                 ["-m", "pytest", str(REPO / "incell/conformance/test_embedding.py"), "-q", "-p",
                  "no:cacheprovider", "-c", str(REPO / "incell/conformance/pytest.ini"),
                  "--rootdir", str(REPO), "--ask", bad]):
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=REPO,
                              check=False)
        assert done.returncode in (2, 4), (argv, done.stdout[-500:], done.stderr[-500:])
        assert "Unknown device 'tpu'" in done.stdout + done.stderr, (argv, done.stderr[-500:])
