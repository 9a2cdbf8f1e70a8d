"""compat/ladder.py, compat/drive.py and compat/rungs/ with real environments: uv resolves and installs,
engines really import.

The end-to-end cell climbs every rung of transformers-numpy2: a real venv, a
real install, the real engine on the real fixtures. Venvs live under
.nox/test-cells/ so a second test run reuses them (uv pip sync is a no-op).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compat import ladder
from compat.cell import Limits, Options, cell_env
from compat.drive import resolve_all
from compat.ladder import run_cell
from compat.matrix import MATRIX_PATH, load, parse
from core.proc import parse_lock, run_tool, uv_index_args
from core.results import RUNGS
from fixtures.ensure import build_fixtures
from tests.conftest import REPO, TEST_CELLS, installed, matrix_data

VENVS = TEST_CELLS


def matrix_with(**axis_values: str):
    data = matrix_data()
    data["axes"]["numpy"]["values"] = axis_values
    data["cells"], data["known"] = [], []
    data["trained"]["cells"] = []  # named by their numpy axis value, which this replaces
    data["stacks"] = {}  # the same
    return parse(data)


def test_pip_settings_are_handed_to_uv() -> None:
    env = {"PIP_FIND_LINKS": "/opt/wheels /srv/more", "PIP_INDEX_URL": "https://idx/simple",
           "PIP_EXTRA_INDEX_URL": "https://download.example/whl/cpu"}
    assert uv_index_args(env) == [
        "--find-links", "/opt/wheels", "--find-links", "/srv/more",
        "--index-url", "https://idx/simple",
        "--extra-index-url", "https://download.example/whl/cpu",
        "--index-strategy", "unsafe-best-match",
    ]
    assert uv_index_args({}) == []


def test_parse_lock() -> None:
    text = "# header\nnumpy==2.4.6\n    # via torch\ntorch==2.13.0+cpu\n"
    assert parse_lock(text) == {"numpy": "2.4.6", "torch": "2.13.0+cpu"}


def test_a_hanging_command_is_stopped_at_its_limit() -> None:
    result = run_tool([sys.executable, "-c", "import time; print('hi', flush=True); "
                       "time.sleep(60)"], timeout=1)
    assert result.timed_out and "hi" in result.output


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    import os

    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def test_no_process_of_a_rung_outlives_it(tmp_path) -> None:
    """A rung's command that leaves a worker behind (as an engine's server or engine-core process
    would): when the command ends, its whole process group is gone, whether it exited or was
    killed at its limit."""

    script = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
              "'import time; time.sleep(60)']); open(sys.argv[1], 'w').write(str(p.pid)); "
              "sys.stdout.flush(); {end}")
    for end, limit in (("sys.exit(3)", 30), ("import time; time.sleep(60)", 2)):
        pid_file = tmp_path / f"pid-{limit}"
        result = run_tool([sys.executable, "-c", script.format(end=end), str(pid_file)], limit)
        worker = int(pid_file.read_text())
        assert result.timed_out == (limit == 2)

        deadline = time.monotonic() + 5  # a SIGKILLed process is gone once the kernel reaps it
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(worker), f"the worker {worker} outlived its command ({end})"


def test_resolve_failure_keeps_the_resolvers_words(tmp_path) -> None:
    cell = matrix_with(**{"0": "numpy==0.0.1"}).cell("transformers-numpy0")
    result = run_cell(cell, venv=tmp_path / "venv", results_dir=tmp_path / "results",
                      log=lambda _: None)
    resolve = result.rungs[0]
    assert resolve.status == "fail" and resolve.error.type == "ResolutionError"
    assert "numpy==0.0.1" in resolve.error.text
    assert resolve.reason.startswith("Because there is no version of numpy==0.0.1")
    assert resolve.error.signature == "ResolutionError: no version of numpy==0.0.1"
    assert [r.status for r in result.rungs[1:]] == ["not_reached"] * (len(RUNGS) - 1)
    saved = json.loads((tmp_path / "results" / "transformers-numpy0.json").read_text())
    assert saved["rungs"][0]["error"]["type"] == "ResolutionError"


def test_missing_interpreter_is_an_install_failure(tmp_path) -> None:
    data = matrix_data()
    data["defaults"]["python"] = "3.99"
    data["engines"]["sentence_transformers"]["requires"] = ["six"]
    data["harness"]["requires"] = []
    data["devices"]["cpu"]["constraints"] = []
    cell = parse(data).cell("sentence_transformers-numpy2")
    result = run_cell(cell, venv=tmp_path / "venv", results_dir=tmp_path, log=print)
    install = result.rung("install")
    assert result.rung("resolve").status == "pass"
    assert install.status == "fail" and install.error.type == "VenvError"
    assert "No interpreter found for Python 3.99" in install.error.message
    assert [r.status for r in result.rungs[2:]] == ["not_reached"] * (len(RUNGS) - 2)


def test_import_failure_is_a_result_in_a_real_venv(tmp_path) -> None:
    # A cell whose environment lacks the engine library: resolve and install pass,
    # import fails with the interpreter's own error, the rest is not reached.
    data = matrix_data()
    data["engines"]["sentence_transformers"]["requires"] = ["numpy"]
    data["harness"]["requires"] = []
    data["devices"]["cpu"]["constraints"] = []
    cell = parse(data).cell("sentence_transformers-numpy2")
    result = run_cell(cell, venv=VENVS / "no-engine", results_dir=tmp_path, log=print,
                      options=Options(limits=Limits(import_=120)))
    statuses = [r.status for r in result.rungs]
    assert statuses == ["pass", "pass", "fail", *["not_reached"] * (len(RUNGS) - 3)]
    error = result.rungs[2].error
    assert error.signature == "ModuleNotFoundError: sentence_transformers"
    assert "Traceback" in error.text and "engines/sentence_transformers.py" in error.text
    assert "numpy" in result.versions


BAND = 0.08
INTERLEAVED = """
import gc, json, sys, tempfile, time
from pathlib import Path
import pytest
from engines.base import SamplingParams
from engines.transformers import TransformersGenerator
from fixtures.catalog import locate
from core.ask import Ask
from incell.throughput.run import SUITE
from incell.prompts import FreshPrompts
from incell.throughput.measured import Collect, Measured

