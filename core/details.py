"""What each rung records, as dataclasses: written inside a cell, read by the reports.

The processes that climb a cell (incell/worker.py, the conformance suite's conftest,
incell/bench.py, the resolve and install rungs) build these records; reports/ and
bench/compare.py read their fields. `read()` turns the JSON form back into them and
refuses a key the record does not have, so writer and reader cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

PropertyStatus = Literal["pass", "fail", "skip", "deviation"]


@dataclass
class Fallback:
    """A requested package that resolved older than the newest release its spec allows."""

    package: str
    newest: str
    resolved: str
    why: str
    """The resolver's own reason, from forcing the newest release."""


@dataclass
class ResolveDetail:
    """resolve: the lock and every version in it, and any silent fallback."""

    versions: dict[str, str] = field(default_factory=dict)
    """Every resolved package and its version (the lock's contents)."""
    lock: str = ""
    """The lock file as uv wrote it; `uv pip sync` re-creates the environment from it."""
    fallbacks: list[Fallback] = field(default_factory=list)
    from_lock: str | None = None
    """The lock this run installed instead of resolving (--from-lock), if any."""


@dataclass
class InstallDetail:
    """install: the venv and the interpreter it really has."""

    venv: str
    python: str


@dataclass
class DeviationInfo:
    """A declared departure from a conformance property."""

    reason: str
    link: str = ""


@dataclass
class ImportDetail:
    """import: the adapter class and everything it declares."""

    class_: str
    import_s: float
    devices: list[str] = field(default_factory=list)
    """Devices the registry declares for the engine (engines/__init__.py)."""
    capabilities: dict[str, Any] = field(default_factory=dict)
    unsupported: dict[str, str] = field(default_factory=dict)
    deviations: dict[str, DeviationInfo] = field(default_factory=dict)
    parity_top_k: int | None = None
    parity_tolerance: float | None = None
    logprob_tolerance: float | None = None


@dataclass
class LoadedFixture:
    path: str
    load_s: float
    """Seconds from creating the adapter to a loaded model."""
    first_call_s: float | None = None
    """Seconds of the first call after load (one token generated, or one text embedded): what
    compiles or warms up lazily shows here."""


@dataclass
class LoadDetail:
    """load: each fixture the engine loaded, and how long it took."""

    fixtures: dict[str, LoadedFixture] = field(default_factory=dict)


@dataclass
class QualityFigures:
    """What a quality property measured on one fixture against the float32 reference: a
    generator's next-token distributions (quantization_quality), or an embedder's vectors."""

    quantization: str = "none"
    weights_bytes: int | None = None
    """The weights as the engine loads them (its files on disk)."""
    positions: int | None = None
    kl_mean: float | None = None
    """Mean KL(reference || engine) over positions, in nats (bench/quality.Drift)."""
    kl_mean_low: float | None = None
    """95% bootstrap interval of kl_mean over prompts."""
    kl_mean_high: float | None = None
    kl_p99: float | None = None
    top1: float | None = None
    """Fraction of positions where the engine's most likely token is the reference's."""
    rms_dp: float | None = None
    kernel_kl_mean: float | None = None
    """The engine against its own weights run exactly: its kernels' share of the loss."""
    kernel_kl_p99: float | None = None
    weights_kl_mean: float | None = None
    """Its weights dequantized against float32: the quantization's share of the loss."""
    mean_cosine: float | None = None
    """Embedders: cosine of each vector to its float32 reference, mean and least."""
    min_cosine: float | None = None
    known_drift: float | None = None
    """Embedders: how far the real model's published similarity moved."""


@dataclass
class LoraFigures:
    """lora_adapter on one fixture: the engine with the adapter set, against the base weights
    with it merged in float64."""

    positions: int
    effect_kl_mean: float
    """How far the adapter moves the reference (mean KL): it must clearly be non-zero."""
    kl_mean: float | None = None
    """An engine with logits: its distributions against the merged reference's."""
    kl_p99: float | None = None
    top1: float | None = None
    logprob_max_diff: float | None = None
    """An engine without logits: its log-probabilities' largest distance from the reference's."""


