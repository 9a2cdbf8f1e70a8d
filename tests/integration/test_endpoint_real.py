"""A real `transformers serve` started by hand, then checked as an endpoint (`nox -s endpoint`):
the API-surface verdicts are the cell's, and nothing is started or stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from core.ask import Ask
from core.results import load_results
from engines.http.server import free_port
from tests.conftest import REPO
from tests.unit.test_endpoint import API, endpoint, verdicts


@pytest.mark.slow
def test_a_real_server_started_by_hand_gets_its_cells_verdicts(server_cell, tmp_path,
                                                               tiny_llama) -> None:
    """`transformers serve` started by hand, then checked as an endpoint: the API-surface
    verdicts (a departure or not) are those of the API suite run through the cell's own
    adapter, but for `seed`, where the cell's adapter sends transformers' generation_config
    (do_sample) and an OpenAI request cannot sample; the server is still the one process serving
    afterwards (nothing started or stopped); with --reference transformers, wire parity is
    checked against the model in process."""
    python, env = server_cell
    port = free_port()
    cli = str(Path(python).parent / "transformers")
    server = subprocess.Popen([cli, "serve", str(tiny_llama), "--host", "127.0.0.1", "--port",
                               str(port), "--device", "cpu", "--dtype", "float32"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        for _ in range(600):
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        done = endpoint("--url", url, "--model", str(tiny_llama), "--fixture", str(tiny_llama),
                        "--reference", "transformers", "--reference-venv", str(Path(python).parents[1]),
                        "--name", "tserve", "--no-load", out=tmp_path / "endpoint", python=python,
                        env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        ours = verdicts(tmp_path / "endpoint")
        # the API suite as the cell runs it (its adapter's requests), on the same server
        at = {"INFERMATRIX_ENDPOINT_URL": url, "INFERMATRIX_ENDPOINT_MODEL": str(tiny_llama)}
        cell_suite = subprocess.run(
            [python, "-m", "pytest", str(REPO / "incell/conformance/test_api.py"), "-q", "-p",
             "no:cacheprovider", "-c", str(REPO / "incell/conformance/pytest.ini"), "--rootdir",
             str(REPO), "--ask", Ask(engine="tests.unit.at_endpoint:TransformersServerAtEndpoint",
                                      suite="api", fixtures=("tiny-llama",),
                                      properties=tuple(n for n in API if n != "wire_parity")).arg(),
             "--conformance-json", str(tmp_path / "cell.json")],
            cwd=REPO, env={**env, **at}, capture_output=True, text=True, check=False)
        from core.results import read_rung

        cell = {n: p.status for n, p in read_rung(tmp_path / "cell.json").detail.properties.items()}
        assert server.poll() is None, "the endpoint run stopped the server"
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    departs = lambda status: status in ("fail", "deviation")  # noqa: E731  (declared or not)
    differ = {n for n in cell if n != "seed"
              and departs(cell[n]) != departs(ours[n])}
    assert not differ, {n: (cell[n], ours[n]) for n in differ}
    assert cell_suite.returncode in (0, 1), cell_suite.stdout[-2000:]
    [result], _ = load_results([tmp_path / "endpoint" / "endpoint-tserve.json"])
    parity = result.rung("api").detail.properties["wire_parity"]  # against transformers in process
    assert parity.status == "pass" and "prompts the same text as transformers in process" in \
        next(iter(parity.notes.values())), parity
    assert result.rung("serve_bench").status == "not_run"  # the load sweep: test_a_key_is_sent...
    assert result.rung("endpoint").detail.headers.get("server") == "uvicorn"
    json.dumps(result.rung("endpoint").detail.models)  # its /models answer, kept as it came
