"""What the bench rungs record, as dataclasses: a metric with its raw samples and the statistics
derived from them, the roofline, the engine's own tool beside ours (bench: incell/throughput/run.py), and
a server's load sweep (serve_bench: incell/serve_bench.py). Built where they are measured; read
by the pages and bench/compare.py (core/records.py turns the JSON form back into them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import unknown

# Every metric's name, spelled once: a page or a suite that looks a figure up by name uses these,
# and `find` refuses a name that is none of them (a typo would otherwise read as "not measured").
# bench/metrics.py defines each (tests/unit/test_stats.py holds the two lists equal).
PREFILL_TOKENS_PER_S = "prefill_tokens_per_s"
DECODE_TOKENS_PER_S = "decode_tokens_per_s"
TTFT_S = "ttft_s"
TPOT_S = "tpot_s"
E2E_S = "e2e_s"
TTFT_FRESH_S = "ttft_fresh_s"
TTFT_REPEAT_S = "ttft_repeat_s"
TTFT_FRESH_OFF_S = "ttft_fresh_off_s"
TTFT_REPEAT_OFF_S = "ttft_repeat_off_s"
ITL_S = "itl_s"
SENTENCES_PER_S = "sentences_per_s"
EMBED_TOKENS_PER_S = "embed_tokens_per_s"
HARNESS_OVERHEAD = "harness_overhead"
COMPUTE_TFLOPS = "compute_tflops"
PAIRED_DECODE_TOKENS_PER_S = "paired_decode_tokens_per_s"
PAIRED_TTFT_S = "paired_ttft_s"
MEMORY_BANDWIDTH_GB_S = "memory_bandwidth_gb_s"
SERVE_TTFT_S = "serve_ttft_s"
SERVE_TTFT_SCHEDULED_S = "serve_ttft_scheduled_s"
SERVE_E2E_S = "serve_e2e_s"
SERVE_E2E_SCHEDULED_S = "serve_e2e_scheduled_s"
SERVE_DISPATCH_DELAY_S = "serve_dispatch_delay_s"
SERVE_TPOT_S = "serve_tpot_s"
SERVE_ITL_S = "serve_itl_s"
SERVE_EVENT_GAP_S = "serve_event_gap_s"
SERVE_REQUESTS_PER_S = "serve_requests_per_s"
SERVE_OUTPUT_TOKENS_PER_S = "serve_output_tokens_per_s"
SERVE_GOODPUT_PER_S = "serve_goodput_per_s"
METRIC_NAMES = frozenset({PREFILL_TOKENS_PER_S, DECODE_TOKENS_PER_S, TTFT_S, TPOT_S, E2E_S,
    TTFT_FRESH_S, TTFT_REPEAT_S, TTFT_FRESH_OFF_S, TTFT_REPEAT_OFF_S, ITL_S, SENTENCES_PER_S,
    EMBED_TOKENS_PER_S, HARNESS_OVERHEAD, COMPUTE_TFLOPS, PAIRED_DECODE_TOKENS_PER_S,
    PAIRED_TTFT_S, MEMORY_BANDWIDTH_GB_S, SERVE_TTFT_S, SERVE_TTFT_SCHEDULED_S, SERVE_E2E_S,
    SERVE_E2E_SCHEDULED_S, SERVE_DISPATCH_DELAY_S, SERVE_TPOT_S, SERVE_ITL_S, SERVE_EVENT_GAP_S,
    SERVE_REQUESTS_PER_S, SERVE_OUTPUT_TOKENS_PER_S, SERVE_GOODPUT_PER_S})


@dataclass
class Stats:
    """Statistics derived from raw samples (bench/stats.py)."""

    n: int
    median: float
    p90: float
    p99: float
    min: float
    max: float
    mean: float
    stdev: float
    cv: float


@dataclass
class MetricRecord:
    """One metric at one shape: its raw samples and the statistics derived from them."""

    name: str
    unit: str
    better: str
    params: dict[str, Any]
    samples: list[float]
    stats: Stats

    @property
    def batch(self) -> int | None:
        """The shape's batch size (None: the metric has none)."""
        return self.params.get("batch")

    @property
    def input_tokens(self) -> int | None:
        return self.params.get("input_tokens")

    @property
    def new_tokens(self) -> int | None:
        return self.params.get("new_tokens")

    @property
    def input(self) -> str | None:
        """An embedding shape's input: "short" sentences, or "max" (truncated at the model's length)."""
        return self.params.get("input")

    @property
    def access(self) -> str:
        """How the machine probe read memory: "read" (a sum), or "" for the older copy."""
        return self.params.get("access", "")


