"""The reports audit themselves: every derived figure recomputed from its inputs, every raw sample
held to the measured limits of the device it ran on, every ✅ to a check that ran, and every
figure a page cites read back from the page and recomputed from its record (pages/audit_pages.py).

    python -m pages.audit                       reports/records/ and reports/cuda/records/: the
                                                committed records every page is rendered from
    python -m pages.audit reports/results.json results/    any results.json, or results folders

Exit 1 with one line per finding (the cell, the check, the figure and what it should be), 0
where there is none. Each check is a small function of one cell's result returning its
findings; CHECKS lists them. A figure within RELATIVE of its recomputation agrees: the records
keep floats as JSON writes them, so anything looser would hide a miscount.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.perplexity import PERPLEXITY_BOUNDS
from bench.roofline import measured_on
from core import layout
from core.bench_details import (
    COMPUTE_TFLOPS,
    DECODE_TOKENS_PER_S,
    E2E_S,
    LITTLE_SLACK,
    MEMORY_BANDWIDTH_GB_S,
    PREFILL_TOKENS_PER_S,
    SERVE_E2E_S,
    SERVE_GOODPUT_PER_S,
    SERVE_ITL_S,
    SERVE_OUTPUT_TOKENS_PER_S,
    SERVE_REQUESTS_PER_S,
    SERVE_TPOT_S,
    SERVE_TTFT_S,
    TPOT_S,
    TTFT_S,
    BenchDetail,
    LoadRun,
    MetricRecord,
    ServeBenchDetail,
)
from core.results import CellResult, load_results
from core.run_limits import PREFIX as LIMITS_PREFIX
from pages.audit_pages import pages_findings

RELATIVE = 1e-6
"""How far a stored derived figure may sit from its recomputation (float printing, no more)."""
DEFAULT = (Path("reports/records"), Path("reports/cuda/records"))
"""The committed records every page is rendered from (results.json files are their merge)."""
PAGES = (Path("reports"), Path("reports/cuda"))
"""The committed pages whose cited figures (pages/sources.py) are read back."""
FAILED_NOTE = re.compile(r"(?<![\d.])0/[1-9]\d*\b")
"""A note that counts none of its cases good ("0/3 prompts the same text")."""
MEASURED_COUNTS = {"text_quality"}
"""Properties whose note counts a figure, not the cases of their check: text_quality passes or
fails on its perplexity bound, and "0/30 answers the reference's" is what a 4-bit format did."""


@dataclass(frozen=True)
class Finding:
    cell: str
    check: str
    what: str

    def __str__(self) -> str:
        return f"{self.cell}: {self.check}: {self.what}"


def close(a: float, b: float) -> bool:
    return abs(a - b) <= RELATIVE * max(abs(a), abs(b), 1e-30)


def samples_agree(name: str, got: list[float], want: list[float]) -> list[str]:
    """`got` against its recomputation `want`, sample by sample."""
    if len(got) != len(want):
        return [f"{name}: {len(got)} samples where its inputs give {len(want)}"]
    bad = [(g, w) for g, w in zip(got, want) if not close(g, w)]
    return [f"{name}: {bad[0][0]:.6g} where its inputs give {bad[0][1]:.6g} "
            f"({len(bad)} of {len(got)} samples)"] if bad else []


def derived(detail: BenchDetail) -> list[str]:
    """Prefill tok/s = batch × prompt ÷ TTFT, TPOT × decode tok/s = batch, round by round; where
    decode came from two calls, decode tok/s = batch × (N − 1) ÷ (end-to-end − TTFT), and a round
    whose TTFT is longer than its end-to-end says nothing of decode (it was clamped to 1e-9 s
    once, giving 3.1e10 tok/s)."""
    problems = []
    for ttft in (m for m in detail.metrics if m.name == TTFT_S):
        shape = {"batch": ttft.batch, "input_tokens": ttft.input_tokens}
        prefill = detail.find(PREFILL_TOKENS_PER_S, **shape)
        if prefill is not None:  # text prompts: the engine's own count of what it was fed
            fed = prefill.params.get("prompt_tokens_fed") or [ttft.batch * ttft.input_tokens] * len(
                ttft.samples)
            problems += samples_agree(f"prefill tok/s at {shape}", prefill.samples,
                                      [f / t for f, t in zip(fed, ttft.samples)])
        decode, tpot = detail.find(DECODE_TOKENS_PER_S, **shape), detail.find(TPOT_S, **shape)
        if decode is not None and tpot is not None:
            problems += samples_agree(f"TPOT at {shape}", tpot.samples,
                                      [ttft.batch / d for d in decode.samples])
        e2e = detail.find(E2E_S, **shape)
        if decode is not None and e2e is not None:
            problems += two_calls(decode, ttft, e2e, shape)
    return problems


def two_calls(decode: MetricRecord, ttft: MetricRecord, e2e: MetricRecord, shape) -> list[str]:
    pairs = list(zip(ttft.samples, e2e.samples))
    two = decode.params.get("timed", "two calls").startswith("two calls")
    if any(e <= t for t, e in pairs) and not two:
        return [f"decode tok/s at {shape}: a round's TTFT is longer than its end-to-end, "
                "and its decode sample was kept"]
    if not two:
        return []
    want = [ttft.batch * (decode.new_tokens - 1) / (e - t) for t, e in pairs if e > t]
    return samples_agree(f"decode tok/s at {shape}", decode.samples, want)


def roofline(detail: BenchDetail) -> list[str]:
    """MBU divides by the best reading of a read (its rows are derived from the samples, so the
    rate and the fraction cannot disagree with the metric)."""
    roof, problems = detail.roofline, []
    if roof is None:
        return []
    probe = measured_on(detail.metrics, MEMORY_BANDWIDTH_GB_S, roof.device)
    if probe is not None and probe.access != "read":
        problems.append(f"MBU divides by a {probe.access or 'copy'}'s bandwidth "
                        f"({roof.bandwidth_gb_s:.1f} GB/s), the column is of a read")
    if probe is not None and not close(roof.bandwidth_gb_s, max(probe.samples)):
        problems.append(f"MBU divides by {roof.bandwidth_gb_s:.6g} GB/s, the probe's best reading "
                        f"is {max(probe.samples):.6g}")
    return problems


def limits(detail: BenchDetail) -> list[str]:
    """No raw sample past the device's best reading: decode against its bandwidth (unless the
    weights fit in its last-level cache), prefill against its matmul peak in the dtype the
    engine computes in, at the least FLOPs a prompt token must cost (the output projection
    left out: an engine may compute logits at the last position only)."""
    roof, problems = detail.roofline, []
    if roof is None:
        return []
    bandwidth = measured_on(detail.metrics, MEMORY_BANDWIDTH_GB_S, roof.device)
    if bandwidth is not None and not roof.cache_resident:
        for m in (m for m in detail.metrics if m.name == DECODE_TOKENS_PER_S):
            bound = m.batch * max(bandwidth.samples) * 1e9 / roof.weight_bytes_per_token
            problems += past(f"decode tok/s at batch {m.batch}, {m.input_tokens} tokens",
                             m.samples, bound, "the bandwidth bound")
    peak = measured_on(detail.metrics, COMPUTE_TFLOPS, roof.device, roof.compute_dtype)
    flops = roof.least_flops_per_token or roof.flops_per_token or (
        None if detail.weights and detail.weights.bytes else roof.weight_bytes_per_token / 2)  # 4 B a weight
    if peak is not None and flops:
        for m in (m for m in detail.metrics if m.name == PREFILL_TOKENS_PER_S):
            problems += past(f"prefill tok/s at batch {m.batch}, {m.input_tokens} tokens",
                             m.samples, max(peak.samples) * 1e12 / flops,
                             f"the {roof.compute_dtype} matmul peak")
    return problems


def past(name: str, samples: list[float], bound: float, limit: str) -> list[str]:
    over = [s for s in samples if s > bound]
    return [f"{name}: a sample of {max(over):.4g} past {limit}, {bound:.4g} "
            f"({len(over)} of {len(samples)})"] if over else []


def bench(result: CellResult) -> list[tuple[str, str]]:
    detail = result.bench
    if detail is None:
        return []
    return [(check.__name__, what) for check in (derived, roofline, limits) for what in check(detail)]


def passes_that_failed(result: CellResult) -> list[tuple[str, str]]:
    """A ✅ whose own note says none of its cases held (wire_parity's "0/3 prompts the same"),
    or whose every case was skipped: a property passes only on a case that ran."""
    found = []
    for suite in ("conformance", "api"):
        for name, prop in result.properties(suite).items():
            found += [("checks_ran", f"{name} passes while its note on {case} says {note!r}")
                      for case, note in prop.notes.items()
                      if prop.status == "pass" and FAILED_NOTE.search(note)
                      and name not in MEASURED_COUNTS]
            if prop.status == "pass" and prop.cases and set(prop.cases.values()) == {"skip"}:
                found.append(("checks_ran", f"{name} passes while every one of its "
                                            f"{len(prop.cases)} case(s) was skipped"))
    return found


def text_quality(result: CellResult) -> list[tuple[str, str]]:
    """text_quality's verdict held to its figures: the perplexity inside its own interval, and
    passed exactly where its ratio to the float32 reference's is within the quantization's bound
    (bench/perplexity.PERPLEXITY_BOUNDS; a reduced dtype unquantized is held to the 8-bit one)."""
    prop = result.properties().get("text_quality")
    if prop is None or prop.status not in ("pass", "fail"):
        return []
    quant, dtype = result.quantization or "none", result.cell.axes.get("dtype", "float32")
    bound = PERPLEXITY_BOUNDS.get("q8_0" if quant == "none" and dtype != "float32" else quant)
    found = []
    for fixture, figures in prop.figures.items():
        text = figures.text
        if text is None or text.perplexity is None or not text.reference_perplexity:
            continue
        ratio = text.perplexity / text.reference_perplexity
        if text.perplexity_low is not None and text.perplexity_high is not None \
                and not text.perplexity_low <= text.perplexity <= text.perplexity_high:
            found.append(f"{fixture}: perplexity {text.perplexity:.4g} outside its interval "
                         f"[{text.perplexity_low:.4g}, {text.perplexity_high:.4g}]")
        if bound is None:
            found.append(f"{fixture}: {quant} has no perplexity bound, yet the property "
                         f"{prop.status}ed")
        elif (prop.status == "pass") != (ratio <= bound):
            found.append(f"{fixture}: {prop.status} where the perplexity is {ratio:.4f}x the "
                         f"reference's and the bound {bound}x ({quant}, {dtype})")
    return [("text_quality", what) for what in found]


def serving(result: CellResult) -> list[tuple[str, str]]:
    rung = result.rung("serve_bench")
    detail = rung.detail if rung is not None else None
    if not isinstance(detail, ServeBenchDetail):
        return []
    tokens = detail.output_tokens if detail.eos_off else None
    return [("serving", f"{run.load.concurrency or run.load.rate} ({run.load.mode}): {what}")
            for run in detail.runs for what in load_run(run, tokens)]


TOKENS_SLACK = 0.02
"""How far req/s × output tokens a request may sit from out tok/s (the issue's 2%)."""


def steady_figures(run: LoadRun, tokens: int | None) -> list[str]:
    """A point its record calls steady: Little's law for a closed loop (req/s × mean end-to-end
    ≤ users × LITTLE_SLACK), and, EOS off, req/s × the tokens a request asks = out tok/s."""
    problems = []
    rate, e2e = run.samples(SERVE_REQUESTS_PER_S), run.samples(SERVE_E2E_S)
    out = run.samples(SERVE_OUTPUT_TOKENS_PER_S)
    if run.load.mode == "closed" and rate and e2e:
        in_flight = max(rate) * sum(e2e) / len(e2e)
        if in_flight > run.load.concurrency * LITTLE_SLACK:
            problems.append(f"req/s × mean end-to-end = {in_flight:.2f} > "
                            f"{run.load.concurrency} users, at a point recorded steady")
    if tokens and rate and out and abs(max(rate) * tokens - max(out)) > TOKENS_SLACK * max(out):
        problems.append(f"req/s × {tokens} tokens = {max(rate) * tokens:.1f} where out tok/s "
                        f"is {max(out):.1f}")
    return problems


def load_run(run: LoadRun, tokens: int | None = None) -> list[str]:
    """Goodput ≤ req/s, each request's TTFT ≤ its end-to-end, errors ≤ requests; a point recorded
    steady holds Little's law and counts its tokens once (steady_figures)."""
    problems = steady_figures(run, tokens) if run.valid and run.steady else []
    goodput, rate = run.samples(SERVE_GOODPUT_PER_S), run.samples(SERVE_REQUESTS_PER_S)
    goodput, rate = (max(goodput) if goodput else None), (max(rate) if rate else None)
    if goodput is not None and rate is not None and goodput > rate + 1e-12:
        problems.append(f"goodput {goodput:.3g}/s exceeds the {rate:.3g} req/s it is part of")
    ttft, e2e = run.samples(SERVE_TTFT_S), run.samples(SERVE_E2E_S)
    if any(t > e for t, e in zip(ttft, e2e)):
        problems.append("a request's TTFT is longer than its end-to-end")
    if not 0 <= run.errors <= run.requests:
        problems.append(f"{run.errors} errors of {run.requests} requests")
    return problems + itl_per_token(run)


ITL_SLACK = 0.02
"""How far the mean ITL may sit from the mean TPOT where ITL is per token."""


def itl_per_token(run: LoadRun) -> list[str]:
    """ITL is per token where it is shown (each event one token, by the server's ids): a
    request's gaps then sum to its end-to-end less its TTFT, so the mean ITL is the mean TPOT
    (every request the same length, EOS off). Gaps between deliveries of several tokens each
    would sit below it: those are "per event" (serve_event_gap_s), never ITL."""
    itl, tpot = run.samples(SERVE_ITL_S), run.samples(SERVE_TPOT_S)
    if not itl or not tpot:
        return []
    ratio = (sum(itl) / len(itl)) / (sum(tpot) / len(tpot))
    return [] if abs(ratio - 1) <= ITL_SLACK else [
        f"mean ITL is {ratio:.3f}x the mean TPOT: gaps that are not one token each"]


CHECKS: tuple[Callable[[CellResult], list[tuple[str, str]]], ...] = (
    bench, passes_that_failed, text_quality, serving)


def audit(results: list[CellResult]) -> list[Finding]:
    return [Finding(r.cell.id, check, what) for r in results for check_of in CHECKS
            for check, what in check_of(r)]


def is_cell_record(rel: Path) -> bool:
    """Whether a JSON file under a records folder is a cell's result."""
    if layout.RUN in rel.parts or rel.name.startswith(LIMITS_PREFIX):  # a run's, not a cell's
        return False
    return rel.parts[0] != layout.STACKS or len(rel.parts) > 2


def read(paths: list[Path]) -> list[CellResult]:
    """Cells from results.json files (their "cells") and from results folders (every JSON file
    under them); a file that cannot be read stops the audit: it cannot vouch for it."""
    results = []
    for path in paths:
        if path.is_dir():
            # a run's own records (its timeline, the release watch) are not cells, nor is a
            # stack's own record (stacks/<id>.json); its members' (stacks/<id>/...) are
            found, problems = load_results(sorted(
                p for p in path.rglob("*.json") if is_cell_record(p.relative_to(path))))
            if problems:
                raise SystemExit(f"python -m pages.audit: unreadable: {'; '.join(problems)}")
            results += found
        else:
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            results += [CellResult.from_dict(cell) for cell in cells]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pages.audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path,
                        help="results.json files or results folders (default: "
                             + ", ".join(map(str, DEFAULT)) + ")")
    parser.add_argument("--pages", action="append", type=Path, default=None,
                        help="a folder of rendered pages whose cited figures to check (repeat; "
                             "default: " + ", ".join(map(str, PAGES)) + ")")
    args = parser.parse_args(argv)
    paths = args.paths or [p for p in DEFAULT if p.exists()]
    for path in paths:
        if not path.exists():
            parser.error(f"{str(path)!r} does not exist; give a results.json or a results folder")
    results = read(paths)
    findings = audit(results)
    findings += [Finding(page, check, what)
                 for page, check, what in pages_findings(args.pages or list(PAGES))]
    for finding in findings:
        print(finding)
    print(f"audit: {len(results)} cells, {len(findings)} findings", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
