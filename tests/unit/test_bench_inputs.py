"""Bad benchmark input gets a message naming the value and the valid ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.metrics import METRICS, BenchInputError, check_metric, record
from bench.profiles import PROFILES, int_list, profile
from compat.cli import UsageError, bench_args, bench_run_args
from core.ask import Ask
from core.bench_details import BenchDetail, MetricRecord
from core.records import read
from incell.throughput.run import main as bench_main


def decode_rows(metrics, roof):
    """The MBU rows a bench record with these metrics and this roofline shows (derived)."""
    return BenchDetail(fixture="f", metrics=metrics, roofline=roof).decode_bounds


def prefill_rows(metrics, roof):
    return BenchDetail(fixture="f", metrics=metrics, roofline=roof).prefill_bounds

def test_unknown_metric_names_it_and_suggests() -> None:
    with pytest.raises(BenchInputError, match=r"'decode_tokens_per_sec'.*decode_tokens_per_s"):
        check_metric("decode_tokens_per_sec")


@pytest.mark.parametrize("bad", ["0", "-4", "1,0,16", "4,x"])
def test_batch_sizes_and_lengths_must_be_positive_ints(bad: str) -> None:
    with pytest.raises(BenchInputError, match=repr(bad.rsplit(",", maxsplit=1)[-1]) if "x" in bad else "> 0"):
        int_list(bad)


def test_profiles_validate_overrides() -> None:
    assert profile("full", batches=(2,)).batches == (2,)
    with pytest.raises(BenchInputError, match="rounds must be at least 5, got 3"):
        profile("quick", rounds=3)
    with pytest.raises(BenchInputError, match=r"'grid'.*full"):
        profile("grid")
    with pytest.raises(BenchInputError, match="new_tokens must be >= 2"):
        profile("quick", new_tokens=1)


def test_every_profile_shape_fits_the_tiny_fixtures_context() -> None:
    for prof in PROFILES.values():
        assert max(prof.input_lengths) + prof.new_tokens <= 1024


def test_bench_session_arguments(tmp_path) -> None:
    args = bench_args(["transformers-numpy2", "--batches", "1,4", "--input-lengths", "32"])
    assert args.cells == ["transformers-numpy2"]
    assert bench_run_args(args) == ("--profile", "full", "--batches", "1,4", "--input-lengths", "32")
    with pytest.raises(UsageError, match="every value must be an int > 0, got 0"):
        bench_args(["--batches", "0"])
    # a real shape instead of each cell's first fixture; an unknown one named with the valid ones
    shape = bench_args(["vllm-quantnone", "--fixture", "smollm2-135m-shape", "--batches", "1,2"])
    assert bench_run_args(shape) == ("--profile", "full", "--fixture", "smollm2-135m-shape",
                                     "--batches", "1,2")
    with pytest.raises(UsageError, match=r"invalid choice: 'smollm2-135m'.*smollm2-135m-shape"):
        bench_args(["--fixture", "smollm2-135m"])
    with pytest.raises(UsageError, match=r"Unknown metric 'tok_s'"):
        bench_args(["--compare", str(tmp_path), "--metric", "tok_s"])
    with pytest.raises(UsageError, match="does not exist"):
        bench_args(["--compare", str(tmp_path / "nowhere.json")])


def test_bench_run_refuses_before_loading_anything(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["--ask", Ask(engine="transformers", fixtures=("tiny-llama",),
                                 bench_args=("--input-lengths", "128,-1")).arg(),
                    "--out", "x.json"])
    assert exit_info.value.code == 2
    assert "every value must be an int > 0, got -1" in capsys.readouterr().err


def test_a_record_keeps_raw_samples_and_the_metric_definition() -> None:
    r = record("ttft_s", [0.002, 0.003, 0.0025, 0.002, 0.0031], batch=1)
    assert r.samples == [0.002, 0.003, 0.0025, 0.002, 0.0031]
    assert r.unit == METRICS["ttft_s"].unit and r.better == "lower"
    assert r.stats.median == 0.0025 and r.params == {"batch": 1}


def test_roofline_fractions_from_measured_figures(tmp_path) -> None:
    """Bytes per token from the safetensors header; decode against bandwidth, prefill against
    the measured compute where a GPU gave one."""
    import json
    import struct

    from bench.roofline import roofline

    header = {"model.embed_tokens.weight": {"dtype": "F32", "shape": [10, 4], "data_offsets": [0, 160]},
              "lm_head.weight": {"dtype": "F32", "shape": [10, 4], "data_offsets": [160, 320]},
              "model.layers.0.mlp.up_proj.weight": {"dtype": "F32", "shape": [4, 4],
                                                    "data_offsets": [320, 384]}}
    raw = json.dumps(header).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(384))
    shape = {"batch": 1, "input_tokens": 8, "new_tokens": 4}
    metrics = [record("memory_bandwidth_gb_s", [1e-6] * 5, mib=1),
               record("decode_tokens_per_s", [1000.0] * 5, **shape),
               record("prefill_tokens_per_s", [5000.0] * 5, **shape),
               record("compute_tflops", [1e-6] * 5, n=8, dtype="float32")]
    roof = roofline(metrics, tmp_path)
    assert roof.weight_bytes_per_token == 224  # the untied input table is not read whole
    assert decode_rows(metrics, roof)[0].fraction == pytest.approx(224 * 1000 / 1e3)
    assert prefill_rows(metrics, roof)[0].fraction == pytest.approx(5000 * 2 * 56 / 1e6)
    assert roof.least_flops_per_token == 2 * (224 - 160) / 4  # the output projection left out
    # a quantized engine's own files, an eighth of the float32 ones: it reads an eighth a token
    quantized = roofline(metrics, tmp_path, engine_bytes=384 // 8)
    assert quantized.weight_bytes_per_token == 28
    assert prefill_rows(metrics, quantized)[0].fraction == prefill_rows(metrics, roof)[0].fraction


def test_a_device_row_is_held_to_the_devices_own_limits_never_the_hosts(tmp_path) -> None:
    """A fake GPU beside the host: the GPU row's MBU divides by the GPU's read bandwidth and its
    prefill by the GPU's peak in the engine's dtype; with no GPU bandwidth there is no MBU at
    all, never one divided by the host's DRAM."""
    import json
    import struct

    from bench.roofline import roofline

    header = {"lm_head.weight": {"dtype": "F32", "shape": [250, 1000], "data_offsets": [0, 10**6]}}
    raw = json.dumps(header).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(10**6))
    shape = {"batch": 1, "input_tokens": 8, "new_tokens": 4}
    engine = [record("decode_tokens_per_s", [1000.0] * 5, **shape),
              record("prefill_tokens_per_s", [10_000.0] * 5, **shape)]
    host = [record("memory_bandwidth_gb_s", [30.0] * 5, mib=256, device="cpu", access="read"),
            record("compute_tflops", [0.2] * 5, n=2048, dtype="float32", device="cpu")]
    gpu = [record("memory_bandwidth_gb_s", [4000.0] * 5, mib=2048, device="cuda", access="read",
                  device_name="Fake GPU"),
           record("compute_tflops", [50.0] * 5, n=8192, dtype="float32", device="cuda"),
           record("compute_tflops", [800.0] * 5, n=8192, dtype="bfloat16", device="cuda")]
    # bfloat16 weights: half the float32 file is read a token
    roof = roofline(host + gpu + engine, tmp_path, engine_bytes=5 * 10**5, device="cuda",
                    dtype="bfloat16")
    assert (roof.device, roof.device_name, roof.bandwidth_gb_s) == ("cuda", "Fake GPU", 4000.0)
    assert decode_rows(engine, roof)[0].fraction == pytest.approx(5e5 * 1000 / 4000e9)
    assert roof.compute_tflops == 800.0 and roof.compute_dtype == "bfloat16"
    assert prefill_rows(engine, roof)[0].fraction == pytest.approx(10_000 * 2 * 250_000 / 800e12)
    assert roof.last_level_cache_bytes is None  # the CPU's cache says nothing of a GPU's weights
    assert roofline(host + engine, tmp_path, device="cuda") is None  # never the host's bandwidth
    cpu = roofline(host + gpu + engine, tmp_path)
    assert (cpu.device, cpu.bandwidth_gb_s, cpu.compute_tflops) == ("cpu", 30.0, 0.2)
    # a peak in another dtype is not this engine's limit: no compute fraction at all
    assert roofline(host + gpu[:2] + engine, tmp_path, device="cuda",
                    dtype="bfloat16").compute_tflops is None