@dataclass(frozen=True)
class DecodeBound:
    """A batch-1 decode median against the bandwidth limit: derived (BenchDetail.decode_bounds),
    never stored, so the row and the metric cannot disagree."""

    input_tokens: int
    decode_tokens_per_s: float
    bound_tokens_per_s: float
    fraction: float


@dataclass(frozen=True)
class PrefillBound:
    """A batch-1 prefill median against the matmul peak: derived (BenchDetail.prefill_bounds)."""

    input_tokens: int
    prefill_tokens_per_s: float
    fraction: float


@dataclass
class Roofline:
    """Decode at batch 1 against the bandwidth limit, prefill at batch 1 against the matmul peak,
    both measured on the device the engine computes on (bench/roofline.roofline)."""

    weight_bytes_per_token: int
    """Bytes of weights one decode step reads, in the engine's own format as loaded."""
    bandwidth_gb_s: float
    """Read bandwidth of the engine's device measured in the same run: on the CPU DRAM with
    every core, far beyond the caches; on CUDA the GPU's own memory."""
    compute_tflops: float | None = None
    last_level_cache_bytes: int | None = None
    """The CPU's last-level cache: weights that fit in it are read from cache, not DRAM, and the
    bandwidth bound does not apply (the report says "cache-resident" instead of a fraction)."""
    device: str = "cpu"
    """Where the limits were measured: the cell's device ("cpu", "cuda")."""
    device_name: str = ""
    """The GPU's name where the device is one ("NVIDIA H200")."""
    compute_dtype: str = "float32"
    """The dtype the engine computes in, and so the dtype of `compute_tflops`'s matmul."""
    bytes_counted: str = ""
    """How weight_bytes_per_token was counted: "files" (read from the engine's own files,
    engines/formats/weights_read.py) or "scaled" (the fixture's float32 count scaled to the files' size)."""
    flops_per_token: float | None = None
    """Matmul FLOPs a token costs in prefill (2 a weight), the prefill rows' numerator."""
    least_flops_per_token: float | None = None
    """The least a prompt token must cost: 2 a weight, the output projection left out (an engine
    need compute logits at the last prompt position only, as vLLM and llama.cpp do). What the
    audit holds a prefill sample to: a sample past the peak at this count is impossible."""

    @property
    def cache_resident(self) -> bool:
        """The weights fit in the last-level cache: DRAM bandwidth does not bound their reads."""
        return bool(self.last_level_cache_bytes) and \
            self.weight_bytes_per_token <= self.last_level_cache_bytes


@dataclass
class ToolKL:
    """llama-perplexity --kl-divergence of a quantized GGUF against the float32 one: its mean KL
    and top-1 agreement, each with the ± it prints, and the commands that made them."""

    kl_mean: float
    kl_pm: float
    top1_agreement: float
    top1_pm: float
    commands: list[str] = field(default_factory=list)


@dataclass
class Referee:
    """An engine's own benchmark tool run beside our figures, same file, threads and shape
    (incell/referee.py): its tokens/s samples and medians."""

    tool: str
    commit: str
    commands: list[str]
    threads: int
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    prefill_samples: list[float] = field(default_factory=list)
    decode_samples: list[float] = field(default_factory=list)
    kl: ToolKL | None = None
    """Where the file is a quantization: llama-perplexity --kl-divergence against the float32 file."""
    kl_error: str = ""
    """Why llama-perplexity gave no KL where it was asked for one: the tool's failure is the
    referee's, never the bench rung's."""


@dataclass
class Conversion:
    """One conversion the engine loaded (fixtures/convert.py's cache entry): what it cost once."""

    converter: str
    seconds: float | None
    """Seconds the conversion took when it was made (None: made before this was recorded)."""
    bytes: int
    """Its files' size on disk."""
    made_here: bool = False
    """Made by the process that measured (its memory is then in that process's peak)."""


