"""What each rung records, as dataclasses: written inside a cell, read by the reports.

The processes that climb a cell (incell/worker.py, the conformance suite's conftest,
incell/throughput/run.py, the resolve and install rungs) build these records; reports/ and
bench/compare.py read their fields. `read()` turns the JSON form back into them and
refuses a key the record does not have, so writer and reader cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from core.bench_details import BenchDetail, ServeBenchDetail

PropertyStatus = Literal["pass", "fail", "skip", "deviation", "known"]


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


@dataclass(frozen=True)
class Capabilities:
    """What an adapter offers (engines.base's adapters declare it; the import rung records it).
    Conformance properties needing a missing one are skipped."""

    streaming: bool = False
    """stream() yields text deltas as tokens are produced."""
    chat: bool = False
    """chat() applies the model's chat template."""
    seeded_sampling: bool = False
    """temperature > 0 with a seed is reproducible."""
    stop_strings: bool = False
    """SamplingParams.stop is honoured."""
    stop_string_kept: bool = True
    """Whether a matched stop string stays at the end of the returned text."""
    logprobs: bool = False
    """SamplingParams.logprobs is honoured: Completion.logprobs per generated token."""
    logits: bool = False
    """next_token_logits() gives the low-level forward pass's last-position logits."""
    prompt_log_probs: bool = False
    """prompt_log_probs() gives log-probabilities at every position of a prompt (perplexity)."""
    whole_distributions: bool = True
    """prompt_log_probs() rows hold every id (False: only the text's id and the engine's most
    likely, the rest -inf, as vLLM's prompt_logprobs gives them)."""
    token_input: bool = False
    """generate_from_ids() takes prompts as token ids (continuation)."""
    min_new_tokens: bool = False
    """SamplingParams.min_new_tokens is honoured."""
    stop_token_ids: bool = False
    """SamplingParams.stop_token_ids ends a row at any of those ids."""
    batching: bool = True
    """generate()/embed() take several inputs in one call."""
    batch_decode: bool = True
    """Several prompts of one length are decoded as one batch (False: one after another; the
    bench's batch > 1 rows then say "sequential" and are not called a batch)."""
    lora: bool = False
    """set_adapter() applies a LoRA adapter (peft's format) at run time, unmerged."""
    whitespace_insensitive: bool = True
    """Embedding: leading/trailing/repeated whitespace does not change the vector."""
    empty_string: Literal["embed", "error"] = "embed"
    """Embedding: "" embeds like any text, or raises InvalidParameterError."""

    @staticmethod
    def upgrade(data: dict[str, Any]) -> dict[str, Any]:
        """A capability an older file records and this version no longer has is left out."""
        known = {f.name for f in dataclasses.fields(Capabilities)}
        return {k: v for k, v in data.items() if k in known}


@dataclass
class ImportDetail:
    """import: the adapter class and everything it declares."""

    class_: str
    import_s: float
    devices: list[str] = field(default_factory=list)
    """Devices the registry declares for the engine (engines/__init__.py)."""
    capabilities: Capabilities | None = None
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
class TextFigures:
    """text_quality on the trained model (bench/perplexity.py): the engine on the scored text's
    windows against the float32 reference, and its greedy answers to the committed questions."""

    quantization: str = "none"
    perplexity: float | None = None
    perplexity_low: float | None = None
    """95% bootstrap interval of the perplexity over windows."""
    perplexity_high: float | None = None
    reference_perplexity: float | None = None
    positions: int | None = None
    windows: int | None = None
    top1: float | None = None
    """Share of scored positions whose most likely id is the reference's."""
    kl_mean: float | None = None
    """Mean KL(reference || engine) over the reference's top ids and the rest as one (nats)."""
    kl_mean_low: float | None = None
    kl_mean_high: float | None = None
    kl_p99: float | None = None
    no_perplexity: str = ""
    """Why there is no perplexity (the engine gives no log-probabilities at every position)."""
    tool_perplexity: float | None = None
    """llama-perplexity on the same GGUF, text and windows (a GGUF engine's cell): its final
    estimate, its ± and its command."""
    tool_perplexity_pm: float | None = None
    tool_command: str = ""
    answers: int = 0
    answers_same: int = 0
    """Greedy answers equal to the reference's, as text."""
    changed: list[dict] = field(default_factory=list)
    """{"question", "reference", "engine"} for each answer that differs."""


@dataclass
class PropertyFigures:
    """A property's figures on one fixture: the record of the property that measures them."""

    quality: QualityFigures | None = None
    lora: LoraFigures | None = None
    text: TextFigures | None = None


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
    known: DeviationInfo | None = None
    """Where it failed and compat/matrix.toml declares that failure understood ([[known]] with
    a property): why, and the upstream reference. Its status is then "known"."""


@dataclass
class ConformanceDetail:
    """conformance: every property's outcome."""

    properties: dict[str, PropertyResult] = field(default_factory=dict)



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