def test_mbu_and_the_prefill_fraction_are_of_the_best_reading(tmp_path) -> None:
    """The probes' readings spread (16-47 GB/s between runs on one VM): MBU divides by the best
    reading, what the machine showed it can do, and prefill by the best peak reading; a peak in
    the engine's compute dtype (int8) is the one it is held to."""
    import json
    import struct

    from bench.roofline import roofline

    header = {"lm_head.weight": {"dtype": "F32", "shape": [250, 1000], "data_offsets": [0, 10**6]}}
    raw = json.dumps(header).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(10**6))
    shape = {"batch": 1, "input_tokens": 8, "new_tokens": 4}
    metrics = [record("memory_bandwidth_gb_s", [16.0, 47.0, 30.0], mib=256, access="read"),
               record("compute_tflops", [0.1, 0.2, 0.15], n=2048, dtype="float32"),
               record("compute_tflops", [0.3, 0.6, 0.5], n=2048, dtype="int8"),
               record("decode_tokens_per_s", [1000.0] * 3, **shape),
               record("prefill_tokens_per_s", [10_000.0] * 3, **shape)]
    roof = roofline(metrics, tmp_path)
    assert (roof.bandwidth_gb_s, roof.compute_tflops) == (47.0, 0.2)
    assert decode_rows(metrics, roof)[0].fraction == pytest.approx(1e6 * 1000 / 47e9)
    int8 = roofline(metrics, tmp_path, dtype="int8")
    assert (int8.compute_tflops, int8.compute_dtype) == (0.6, "int8")
    assert prefill_rows(metrics, int8)[0].fraction == pytest.approx(10_000 * 2 * 250_000 / 0.6e12)