engine = TransformersGenerator()
engine.load(locate("tiny-llama"))
prompts = FreshPrompts(engine.tokenize, seed=1)
first, full = (SamplingParams(max_new_tokens=n, ignore_eos=True) for n in (1, 32))


def direct():
    t1, tn = [], []
    gc.disable()  # as the harness runs (--benchmark-disable-gc)
    for _ in range(32):
        prompt = prompts.batch(1, 128)[0]  # new every call, as the harness sends them
        stamps, start = [], time.perf_counter()
        for delta in engine.stream_from_ids(prompt, full):  # the harness's batch-1 route
            if delta.token_ids:
                stamps.append(time.perf_counter())
        t1.append(stamps[0] - start)
        tn.append(stamps[-1] - start)
    gc.enable()
    return 31 / (min(tn[2:]) - min(t1[2:]))


def harness():
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "b.json"
        ask = Ask(engine="transformers", fixtures=("tiny-llama",),
                  bench_args=("--profile", "quick", "--rounds", "30"))
        measured = Measured()
        code = pytest.main([str(SUITE / "test_throughput.py"), "-c", str(SUITE / "pytest.ini"),
                            "--rootdir", str(SUITE.parent.parent), "-q", "-p", "no:cacheprovider",
                            "-k", "test_generation", "--ask", ask.arg(),
                            "--benchmark-json", str(raw)], plugins=[Collect(measured)])
        assert code == 0, code
    m = {r.name: r for r in measured.metrics}
    return (31 / (min(m["e2e_s"].samples) - min(m["ttft_s"].samples)),
            m["harness_overhead"].stats.median)


pairs = []
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
    d = direct()
    h, over = harness()
    pairs.append({"direct": d, "harness": h, "overhead": over})