@dataclass
class PropertyFigures:
    """A property's figures on one fixture: the record of the property that measures them."""

    quality: QualityFigures | None = None
    lora: LoraFigures | None = None


@dataclass
class PropertyResult:
    """One conformance property, folded over every fixture (its worst case wins)."""

    status: PropertyStatus = "skip"
    message: str = ""
    cases: dict[str, str] = field(default_factory=dict)
    """Fixture (or parametrized case) -> its own status."""
    notes: dict[str, str] = field(default_factory=dict)
    """Fixture -> what the property measured (e.g. "6/6 prompts token-exact")."""
    figures: dict[str, PropertyFigures] = field(default_factory=dict)
    """Fixture -> the property's figures, where it measures some (quantization_quality's KL,
    top-1 agreement, RMS Δp, weights on disk; lora_adapter's)."""
    deviation: DeviationInfo | None = None


@dataclass
class ConformanceDetail:
    """conformance: every property's outcome."""

    properties: dict[str, PropertyResult] = field(default_factory=dict)


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


@dataclass
class DecodeBound:
    input_tokens: int
    decode_tokens_per_s: float
    bound_tokens_per_s: float
    fraction: float


@dataclass
class PrefillBound:
    input_tokens: int
    prefill_tokens_per_s: float
    fraction: float


@dataclass
class Roofline:
    """Decode at batch 1 against the bandwidth limit, prefill at batch 1 against the matmul peak,
    both measured on the device the engine computes on (incell/bench.roofline)."""

    weight_bytes_per_token: int
    """Bytes of weights one decode step reads, in the engine's own format as loaded."""
    bandwidth_gb_s: float
    """Read bandwidth of the engine's device measured in the same run: on the CPU DRAM with
    every core, far beyond the caches; on CUDA the GPU's own memory."""
    decode_batch1: list[DecodeBound] = field(default_factory=list)
    compute_tflops: float | None = None
    prefill_batch1: list[PrefillBound] = field(default_factory=list)
    last_level_cache_bytes: int | None = None
    """The CPU's last-level cache: weights that fit in it are read from cache, not DRAM, and the
    bandwidth bound does not apply (the report says "cache-resident" instead of a fraction)."""
    engine_weights_bytes: int | None = None
    """The engine's own weight files as loaded (GGUF, ONNX, ...), where its adapter knows them."""
    device: str = "cpu"
    """Where the limits were measured: the cell's device ("cpu", "cuda")."""
    device_name: str = ""
    """The GPU's name where the device is one ("NVIDIA H200")."""
    compute_dtype: str = "float32"
    """The dtype the engine computes in, and so the dtype of `compute_tflops`'s matmul."""


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
    kl: dict[str, Any] | None = None
    """Where the file is a quantization: llama-perplexity --kl-divergence against the float32
    file (kl_mean and its ±, top1_agreement and its ±, the commands)."""


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
class BenchDetail:
    """bench: every metric with its samples, memory, threads and the roofline."""

    fixture: str
    metrics: list[MetricRecord] = field(default_factory=list)
    profile: str = "quick"
    roofline: Roofline | None = None
    peak_rss_mib: float | None = None
    peak_gpu_mib: float | None = None
    threads: dict[str, Any] = field(default_factory=dict)
    rounds: int | None = None
    warmup: int | None = None
    pytest_benchmark: dict[str, Any] = field(default_factory=dict)
    referee: Referee | None = None
    """The engine's own benchmark tool at the same shape, where it has one built (llama-bench)."""
    weights: WeightsFacts | None = None
    prefix_cache: dict[str, str] = field(default_factory=dict)
    """The engine's prefix cache (engines.base.Engine.prefix_cache): {"state": "none" | "switch"
    | "no switch", "switch": how it is turned off}. The figures are timed with it off where it
    has a switch; the detector's `ttft_*_s` are the engine as shipped, `ttft_*_off_s` with it off."""

    def find(self, name: str, **params) -> MetricRecord | None:
        """The metric `name` at the shape `params` (a subset of its params), if measured."""
        return next((m for m in self.metrics if m.name == name
                     and all(m.params.get(k) == v for k, v in params.items())), None)