def test_a_figure_past_its_limit_is_never_bare_and_cached_weights_have_no_mbu() -> None:
    from core.bench_details import PrefixCache, Roofline
    from pages.throughput import mbu, prefix_cache

    def detail(per_token: int, fraction: float, cache: int | None, *metrics) -> BenchDetail:
        """A record whose batch-1 decode median reads `fraction` of 30 GB/s."""
        roof = Roofline(per_token, 30.0, last_level_cache_bytes=cache)
        decode = record("decode_tokens_per_s", [fraction * 30e9 / per_token] * 5, batch=1,
                        input_tokens=128, new_tokens=32)
        return BenchDetail(fixture="x", roofline=roof, metrics=[read(MetricRecord, m)
                                                                  for m in (decode, *metrics)])

    assert mbu(detail(2**30, 0.56, 32 * 2**20)) == "56.0%"
    assert mbu(detail(2**30, 2.44, 32 * 2**20)).startswith("⚠️ implausible 244%: past the DRAM")
    assert mbu(detail(12 * 2**20, 2.44, 32 * 2**20)) == "cache-resident (12.0 MiB ≤ 32 MiB cache)"
    fresh = record("ttft_fresh_s", [0.050] * 5, batch=1)
    hit = detail(2**30, 0.5, None, fresh, record("ttft_repeat_s", [0.001] * 5, batch=1))
    miss = detail(2**30, 0.5, None, fresh, record("ttft_repeat_s", [0.049] * 5, batch=1))
    hit.prefix_cache = PrefixCache("none", "")
    assert prefix_cache(hit) == ("⚠️ hit: a repeat 1 ms vs 50 ms fresh (repeat 2% of fresh, "
                                 "2%–2%) (the engine declares none)")
    assert prefix_cache(miss) == "none seen (repeat 98% of fresh, 98%–98%)"
    # audit finding 15: llama-server "off" at 69% of fresh, next to the 60% line; where the
    # ratio's interval holds the line the detector says undecided, never "off"
    near = detail(2**30, 0.5, None, record("ttft_fresh_s", [0.050, 0.020, 0.060, 0.045, 0.030],
                                           batch=1),
                  record("ttft_repeat_s", [0.031, 0.020, 0.045, 0.050, 0.025], batch=1))
    assert prefix_cache(near).startswith("⚠️ undecided (repeat 69% of fresh, ")
    # an engine with a switch: the detector runs as shipped and with it off, as the figures ran
    fresh_off = record("ttft_fresh_off_s", [0.050] * 5, batch=1)
    switched = detail(2**30, 0.5, None, fresh, record("ttft_repeat_s", [0.001] * 5, batch=1),
                      fresh_off, record("ttft_repeat_off_s", [0.051] * 5, batch=1))
    switched.prefix_cache = PrefixCache("switch", "LLM(enable_prefix_caching=False)")
    assert prefix_cache(switched) == ("as shipped ⚠️ hit: a repeat 1 ms vs 50 ms fresh (repeat 2% "
                                      "of fresh, 2%–2%); "
                                      "off for the figures (repeat 102% of fresh, 102%–102%)")
    switched.metrics[-1] = read(MetricRecord, record("ttft_repeat_off_s", [0.002] * 5, batch=1))
    assert prefix_cache(switched).endswith("⚠️ still hit with it off: a repeat 2 ms vs 50 ms "
                                           "fresh (repeat 4% of fresh, 4%–4%)")


