"""QUANTIZATION.md's opening section: every engine and quantization on the trained model's real
text (property text_quality, bench/perplexity.py): perplexity with llama-perplexity's figure on
the same GGUF and windows beside it, KL and top-1 against the float32 reference, and the greedy
answers to the committed questions that changed."""

from __future__ import annotations

from core.details import TextFigures
from core.results import CellResult
from fixtures.scored_text import CHUNKS, N_CTX, TOP_K, questions
from pages.markdown import CAVEAT, table
from pages.verdicts import status_of

PROPERTY = "text_quality"
HEAD = ["engine", "quantization", "verdict", "perplexity [95%]", "÷ float32", "llama-perplexity",
        "KL mean [95%]", "KL p99", "top-1", "answers kept"]
SHOWN_CHANGES = 3
"""Changed answers shown per cell (the count says how many changed in all)."""


def text_figures(result: CellResult) -> TextFigures | None:
    rung = result.rung("conformance")
    prop = rung.detail.properties.get(PROPERTY) if rung is not None and rung.detail else None
    found = [f.text for f in prop.figures.values() if f.text] if prop is not None else []
    return found[0] if found else None


def tool_text(f: TextFigures) -> str:
    """llama-perplexity's estimate ± its own error, and ours over it; ⚠️ where they differ by
    more than twice its ±."""
    if f.tool_perplexity is None:
        return "–"
    ratio = f.perplexity / f.tool_perplexity if f.perplexity else None
    apart = ratio is not None and abs(f.perplexity - f.tool_perplexity) > 2 * f.tool_perplexity_pm
    return (f"{f.tool_perplexity:.3f} ± {f.tool_perplexity_pm:.2f}"
            + (f" (ours {ratio:.4f}×)" if ratio else "") + (f" {CAVEAT}" if apart else ""))


def label(result: CellResult) -> str:
    """The quantization, with the dtype and the device where they are not the CPU's float32."""
    dtype = dict(result.cell.axes).get("dtype", "")
    extra = [x for x in (dtype, "" if result.cell.device == "cpu" else result.cell.device) if x]
    return f"`{result.quantization}`" + (f" ({', '.join(extra)})" if extra else "")


def row(result: CellResult, f: TextFigures) -> list[str]:
    ppl = (f"{f.perplexity:.3f} [{f.perplexity_low:.2f}, {f.perplexity_high:.2f}]"
           if f.perplexity is not None else f"➖ {f.no_perplexity}")
    ratio = (f"{f.perplexity / f.reference_perplexity:.4f}×"
             if f.perplexity is not None and f.reference_perplexity else "–")
    kl = (f"{f.kl_mean:.2e} [{f.kl_mean_low:.1e}, {f.kl_mean_high:.1e}]" if f.kl_mean is not None
          else "➖ no whole distributions" if f.perplexity is not None else "–")
    return [f"`{result.cell.engine}`", label(result),
            status_of(result, PROPERTY), ppl, ratio, tool_text(f), kl,
            "–" if f.kl_p99 is None else f"{f.kl_p99:.2e}",
            "–" if f.top1 is None else f"{f.top1:.1%}", f"{f.answers_same}/{f.answers}"]


def short(text: str, width: int = 70) -> str:
    one = " ".join(text.split()).replace("|", "\\|")
    return one if len(one) <= width else one[:width - 1] + "…"


def from_the_change(reference: str, engine: str, before: int = 25) -> tuple[str, str]:
    """Both answers from a little before the first character where they part ("…" where cut):
    two long answers that share their first sentence show where they differ."""
    a, b = " ".join(reference.split()), " ".join(engine.split())
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    start = max(0, a.rfind(" ", 0, max(0, same - before)) + 1) if same > before else 0
    mark = "…" if start else ""
    return mark + a[start:], mark + b[start:]


def changes(measured: list[tuple[CellResult, TextFigures]]) -> list[str]:
    lines = []
    for result, f in measured:
        if not f.changed:
            continue
        lines.append(f"- `{result.cell.engine}` `{result.quantization}`: {len(f.changed)} of "
                     f"{f.answers} changed")
        for c in f.changed[:SHOWN_CHANGES]:
            ours, theirs = from_the_change(c["reference"], c["engine"])
            lines.append(f"  - *{short(c['question'], 60)}* float32: “{short(ours)}” → "
                         f"“{short(theirs)}”")
    return lines


def trained_section(results: list[CellResult], source: str) -> list[str]:
    """The section, or nothing where no cell measured text_quality."""
    measured = [(r, f) for r in results if (f := text_figures(r)) is not None]
    if not measured:
        return []
    reference = next((f.reference_perplexity for _, f in measured if f.reference_perplexity), None)
    lines = ["## The trained model on real text", "",
             f"{source}. Perplexity on `fixtures/real_text/perplexity.txt` (Shakespeare's "
             f"*Coriolanus*, public domain) in llama-perplexity's windows: {CHUNKS} consecutive "
             f"windows of {N_CTX} ids, each run alone and scored on its second half "
             f"({CHUNKS * (N_CTX // 2 - 1):,} positions); the interval is a 95% bootstrap over "
             "windows, wide because the windows differ (the float32 reference's "
             + (f"{reference:.3f}" if reference else "figure")
             + "), while *÷ float32* compares the same windows. *llama-perplexity*: llama.cpp's "
             "own tool on the cell's GGUF, the same text and windows (`-c "
             f"{N_CTX} --chunks {CHUNKS}`), ⚠️ where ours is outside twice its ±. KL(float32 || "
             f"engine) over the reference's {TOP_K} most likely ids and the rest as one outcome "
             "(a lower bound of the whole-vocabulary KL; the reference keeps 64 ids a position), "
             "and top-1 agreement, on the same positions. vLLM gives the prompt's log-"
             "probabilities of the text's id and its most likely id only (prompt_logprobs=1): "
             "perplexity and top-1, no KL. Answers: greedy, at most 24 tokens, to the "
             f"{len(questions())} questions of `fixtures/real_text/questions.txt` through the chat "
             "template; *kept* counts those whose text equals the float32 reference's. An engine "
             "without log-probabilities at every position (mistral.rs) is measured on its "
             "answers alone. Property `text_quality`; a perplexity beyond its quantization's "
             "bound over the reference's (`PERPLEXITY_BOUNDS`) fails the cell.", "",
             table([row(r, f) for r, f in measured], HEAD), ""]
    changed = changes(measured)
    if changed:
        lines += ["### Answers that changed", "", f"First {SHOWN_CHANGES} per cell, the float32 "
                  "reference's answer, then the engine's:", "", *changed, ""]
    return lines
