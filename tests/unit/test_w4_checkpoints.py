"""The 4-bit checkpoint writer's packing (AutoAWQ's GEMM layout and AutoGPTQ's, as vLLM reads
them) and rounding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from engines.formats.w4_checkpoints import GPTQ_ZERO, GROUP, SEQUENTIAL, pack, quantize, unpack


def test_eight_columns_pack_into_one_word_in_awq_order() -> None:
    words = pack(np.arange(8).reshape(1, 8))
    assert words.dtype == np.int32 and words.view(np.uint32)[0, 0] == 0x75316420


@given(arrays(np.int64, (3, 16), elements=st.integers(0, 15)))
def test_unpack_inverts_pack(values: np.ndarray) -> None:
    assert np.array_equal(unpack(pack(values)), values)


@pytest.mark.parametrize("method", ["awq", "gptq"])
def test_each_weight_is_within_half_a_step_of_its_group_after_the_round_trip(method: str) -> None:
    weight = np.random.default_rng(0).standard_normal((16, 2 * GROUP)) * 0.02  # out × in
    parts = quantize(weight, method)
    step = np.repeat(parts["scales"].astype(np.float64), GROUP, axis=0)
    if method == "awq":
        assert parts["qweight"].shape == (2 * GROUP, 2) and parts["scales"].shape == (2, 16)
        values, zeros = unpack(parts["qweight"]), np.repeat(unpack(parts["qzeros"]), GROUP, axis=0)
    else:  # eight consecutive inputs per word; the zero point 8, stored as 7
        assert parts["qweight"].shape == (GROUP // 4, 16) and parts["scales"].shape == (2, 16)
        assert np.all(unpack(parts["qzeros"], SEQUENTIAL) == GPTQ_ZERO - 1)
        values, zeros = unpack(parts["qweight"].T.copy(), SEQUENTIAL).T, GPTQ_ZERO
        assert np.array_equal(parts["g_idx"], np.arange(2 * GROUP) // GROUP)
    back = ((values - zeros) * step).T
    # half a step, and the float16 scale's rounding (2^-11 of it) over up to 8 steps from zero
    assert np.all(np.abs(back - weight) <= step.T * (0.5 + 8 * 2**-11))


def test_a_real_shape_not_a_multiple_of_128_is_grouped_by_64() -> None:
    """SmolLM2-135M's hidden size (576) is 4.5 groups of 128: its checkpoints take groups of 64,
    which vLLM's 4-bit kernels take too; a size no group divides is refused, naming the sizes."""
    from engines.formats.w4_checkpoints import group_size

    assert group_size({"hidden_size": 256, "intermediate_size": 768}) == 128
    assert group_size({"hidden_size": 576, "intermediate_size": 1536}) == 64
    with pytest.raises(ValueError, match="hidden 100 and intermediate 300"):
        group_size({"hidden_size": 100, "intermediate_size": 300})
    weight = np.random.default_rng(0).normal(size=(8, 192)).astype(np.float32)
    for method in ("awq", "gptq"):
        tensors = quantize(weight, method, 64)
        assert tensors["scales"].shape == (3, 8)


@pytest.mark.parametrize("method", ["awq", "gptq"])
def test_a_written_checkpoint_reads_back_as_its_weights_with_outlier_channels(method, tmp_path) -> None:
    """Through the file, as vLLM reads it: a layer whose input channels differ in scale by 50x
    (as a trained model's do) comes back within its rounding. The scales were once written in
    Fortran order (a view of the transpose), a permutation that random weights, whose groups
    all span alike, could not show."""
    from safetensors.numpy import save_file

    from engines.formats.w4_checkpoints import dequantized_weights, write_checkpoint

    rng = np.random.default_rng(0)
    config = {"model_type": "llama", "hidden_size": 192, "intermediate_size": 384}
    source, out = tmp_path / "source", tmp_path / "out"
    source.mkdir(), out.mkdir()
    (source / "config.json").write_text(__import__("json").dumps(config))
    weight = (rng.standard_normal((96, 192)) * np.geomspace(0.01, 0.5, 192)).astype(np.float32)
    save_file({"model.layers.0.self_attn.q_proj.weight": weight,
               "model.embed_tokens.weight": np.zeros((4, 192), np.float32)},
              str(source / "model.safetensors"))
    write_checkpoint(source, out, method)
    back = dequantized_weights(out)["model.layers.0.self_attn.q_proj.weight"]
    assert np.linalg.norm(back - weight) / np.linalg.norm(weight) < 0.15