@dataclass
class WeightsFacts:
    """What the timed engine loaded, and what loading cost."""

    bytes: int | None = None
    """The weights' size in the engine's own format, where its adapter knows it."""
    note: str = ""
    """The format in a line where the adapter knows more (llama.cpp's tensor types, fallbacks
    and bits per weight)."""
    load_s: float | None = None
    """load()'s seconds in the bench process: import of the weights, and any conversion not
    made before (then listed with its own seconds)."""
    conversions: list[Conversion] = field(default_factory=list)


@dataclass
class PrefixCache:
    """The engine's prefix cache (engines.base.Engine.prefix_cache). The figures are timed with it
    off where it has a switch; the detector's `ttft_*_s` are the engine as shipped, `ttft_*_off_s`
    with it off."""

    state: str = ""
    """"none" (it has none), "switch" (on by default, turned off for the figures), "no switch"
    (on, and nothing turns it off); "" where it was not recorded."""
    switch: str = ""
    """How it is turned off (an option, an argument)."""


@dataclass
class Threads:
    """The threads the bench rung ran with: the cores, the thread variables of the environment,
    and the cores the engine's process tree really kept busy per shape (CPU seconds over wall
    seconds: vLLM's default leaves one idle)."""

    cpu_count: int | None = None
    env: dict[str, str | None] = field(default_factory=dict)
    """OMP_NUM_THREADS, MKL_NUM_THREADS, OPENBLAS_NUM_THREADS (None: not set), VLLM_CPU_*."""
    cores_busy: dict[str, float] = field(default_factory=dict)
    """"batch1-in128" -> cores busy while that shape ran."""

    @staticmethod
    def upgrade(data: dict[str, Any]) -> dict[str, Any]:
        """Files written before the threads were typed kept the variables beside cpu_count and
        cores_busy."""
        if "env" in data:
            return data
        own = {"cpu_count", "cores_busy"}
        return {**{k: v for k, v in data.items() if k in own},
                "env": {k: v for k, v in data.items() if k not in own}}


@dataclass
class BenchDetail:
    """bench: every metric with its samples, memory, threads and the roofline."""

    fixture: str
    metrics: list[MetricRecord] = field(default_factory=list)
    profile: str = "quick"
    roofline: Roofline | None = None
    peak_rss_mib: float | None = None
    peak_gpu_mib: float | None = None
    threads: Threads = field(default_factory=Threads)
    rounds: int | None = None
    warmup: int | None = None
    pytest_benchmark: dict[str, Any] = field(default_factory=dict)
    referee: Referee | None = None
    """The engine's own benchmark tool at the same shape, where it has one built (llama-bench)."""
    weights: WeightsFacts | None = None
    prefix_cache: PrefixCache = field(default_factory=PrefixCache)
    run: str = ""
    """The id of the run whose bench phase measured it (core/timeline.run_id; its limits:
    core/run_limits.py), kept where a later run reuses the cell; "" before runs had ids."""

    def find(self, name: str, **params) -> MetricRecord | None:
        """The metric `name` at the shape `params` (a subset of its params), if measured; a name
        that is no metric's is a ValueError that names the nearest."""
        if name not in METRIC_NAMES:
            raise ValueError(unknown("metric", name, METRIC_NAMES))
        return next((m for m in self.metrics if m.name == name
                     and all(m.params.get(k) == v for k, v in params.items())), None)

    @property
    def decode_bounds(self) -> list[DecodeBound]:
        """Each batch-1 decode median against bandwidth ÷ bytes a token (the roofline's inputs
        and the metrics' samples, derived when read)."""
        roof = self.roofline
        if roof is None:
            return []
        bytes_per_s = roof.bandwidth_gb_s * 1e9
        per_token = roof.weight_bytes_per_token
        return [DecodeBound(input_tokens=m.input_tokens, decode_tokens_per_s=m.stats.median,
                            bound_tokens_per_s=bytes_per_s / per_token,
                            fraction=per_token * m.stats.median / bytes_per_s)
                for m in self.metrics if m.name == DECODE_TOKENS_PER_S and m.batch == 1]

    @property
    def prefill_bounds(self) -> list[PrefillBound]:
        """Each batch-1 prefill median against the matmul peak ÷ FLOPs a token."""
        roof = self.roofline
        if roof is None or not roof.compute_tflops or not roof.flops_per_token:
            return []
        flops_per_s = roof.compute_tflops * 1e12
        return [PrefillBound(input_tokens=m.input_tokens, prefill_tokens_per_s=m.stats.median,
                             fraction=m.stats.median * roof.flops_per_token / flops_per_s)
                for m in self.metrics if m.name == PREFILL_TOKENS_PER_S and m.batch == 1]


