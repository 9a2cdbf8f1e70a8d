"""`nox -s endpoint` (incell/endpoint.py): a server someone else runs, checked where it stands.

Against the calibration server (bench/calibration.py) run as a server of one's own: bad input is
named before any suite, each departure it is asked to show is the one verdict that changes, a
key is sent and written nowhere. Against a real `transformers serve` started by hand (slow):
the API-surface verdicts are the cell's, and the load sweep measures it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.properties import PROPERTIES
from core.results import load_results
from engines.endpoint import Endpoint, EndpointError, check_url, public_url
from engines.http.server import free_port
from tests.conftest import REPO

KEY = "sk-infermatrix-test-0123456789abcdef"
API = PROPERTIES["api"]


def start_calibration(*args: str, env: dict | None = None):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.calibration", "--port", str(port),
                             "--ttft", "0.001", "--itl", "0.0005", *args], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.post(f"{url}/v1/completions", json={}, timeout=1)
            return proc, url + "/v1"
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the calibration server did not start")


@pytest.fixture
def calibration():
    servers = []

    def start(*args: str, env: dict | None = None) -> str:
        proc, url = start_calibration(*args, env=env)
        servers.append(proc)
        return url

    yield start
    for proc in servers:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def endpoint(*args: str, out: Path, python: str = sys.executable, env: dict | None = None,
             cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "incell.endpoint", "--out", str(out), *args],
                          cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                          capture_output=True, text=True, timeout=600, check=False)


def verdicts(out: Path, suite: str = "api") -> dict[str, str]:
    [result], problems = load_results(sorted(out.glob("*.json")))
    assert not problems, problems
    return {name: p.status for name, p in result.rung(suite).detail.properties.items()}


def test_urls_are_checked_and_written_without_credentials() -> None:
    assert public_url("https://me:pw@host:8443/v1/?key=abc#x") == "https://host:8443/v1"
    assert check_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"
    for bad, says in (("ftp://host/v1", "scheme 'ftp' is not one of http, https"),
                      ("http:///v1", "names no host"), ("http://host:port/v1", "port")):
        with pytest.raises(EndpointError, match=says):
            check_url(bad)
    assert Endpoint("http://h/v1", "m", "THE_KEY").scrub(f"answer: {KEY}") == f"answer: {KEY}"
    os.environ["THE_KEY"] = KEY
    try:
        assert Endpoint("http://h/v1", "m", "THE_KEY").scrub(f"got {KEY}!") == "got $THE_KEY!"
    finally:
        del os.environ["THE_KEY"]


def test_bad_input_is_named_before_any_suite(calibration, tmp_path, capsys, tiny_llama) -> None:
    url = calibration()
    closed = f"http://127.0.0.1:{free_port()}/v1"
    cases = {
        ("--url", "ftp://host/v1", "--model", "m"): "scheme 'ftp' is not one of http, https",
        ("--url", closed, "--model", "m"): f"{closed} is unreachable (ConnectError)",
        ("--url", url, "--model", "llama"): "--model 'llama' is not served at",
        ("--url", url, "--model", "calibration", "--kind", "embedding"):
            "answered /embeddings with HTTP 404: it answers /completions, use --kind generation",
        ("--url", url, "--model", "calibration", "--api-key-env", "NO_SUCH_VAR_1"):
            "--api-key-env NO_SUCH_VAR_1: that variable is not set or empty",
        ("--url", url, "--model", "calibration", "--users", "0"): "'0': every value must be > 0",
        ("--url", url, "--model", "calibration", "--tokenizer", "smollm2-135m-instruc"):
            "'smollm2-135m-instruc' is neither a folder nor a fixture; fixtures: ",
        ("--url", url, "--model", "calibration", "--load-only", "--no-load"):
            "--load-only and --no-load ask for nothing at all: give one of them",
        ("--url", url, "--model", "calibration", "--load-only"):
            "--load-only runs the load sweep, which needs --tokenizer DIR",
    }
    from incell.endpoint import main

    def run(*args: str) -> tuple[int, str]:  # in this process: no suite starts before the error
        try:
            code = main([*args, "--out", str(tmp_path)])
        except SystemExit as exc:  # argparse's refusals
            code = exc.code
        return code, capsys.readouterr().err

    for args, says in cases.items():
        code, err = run(*args)
        assert code == 2 and says in err, (args, err[-500:])
    assert "it serves: calibration" in run("--url", url, "--model", "llama")[1]
    from incell.endpoint import model_folder  # a fixture's name is its local folder

    assert model_folder("tiny-llama") == tiny_llama and model_folder(str(tmp_path)) == tmp_path
    assert not list(tmp_path.glob("*.json")), "a refused run wrote a result"


def test_a_key_is_sent_and_written_nowhere(calibration, tmp_path, tiny_llama) -> None:
    """The server answers 401 without the key; with it every request passes, and the key is in
    no output and no result, nor are the URL's credentials and query."""
    url = calibration("--key-env", "CALIBRATION_KEY", env={"CALIBRATION_KEY": KEY})
    refused = endpoint("--url", url, "--model", "calibration", out=tmp_path)
    assert refused.returncode == 2 and "HTTP 401" in refused.stderr and "--api-key-env" in refused.stderr
    secret_url = url.replace("http://", f"http://user:{KEY}@") + f"?api_key={KEY}"
    done = endpoint("--url", secret_url, "--model", "calibration", "--api-key-env", "MY_KEY",
                    "--tokenizer", str(tiny_llama), "--users", "1", "--duration", "1", "--warmup",
                    "0.2", "--min-requests", "3", "--name", "keyed", out=tmp_path,
                    env={"MY_KEY": KEY})
    assert done.returncode == 0, done.stderr[-2000:]
    [result], _ = load_results([tmp_path / "endpoint-keyed.json"])
    runs = result.rung("serve_bench").detail.runs
    assert runs and runs[0].requests >= 3 and runs[0].errors == 0, runs  # the key went along
    written = (tmp_path / "endpoint-keyed.json").read_text() + done.stdout + done.stderr
    assert KEY not in written and "user:" not in written and "api_key" not in written
    assert result.rung("endpoint").detail.url == url