print(json.dumps(pairs))
"""


@pytest.mark.slow
@pytest.mark.timing
def test_harness_decode_rate_agrees_with_a_direct_wall_clock(tmp_path) -> None:
    """The harness must not add its own cost: its decode tok/s (batch 1, 128 in, 32 out: one
    streamed call, TTFT and decode in it) agrees within BAND with the engine's stream timed
    directly by wall clock, same cell, same process. (The stream costs transformers about 0.2 ms
    a token over generate() on this tiny model, its streamer's thread and text: that is the
    engine's, and the figure is named as a stream's.)

    Both sides derive decode tok/s from their fastest rounds, 31 / (min end-to-end - min TTFT),
    and run interleaved in one process (direct, harness, direct, ...): a shared VM slows whole
    seconds at a time, and one process can run 20-30% slower than the next for its whole life
    (thread placement; CI saw harness 1,264 vs direct 960 tok/s in two processes, then 1,036 vs
    1,192 with the sides swapped, and 781 vs 1,079 in a third run), noise that two processes
    cannot tell from a cost. In one process both sides share it; a cost the harness adds is in
    every one of its rounds. The best of five pairs is compared within BAND (seen 2% apart;
    with three, a noisy stretch of this VM left the bests 9% apart, either side ahead);
    the harness's own overhead is held to 2% inside it (harness_overhead).
    """
    run = installed("transformers-numpy2", tmp_path, ("tiny-llama",))
    done = subprocess.run([str(run.python), "-c", INTERLEAVED, "5"],
                          cwd=REPO, env=cell_env(run), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    pairs = json.loads(done.stdout.splitlines()[-1])
    assert max(p["overhead"] for p in pairs) < 0.02, pairs
    best_harness, best_direct = max(p["harness"] for p in pairs), max(p["direct"] for p in pairs)
    assert abs(best_harness - best_direct) / best_direct <= BAND, (
        f"the best harness decode rate ({best_harness:,.0f} tok/s) differs from the best direct "
        f"wall clock ({best_direct:,.0f} tok/s) by more than {BAND:.0%}: {pairs}")


def test_nox_lists_one_session_per_cell(repo_env: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-m", "nox", "-l", "--json", "-t", "cell"], cwd=REPO,
                         capture_output=True, text=True, check=True, env=repo_env)
    names = [s["session"] for s in json.loads(out.stdout)]
    assert "cell(transformers-numpy2)" in names and "cell(sentence_transformers-numpy1)" in names


def test_a_bad_matrix_stops_nox_before_any_environment(tmp_path, repo_env) -> None:
    good = MATRIX_PATH.read_text(encoding="utf-8")
    head, table, rest = good.partition("[selections.default]")
    bad = head + table + rest.replace('"sentence_transformers",', '"sentence-transformer",', 1)
    assert bad != good, "the test no longer finds the engine it misspells"
    (tmp_path / "matrix.toml").write_text(bad)
    env = {**repo_env, "INFERMATRIX_MATRIX": str(tmp_path / "matrix.toml")}
    out = subprocess.run([sys.executable, "-m", "nox", "--envdir", str(tmp_path / "envs")],
                         cwd=REPO, capture_output=True, text=True, env=env, check=False)
    assert out.returncode != 0
    assert "Unknown engine in [selections.default].engines 'sentence-transformer'" in out.stderr
    assert "Did you mean 'sentence_transformers'" in out.stderr
    assert not (tmp_path / "envs").exists()


def test_fixture_builds_are_byte_identical(tmp_path, monkeypatch) -> None:
    digests = []
    for run in ("a", "b"):
        monkeypatch.setenv("INFERMATRIX_CACHE", str(tmp_path / run))
        assert build_fixtures(["tiny-llama", "tiny-gpt2"], 300, log=print) is None
        files = sorted((tmp_path / run / "fixtures").glob("*/*"))
        digests.append({f"{p.parent.name}/{p.name}": p.read_bytes() for p in files})
        assert build_fixtures(["tiny-llama"], 300, log=print) is None  # reused
    assert digests[0] == digests[1]
    assert any(k.endswith("model.safetensors") for k in digests[0])


def test_silent_fallback_is_flagged_with_the_resolvers_reason(tmp_path) -> None:
    matrix = load()
    cells = [matrix.cell("infinity_emb-numpy2"), matrix.cell("infinity_emb-numpy2-lift-numpy"),
             matrix.cell("infinity_emb-numpy1")]
    fell, lifted, plain = resolve_all(cells, work=tmp_path, results_dir=tmp_path / "r",
                                      log=lambda _: None)
    resolve = fell.rungs[0]
    assert resolve.status == "pass" and resolve.error.type == "Fallback"
    assert resolve.reason.startswith("resolved only by falling back from infinity-emb ")
    fallback = resolve.detail.fallbacks[0]
    assert fallback.package == "infinity-emb"
    assert "numpy" in fallback.why and "Because" in fallback.why
    assert [r.status for r in fell.rungs[1:]] == ["not_run"] * (len(RUNGS) - 1)
    assert fell.rungs[1].reason == "resolve-only run"
    # the override lifts infinity-emb's numpy<2: the newest release resolves with numpy 2
    assert lifted.versions["infinity-emb"] == fallback.newest
    assert lifted.versions["numpy"].startswith("2.") and lifted.rungs[0].error is None
    assert plain.rungs[0].error is None and plain.versions["numpy"].startswith("1.")


def test_exclude_newer_and_rerun_from_the_lock(tmp_path) -> None:
    # No torch pin: the local CPU torch 2.13 wheel postdates the cutoff (a real conflict,
    # reported as such in a full run); this checks the date reaches the resolver.
    data = matrix_data()
    data["engines"]["transformers"]["requires"] = ["transformers"]
    data["devices"]["cpu"]["constraints"], data["harness"]["requires"] = [], []
    cell = parse(data).cell("transformers-numpy2")
    old = resolve_all([cell], work=tmp_path / "a", results_dir=tmp_path / "a",
                      options=Options(exclude_newer="2025-01-15"), log=lambda _: None)[0]
    assert old.first_failure is None
    assert old.versions["transformers"].startswith("4.")  # transformers 5 came out later
    assert old.cell.exclude_newer == "2025-01-15"
    saved = tmp_path / "a" / f"{cell.id}.json"
    again = resolve_all([cell], work=tmp_path / "b", results_dir=tmp_path / "b",
                        options=Options(from_lock=saved), log=lambda _: None)[0]
    assert again.versions == old.versions
    assert again.rungs[0].detail.from_lock == str(saved)


def test_cuda_cells_resolve_and_say_needs_cuda_on_a_cpu_machine(tmp_path) -> None:
    if ladder.cuda_available():
        pytest.skip("this machine has CUDA")
    cell = load().cell("vllm-numpy2-transformers4-cuda")
    result = resolve_all([cell], work=tmp_path, results_dir=tmp_path, log=lambda _: None)[0]
    assert result.rungs[0].status == "pass" and "vllm" in result.versions
    assert [(r.status, r.reason) for r in result.rungs[1:]] == [("not_run", "needs CUDA")] * (len(RUNGS) - 1)


@pytest.mark.slow
@pytest.mark.skipif(not ladder.cuda_available(), reason="vLLM cells need CUDA; this machine has none")
@pytest.mark.parametrize("cell_id", ["vllm-numpy2-transformers4-cuda",
                                     "vllm_embed-numpy2-transformers4-cuda"])
def test_vllm_cells_climb_on_a_gpu(cell_id: str, tmp_path) -> None:
    """On a GPU machine the vLLM cells climb every rung; the properties vLLM cannot offer are
    skipped with the reason its adapter declares."""
    cell = load().cell(cell_id)
    result = run_cell(cell, venv=VENVS / cell.id, results_dir=tmp_path, log=print)
    failed = result.first_failure
    assert failed is None, f"{failed.name}: {failed.error.text if failed.error else failed.reason}"
    properties = result.rung("conformance").detail.properties
    if cell.engine.kind == "generation":
        assert properties["streaming_equals_generate"].status == "skip"
        assert "offline LLM API" in properties["streaming_equals_generate"].message
        assert properties["greedy_parity"].status == "pass"
    else:
        assert properties["reference_parity"].status == "pass"


def test_also_resolves_says_what_the_newest_release_would_move_back() -> None:
    from compat.rungs.resolve import also_resolves

    versions = {"numpy": "2.3.5", "vllm": "0.33.0", "torch": "2.13.0+cpu"}
    forced = {"numpy": "2.4.6", "vllm": "0.32.0", "torch": "2.13.0+cpu"}
    assert also_resolves("numpy", "2.4.6", versions, forced) == (
        "numpy==2.4.6 also resolves, but moves vllm 0.33.0 → 0.32.0: the resolver preferred "
        "those newer")
    assert "moves nothing else back" in also_resolves("numpy", "2.4.6", versions,
                                                      {**forced, "vllm": "0.33.0"})