@dataclass
class LoadSpec:
    """How one load run loaded the server (bench/loadgen.Load's fields)."""

    mode: str
    """"closed" (fixed users), "constant" or "poisson" (open loop at `rate`)."""
    concurrency: int
    """closed: users; open: the most requests in flight (0: no cap)."""
    rate: float
    """open loop: requests per second."""
    duration_s: float
    warmup_s: float
    min_requests: int
    seed: int
    per_user: int = 0
    """A closed loop: the requests a user the window was stretched to hold at least (0: recorded
    before it was asked, bench/loadgen.STEADY_PER_USER)."""


@dataclass
class TokenCounts:
    """The server's usage against the client re-tokenizing each whole text."""

    usage_reported: int
    """Requests whose stream carried usage."""
    requests: int
    source: str = ""
    """Where the counts came from: "usage", "ids", "client" (re-tokenizing each whole text), or
    several joined with "+"; never the number of events."""
    unknown: int = 0
    """Successful requests whose tokens no source could count (left out of tok/s and TPOT)."""
    events_per_token: float | None = None
    client_total: int | None = None
    usage_total: int | None = None
    mismatched: int | None = None
    """Requests whose usage and the client's count differ (None: the client did not count)."""
    mismatch_examples: list[list[int | None]] = field(default_factory=list)


LITTLE_SLACK = 1.02
"""Little's law with room for the window's edges: a closed loop's req/s × mean end-to-end stays
at most its users × this (bench/serving.steady_state; the page holds older records to it)."""


@dataclass
class LoadRun:
    """One load run of the serving benchmark (bench/serving.measure): raw samples per metric,
    errors by kind, goodput against the SLOs, token counts, and whether the client kept up."""

    load: LoadSpec
    metrics: list[MetricRecord]
    requests: int
    errors: int
    errors_by_kind: dict[str, int]
    error_examples: list[str]
    window_s: float
    slos: dict[str, float]
    slo_attainment: float
    tokens: TokenCounts
    achieved_rate: float
    """Open loop: requests of the window sent on time (bench/serving.ON_TIME_S) ÷ its length."""
    target_rate: float
    """Open loop: the schedule's own rate inside the window (closed loop: 0 for both)."""
    loop_lag_p99_s: float
    client_cpu: float
    """The client's share of one core over the run."""
    valid: bool
    invalid_because: list[str] = field(default_factory=list)
    steady: bool | None = None
    """A closed loop at a steady state (bench/serving.steady_state): a window of 60 s or more,
    10 requests a user, Little's law held. None: recorded before it was judged (the page then
    holds the point to Little's law alone)."""
    unsteady_because: list[str] = field(default_factory=list)

    def samples(self, name: str) -> list[float]:
        return next((m.samples for m in self.metrics if m.name == name), [])

    @property
    def failed_share(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def median(self, name: str) -> float | None:
        found = next((m for m in self.metrics if m.name == name), None)
        return found.stats.median if found is not None else None


@dataclass
class Knee:
    """The closed-loop step past which more users add little throughput, and the step after."""

    users: int
    output_tokens_per_s: float
    next_users: int
    next_output_tokens_per_s: float
    why: str = ""
    """What the next step showed: little more throughput, or failed streams."""


@dataclass
class ServeBenchDetail:
    """One server under load (`nox -s serve-bench`, incell/serve_bench.py)."""

    engine: str
    server: str
    fixture: str
    startup_s: float
    input_tokens: int
    output_tokens: int
    runs: list[LoadRun] = field(default_factory=list)
    knee: Knee | None = None
    prefix_cache: PrefixCache = field(default_factory=PrefixCache)
    """As BenchDetail's: the server's prefix cache, off where it has a switch."""
    eos_off: bool = True
    """Every request asked the server to ignore EOS (False: an endpoint that takes no such field;
    a stream may end at EOS, short of output_tokens)."""
    api: str = "completions"
    """The route every request took: "completions" (prompts of exactly input_tokens) or "chat"
    (/v1/chat/completions: user turns of real text, their lengths drawn as `prompts` says)."""
    prompts: str = ""
    """Where the chat mode's prompts come from and how their lengths were drawn."""