def test_the_real_shape_session_names_a_bad_shape_and_its_valid_ones() -> None:
    from compat.cli import real_shape_args
    from fixtures.catalog import DEFAULT_REAL_SHAPE

    assert real_shape_args([]).shape == DEFAULT_REAL_SHAPE
    assert real_shape_args(["--shape", "qwen2-0.5b-shape", "llama_cpp-*"]).cells == ["llama_cpp-*"]
    with pytest.raises(UsageError, match=r"qwen3.*smollm2-135m-shape"):
        real_shape_args(["--shape", "qwen3"])
    with pytest.raises(UsageError, match="--limit-min"):
        real_shape_args(["--limit-min", "0"])


def test_the_real_profile_pairs_its_shapes() -> None:
    real = PROFILES["real"]
    assert real.gen_shapes() == [(1, 512), (8, 32)]
    assert PROFILES["full"].gen_shapes()[:2] == [(1, 32), (1, 128)]
    with pytest.raises(BenchInputError, match="pairs batches"):
        profile("real", batches=(1, 4, 16))


def test_progress_shows_the_time_left_at_the_pace_so_far() -> None:
    from compat.drive import progress

    assert progress(0, 4, 0) == "[------------------------] 0/4 · 0 s"
    assert progress(1, 4, 90) == "[######------------------] 1/4 · 1 min 30 s · about 4 min 30 s left"
    assert progress(4, 4, 600).startswith("[########################] 4/4 · 10 min 0 s")


def test_an_in_memory_quantization_is_charged_the_bytes_a_step_reads(tmp_path) -> None:
    """mistral.rs's ISQ quantizes a float32 folder as it loads: its Q8_0 row was charged the
    float32 files and read as 125% of the bandwidth. The 2-D weights count 8.5 (4.5) bits; the
    norms as stored; a tied embedding once, as the head; an untied one not at all (gathered)."""
    import json
    import struct

    from engines.formats.weights_read import isq_read_bytes

    def folder(name: str, tensors: dict[str, list[int]]) -> Path:
        header = {k: {"dtype": "F32", "shape": s, "data_offsets": [0, 0]} for k, s in tensors.items()}
        raw = json.dumps(header).encode()
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
        return tmp_path / name

    tied = folder("tied", {"model.embed_tokens.weight": [64, 32], "model.norm.weight": [32],
                           "model.layers.0.mlp.up_proj.weight": [32, 32]})
    untied = folder("untied", {"model.embed_tokens.weight": [64, 32], "lm_head.weight": [64, 32],
                               "model.norm.weight": [32]})
    assert isq_read_bytes(tied, 8.5) == round((64 * 32 + 32 * 32) * 8.5 / 8 + 32 * 4)
    assert isq_read_bytes(untied, 4.5) == round(64 * 32 * 4.5 / 8 + 32 * 4)
