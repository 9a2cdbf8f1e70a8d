"""Merge cell results into reports/COMPATIBILITY.md, reports/THROUGHPUT.md and results.json.

    python -m reports.render [RESULTS_DIR ...] [--out reports/]

Any set of result files can be merged: one machine's results/, or the
artifacts of many CI jobs. Unreadable files are named in the report, not fatal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

from tabulate import tabulate

from bench.stats import NOISY_CV
from compat.results import RUNGS, CellResult, load_results, write_atomic

PASS, CAVEAT, FAIL, KNOWN, NOT_RUN = "✅", "⚠️", "❌", "⛔", "➖"
LEGEND = (f"{PASS} pass · {CAVEAT} pass with a caveat · {FAIL} fail (first failing rung, "
          f"footnote holds the error) · {KNOWN} known incompatibility · {NOT_RUN} not run (why)")
KINDS = (("generation", "Generation engines"), ("embedding", "Embedding engines"))
TEXT_LINES = 40  # full error text kept in the JSON; the report shows its tail


def table(rows: list[list[str]], head: list[str]) -> str:
    """A GitHub-flavoured Markdown table; values stay text ("3.10" is not 3.1)."""
    return tabulate(rows, head, tablefmt="github", disable_numparse=True)


class Footnotes:
    """One footnote per distinct signature; cells that share it share the number."""

    def __init__(self) -> None:
        self.notes: dict[str, dict] = {}

    def ref(self, signature: str, cell_id: str, rung: str, text: str) -> str:
        note = self.notes.setdefault(signature, {"n": len(self.notes) + 1, "cells": [],
                                                 "rung": rung, "text": text})
        note["cells"].append(cell_id)
        return f"[^{note['n']}]"

    def render(self) -> list[str]:
        lines = []
        for sig, note in self.notes.items():
            tail = "\n".join(note["text"].strip().splitlines()[-TEXT_LINES:])
            lines += [f"[^{note['n']}]: **{note['rung']}** `{sig}` — cells: "
                      f"{', '.join(note['cells'])}", "",
                      "    <details><summary>full text (tail)</summary>", "",
                      *("    " + ln for ln in ["```", *tail.splitlines(), "```"]),
                      "", "    </details>", ""]
        return lines


def verdict(result: CellResult, notes: Footnotes) -> str:
    """The cell's symbol with its first failing rung or reason."""
    failed = result.first_failure
    if failed is not None:
        sig = failed.error.signature if failed.error else failed.reason or "failed"
        text = failed.error.text if failed.error else ""
        return f"{FAIL} {failed.name} {notes.ref(sig, result.cell['id'], failed.name, text)}"
    not_run = [r for r in result.rungs if r.status in ("not_run", "not_reached")]
    if not_run:
        return f"{NOT_RUN} {not_run[0].name}: {not_run[0].reason}"
    caveats = [r.reason for r in result.rungs if r.reason]
    return f"{CAVEAT} {'; '.join(caveats)}" if caveats else PASS


def rung_mark(result: CellResult, name: str) -> str:
    rung = result.rung(name)
    if rung is None:
        return NOT_RUN
    symbol = {"pass": PASS, "fail": FAIL}.get(rung.status, NOT_RUN)
    return f"{symbol} {rung.duration_s:.1f}s" if rung.status in ("pass", "fail") else symbol


def env_columns(results: list[CellResult]) -> list[str]:
    return sorted({r.cell["env"] for r in results})


def python_of(result: CellResult) -> str:
    """The interpreter the cell ran (from its venv), else the version it asked for."""
    install = result.rung("install")
    ran = install.detail.get("python") if install is not None else None
    return ran or result.cell["python"]


def key_versions(result: CellResult) -> str:
    """Versions of what the cell is about: the engine's packages and every axis."""
    wanted = dict.fromkeys([*result.cell["key_packages"], "torch"])
    return ", ".join(f"{n} {result.versions[n]}" for n in wanted if n in result.versions)