def test_the_load_sweep_alone(calibration, tmp_path, tiny_llama) -> None:
    """--load-only: the sweep without the API and property suites, which say they did not run."""
    url = calibration()
    done = endpoint("--url", url, "--model", "calibration", "--tokenizer", str(tiny_llama),
                    "--load-only", "--users", "1,2", "--duration", "1", "--warmup", "0.2",
                    "--min-requests", "3", "--per-user", "2", "--name", "alone", out=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "API surface" not in done.stdout and "load sweep" in done.stdout
    [result], _ = load_results([tmp_path / "endpoint-alone.json"])
    assert [(r.name, r.status, r.reason) for r in result.rungs[1:3]] == [
        ("api", "not_run", "--load-only"), ("conformance", "not_run", "--load-only")]
    runs = result.rung("serve_bench").detail.runs
    assert [r.load.concurrency for r in runs] == [1, 2] and all(r.errors == 0 for r in runs)
    # a 1 s window is measured, and marked: not a steady state
    assert runs[1].steady is False and runs[1].unsteady_because[0] == "a window of 1 s, short of 60 s"
    assert runs[1].requests >= 4  # two a user at least, as asked


DEPARTURES = {  # departure -> the verdicts that change, and to what
    "no_models": {"models_endpoint": "fail"},
    # usage_counts fails already: the calibration server counts every prompt as 1 token
    "no_usage": {"stream_usage": "fail", "max_tokens": "fail"},
    "no_done": {"sse_framing": "fail"},
    # keep_alive is checked after a streamed answer: with none, it cannot be checked
    "no_stream": {"sse_framing": "fail", "stream_usage": "fail", "keep_alive": "skip"},
}


def test_each_departure_is_the_verdict_that_changes(calibration, tmp_path) -> None:
    """The calibration server as it is, then departing in one way at a time: exactly the
    properties that read what it left out change (❌, or ➖ where it cannot be checked), and what
    the server lacks is a verdict, never a crash. Two runs at a time (each is its own process)."""
    from concurrent.futures import ThreadPoolExecutor

    urls = {name: calibration(*(("--depart", name) if name != "plain" else ()))
            for name in ["plain", *DEPARTURES]}

    def run(name: str) -> dict[str, str]:
        done = endpoint("--url", urls[name], "--model", "calibration", "--no-load",
                        out=tmp_path / name)
        assert done.returncode == 0, done.stderr[-2000:]
        return verdicts(tmp_path / name)

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(zip(urls, pool.map(run, urls), strict=True))
    plain = runs.pop("plain")
    for departure, expected in DEPARTURES.items():
        changed = {p: runs[departure][p] for p in plain if plain[p] != runs[departure][p]}
        assert changed == expected, (departure, changed)
    # --compare between two runs of an endpoint names the verdict that changed, and fails
    from bench.compare import main as compare

    [before], [after] = ((tmp_path / name).glob("*.json") for name in ("plain", "no_models"))
    report = tmp_path / "ENDPOINT_COMPARE.md"
    assert compare(["--endpoint", str(before), str(after), "--out", str(report)]) == 1
    assert "`models_endpoint` (api): pass → fail" in report.read_text()