@dataclass
class LoadSpec:
    """How one load run loaded the server (bench/load.Load's fields)."""

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
    prefix_cache: dict[str, str] = field(default_factory=dict)
    """As BenchDetail's: the server's prefix cache, off where it has a switch."""
    eos_off: bool = True
    """Every request asked the server to ignore EOS (False: an endpoint that takes no such field;
    a stream may end at EOS, short of output_tokens)."""


@dataclass
class BisectProbe:
    """One release of the package, climbed with it pinned."""

    version: str
    works: bool
    rung: str | None = None
    """The first rung that failed (None where every rung passed)."""
    signature: str | None = None


@dataclass
class Boundary:
    """Where a bisection found the change, either way round."""

    direction: Literal["regression", "fix", "none"]
    """regression: the starting release works and a later one fails; fix: the start fails and a
    later one works; none: the start and the newest agree, no boundary between them."""
    start_works: bool
    before: str | None
    """The newest release that behaves like the start (none: the newest release)."""
    after: str | None = None
    """The first release that does not (None where there is no boundary)."""
    note: str = ""


@dataclass
class BisectRecord:
    """`nox -s bisect -- PACKAGE CELL`: results/bisect/<cell>--<package>.json."""

    cell: str
    package: str
    good_start: str
    """The release the search started from (the cell's own, or --good)."""
    releases_considered: int
    max_probes: int
    boundary: Boundary
    failing_rung: str | None
    signature: str | None
    probes: list[BisectProbe]
    machine: dict[str, Any]
    exclude_newer: str | None = None
    schema: int = 2


@dataclass
class EndpointDetail:
    """endpoint: what a server someone else runs said of itself (`nox -s endpoint`)."""

    url: str
    """Without credentials, query or fragment."""
    model: str
    kind: str
    models: list[dict[str, Any]] | None = None
    """Its /models answer's `data` (None: it has no /models route)."""
    models_status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """The headers that say what it is: Server, and any with "version" in the name."""
    fields: list[str] = field(default_factory=list)
    """Fields beyond OpenAI's it accepted (ignore_eos, top_k), sent where the suites need them."""
    refused: dict[str, str] = field(default_factory=dict)
    """Field -> the server's answer where it refused one."""
    tokenizer: str = ""
    """The tokenizer folder given (empty: none; what counts tokens was not run)."""


DETAILS: dict[str, type] = {"resolve": ResolveDetail, "install": InstallDetail,
                            "import": ImportDetail, "load": LoadDetail,
                            "conformance": ConformanceDetail, "api": ConformanceDetail,
                            "bench": BenchDetail, "serve_bench": ServeBenchDetail,
                            "endpoint": EndpointDetail}
"""The detail record of each rung."""
JSON_NAMES = {"class_": "class"}  # fields whose JSON key is a Python keyword


def read(cls: type, data: Any) -> Any:
    """Build `cls` (a dataclass, or a typing form over them) from its JSON form."""
    origin, args = typing.get_origin(cls), typing.get_args(cls)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        return read(next(a for a in args if a is not type(None)), data)
    if origin is list:
        return [read(args[0], item) for item in data]
    if origin is dict:
        return {key: read(args[1], value) for key, value in data.items()}
    if not dataclasses.is_dataclass(cls) or isinstance(data, cls):
        return data
    hints = typing.get_type_hints(cls)
    names = {JSON_NAMES.get(f.name, f.name): f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        msg = f"{cls.__name__} has no field(s) {unknown}; valid: {sorted(names)}"
        raise TypeError(msg)
    return cls(**{names[key]: read(hints[names[key]], value) for key, value in data.items()})


def to_json(record: Any) -> Any:
    """The JSON form of a record (dataclasses.asdict, with keyword field names restored)."""
    if dataclasses.is_dataclass(record):
        return {JSON_NAMES.get(f.name, f.name): to_json(getattr(record, f.name))
                for f in dataclasses.fields(record)}
    if isinstance(record, list | tuple):
        return [to_json(item) for item in record]
    if isinstance(record, dict):
        return {key: to_json(value) for key, value in record.items()}
    return record