def machine_line(m: dict) -> str:
    """'AMD EPYC, 2 cores, 23.5 GiB, Linux-…, host Python 3.11.7'."""
    parts = [m.get("cpu"), m.get("cores") and f"{m['cores']} cores",
             m.get("memory_gib") and f"{m['memory_gib']} GiB", m.get("os"),
             m.get("host_python") and f"host Python {m['host_python']}"]
    return ", ".join(str(p) for p in parts if p)


def machines(results: list[CellResult]) -> list[str]:
    return sorted({machine_line(r.machine) for r in results})


def header(title: str, results: list[CellResult], problems: list[str]) -> list[str]:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {title}", "", f"Generated {when} from {len(results)} cell result(s).", ""]
    ms = machines(results)
    lines += [f"Machine: {ms[0]}" if len(ms) == 1 else "Machines (results were merged):", ""]
    if len(ms) > 1:
        lines += [f"- {m}" for m in ms] + [""]
    if problems:
        lines += ["Result files that could not be read:", *(f"- {p}" for p in problems), ""]
    return lines


def compatibility(results: list[CellResult], problems: list[str]) -> str:
    notes = Footnotes()
    by_cell = {(r.cell["engine"], r.cell["env"]): r for r in results}
    lines = header("Compatibility matrix", results, problems)
    lines += [f"Legend: {LEGEND}", "",
              "Rows are engines, columns environments (`numpy2` = the newest NumPy 2.x "
              "that resolves). A cell climbs resolve → install → import → load → "
              "conformance → bench; the first failing rung is named.", ""]
    for kind, title in KINDS:
        engines = sorted({r.cell["engine"] for r in results if r.cell["kind"] == kind})
        if not engines:
            continue
        envs = env_columns([r for r in results if r.cell["kind"] == kind])
        rows = [[f"`{e}`", *(verdict(by_cell[(e, env)], notes) if (e, env) in by_cell
                             else f"{NOT_RUN} no result" for env in envs)] for e in engines]
        lines += [f"## {title}", "", table(rows, ["engine", *envs]), ""]

    rows = [[f"`{r.cell['id']}`", *(rung_mark(r, n) for n in RUNGS)] for r in results]
    lines += ["## Rungs per cell", "", table(rows, ["cell", *RUNGS]), ""]

    lines += ["## Conformance properties", ""]
    for kind, title in KINDS:
        cells = [r for r in results if r.cell["kind"] == kind]
        props = sorted({p for r in cells for p in conformance_of(r)})
        if not props:
            continue
        rows = [[f"`{p}`", *(property_mark(conformance_of(r).get(p)) for r in cells)]
                for p in props]
        lines += [f"### {title}", "",
                  table(rows, ["property", *(f"`{r.cell['id']}`" for r in cells)]), ""]

    rows = [[f"`{r.cell['id']}`", python_of(r), key_versions(r) or "(not resolved)"]
            for r in results]
    lines += ["## Versions each cell ran", "",
              "The full lock of every cell is in its JSON (`lock`); "
              "`uv pip sync` on it re-creates the environment.", "",
              table(rows, ["cell", "python", "resolved versions"]), ""]
    if notes.notes:
        lines += ["## Footnotes", "", *notes.render()]
    return "\n".join(lines).rstrip() + "\n"


def conformance_of(result: CellResult) -> dict[str, dict]:
    rung = result.rung("conformance")
    return rung.detail.get("properties", {}) if rung else {}


def property_mark(prop: dict | None) -> str:
    if prop is None:
        return NOT_RUN
    if prop["status"] == "pass":
        return PASS
    if prop["status"] == "skip":
        return f"{NOT_RUN} {prop['message']}"
    return f"{FAIL} {prop['message'][:100]}"


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.2f} ms"
    return f"{value:,.1f} {unit}"


def figure(metric: dict) -> tuple[str, str]:
    """("median unit", "min–max, CV x%[, noisy]") of one metric."""
    s, unit = metric["stats"], metric["unit"]
    spread = f"{fmt(s['min'], unit)} – {fmt(s['max'], unit)}, CV {s['cv']:.1%}, n={s['n']}"
    if s["cv"] > NOISY_CV:
        spread += f" {CAVEAT} noisy"
    return f"**{fmt(s['median'], unit)}**", spread


