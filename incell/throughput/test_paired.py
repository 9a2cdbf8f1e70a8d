"""A quantized cell's speed-up measured inside its own run (incell/throughput/run.py runs this file after
test_throughput.py): the same engine loaded unquantized, in its device's default dtype, in a
process of its own (float_twin.py); each round times the quantized model's batch-1 answer and
then the float model's, seconds apart, on fresh prompts. A speed-up taken between two cells'
runs carries this VM's drift between them (identical configurations measured 1.8-2.45x apart in
separate runs); the two sides of a pair drift together."""

from __future__ import annotations

import os
import time

import pytest

from bench.metrics import record
from engines import DTYPE_ENV
from engines.base import Generator
from incell.throughput.float_twin import SETTLE_S, FloatTwin
from incell.throughput.test_throughput import middle_length, require, rounds
from incell.throughput.timing import round_for


@pytest.fixture(scope="module")
def float_engine(request: pytest.FixtureRequest, engine, model_dir, prof):
    """The cell's engine on the same fixture, unquantized, in the device's default dtype, in a
    process of its own; the test is skipped, saying why, where the cell already is that or the
    model does not load."""
    require(engine, Generator)
    device = request.config.infermatrix_ask.device
    baseline = engine.default_dtype(device)
    asked = os.environ.get(DTYPE_ENV) or baseline  # what the cell asked for, not what the engine
    if engine.quantization == "none" and asked == baseline:  # chose (OpenVINO GenAI: bf16)
        pytest.skip("an unquantized cell in its device's default dtype is its own baseline")
    try:
        twin = FloatTwin({"engine": engine.id, "model_dir": str(model_dir), "device": device,
                          "dtype": baseline, "prof": prof, "length": middle_length(prof)})
    except RuntimeError as exc:
        pytest.skip(f"the {baseline} model did not load in its own process: {exc}")
    yield twin
    twin.close()


def test_quantized_against_float(benchmark, measured, engine, float_engine, *, prof,
                                 prompts) -> None:
    """Paired rounds: (quantized, float) at batch 1 and the profile's middle input length, each
    timed as test_generation times it; both sides' decode and TTFT kept, pair by pair (a pair
    where either side's decode cannot be timed is dropped, as test_generation drops a round)."""
    length = middle_length(prof)
    ours, route = round_for(engine, prompts, prof, 1, length)

    def pair():
        mine = ours()
        time.sleep(SETTLE_S)
        return mine, float_engine.round()

    timed = rounds(benchmark, prof, pair, measured)
    pairs = [(q, f) for q, f in timed if q.decode_s > 0 and f.decode_s > 0]
    assert pairs, "no pair timed a decode on both sides"
    params = {"batch": 1, "input_tokens": length, "new_tokens": prof.new_tokens,
              "float": f"{float_engine.dtype}, unquantized, in its own process",
              "rejected_rounds": len(timed) - len(pairs)}
    for side, at, how in (("quantized", 0, route), ("float", 1, float_engine.route)):
        measured.metrics += [
            record("paired_decode_tokens_per_s",
                   [p[at].decode_tokens / p[at].decode_s for p in pairs], side=side, timed=how,
                   **params),
            record("paired_ttft_s", [p[at].ttft_s for p in pairs], side=side, timed=how, **params)]