METRIC_LABELS = {"decode_tokens_per_s": "decode tok/s", "ttft_s": "TTFT",
                 "sentences_per_s": "sentences/s"}


def bench_of(result: CellResult) -> dict | None:
    rung = result.rung("bench")
    return rung.detail if rung is not None and rung.status == "pass" else None


def workload(result: CellResult) -> str:
    detail = bench_of(result)
    params = ", ".join(f"{k} {v}" for k, v in detail["metrics"][0]["params"].items())
    return f"fixture {detail['fixture']} ({params})"


def throughput(results: list[CellResult], problems: list[str]) -> str:
    lines = header("Throughput", results, problems)
    lines += [
        "## Method", "",
        "- Every figure is the **median** of the timed rounds (15 by default, never fewer "
        "than 5) after 2 untimed warm-up rounds; "
        "the spread column gives min – max and the coefficient of variation (CV = stdev / mean). "
        f"CV above {NOISY_CV:.0%} is marked {CAVEAT} noisy. Raw samples are in each cell's JSON.",
        "- **Decode tokens/s** (batch 1, EOS ignored): (N − 1) / (T_N − T_1), where T_N is the "
        "wall time of one generate() of N new tokens and T_1 of one token — the tokens after "
        "the first over the time after the first.",
        "- **TTFT**: wall time of generate() with max_new_tokens = 1 (prefill + first token).",
        "- **Sentences/s**: batch size / wall time of one embed() call on a fixed mix of "
        "sentences (batch 32).",
        "- Token counts come from the engine's own ids. Tiny fixtures measure the engine's "
        "overhead, not a real model's speed.", ""]
    for kind, title in KINDS:
        cells = [r for r in results if r.cell["kind"] == kind and bench_of(r)]
        names = list(dict.fromkeys(m["name"] for r in cells for m in bench_of(r)["metrics"]))
        if not names:
            continue
        rows = []
        for r in cells:
            detail = bench_of(r)
            by_name = {m["name"]: m for m in detail["metrics"]}
            figures = [cell for n in names
                       for cell in (figure(by_name[n]) if n in by_name else ("", ""))]
            rows.append([f"`{r.cell['engine']}`", r.cell["env"], *figures,
                         f"{detail['peak_rss_mib']:,.0f} MiB"])
        head = ["engine", "environment",
                *(h for n in names for h in (METRIC_LABELS.get(n, n), "spread")), "peak RSS"]
        workloads = {workload(r) for r in cells}
        lines += [f"## {title}", "", f"Workload: {'; '.join(sorted(workloads))}.", "",
                  table(rows, head), ""]
    missing = [r.cell["id"] for r in results if (r.rung("bench") or r.rungs[0]).status != "pass"]
    if missing:
        lines += [f"Cells without figures (see COMPATIBILITY.md): {', '.join(missing)}", ""]
    return "\n".join(lines).rstrip() + "\n"


def render(result_dirs: list[Path], out: Path) -> list[CellResult]:
    paths = [p for d in result_dirs for p in sorted(Path(d).glob("*.json"))]
    results, problems = load_results(paths)
    results.sort(key=lambda r: (r.cell["kind"], r.cell["engine"], r.cell["env"]))
    write_atomic(out / "COMPATIBILITY.md", compatibility(results, problems))
    write_atomic(out / "THROUGHPUT.md", throughput(results, problems))
    merged = {"cells": [asdict(r) for r in results], "unreadable": problems}
    write_atomic(out / "results.json", json.dumps(merged, indent=1, sort_keys=True) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.render", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="*", type=Path, default=[Path("results")],
                        help="folders of cell result JSON files (default: results/)")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    for folder in args.results:
        if not folder.is_dir():
            parser.error(f"results folder {str(folder)!r} does not exist")
    results = render(args.results, args.out)
    by_status = defaultdict(int)
    for r in results:
        by_status["fail" if r.first_failure else "ok"] += 1
    print(f"{len(results)} cells ({dict(by_status)}) -> {args.out}/COMPATIBILITY.md, "
          f"{args.out}/THROUGHPUT.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
