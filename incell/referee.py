"""An engine's own benchmark tool beside our figures: llama.cpp's `llama-bench` on the GGUF file
the llama.cpp cell loaded, with the same thread count and shape (compat/llama_tools.py builds it
from the binding's own llama.cpp tree; the cell's INFERMATRIX_LLAMA_TOOLS says where).

    prefill: llama-bench -p <input tokens> -n 0            (pp: the prompt from an empty context)
    decode:  llama-bench -p 0 -n <new tokens> -d <input>   (tg: after a context of the prompt's length)

Each with -r repetitions; its JSON's tokens/s samples are kept, its commit with them.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
from pathlib import Path

from core.bench_details import Referee, ToolKL
from engines import LLAMA_TOOLS_ENV

REPETITIONS = 5
LIMIT_S = 600


def llama_bench(gguf: Path, input_tokens: int, new_tokens: int, threads: int) -> Referee | None:
    """llama-bench's prefill and decode tok/s at our shape, or None where it was not built."""
    tool = Path(os.environ.get(LLAMA_TOOLS_ENV, "")) / "bin" / "llama-bench"
    if not os.environ.get(LLAMA_TOOLS_ENV) or not tool.is_file():
        return None
    runs = {"prefill": ["-p", str(input_tokens), "-n", "0"],
            "decode": ["-p", "0", "-n", str(new_tokens), "-d", str(input_tokens)]}
    found, commands, commit = {}, [], ""
    for name, shape in runs.items():
        # flash attention off, as llama-cpp-python's Llama defaults it (flash_attn=False); the
        # tool's own default (auto) turns it on, and its prefill then ran 12-39% faster
        cmd = [str(tool), "-m", str(gguf), *shape, "-t", str(threads), "-fa", "off",
               "-r", str(REPETITIONS), "-o", "json"]
        commands.append(" ".join([tool.name, *cmd[1:]]))
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT_S, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"llama-bench failed ({done.returncode}): {done.stderr[-1500:]}")
        [row] = json.loads(done.stdout)
        found[name] = [float(x) for x in row.get("samples_ts") or [row["avg_ts"]]]
        commit = row.get("build_commit", "")
    return Referee(tool="llama-bench", commit=commit, commands=commands, threads=threads,
                   prefill_tokens_per_s=statistics.median(found["prefill"]),
                   decode_tokens_per_s=statistics.median(found["decode"]),
                   prefill_samples=found["prefill"], decode_samples=found["decode"])


KL_CONTEXT = 128
KL_CHUNKS = 8
KL_LINE = re.compile(r"Mean\s+KLD:\s+([-\w.+]+)\s+±\s+([-\w.+]+)")
TOP1_LINE = re.compile(r"Same top p:\s+([-\d.]+)\s+±\s+([-\d.]+)\s*%")


def llama_kl(base: Path, quantized: Path, threads: int, work: Path) -> dict | None:
    """llama-perplexity --kl-divergence: the quantized GGUF against the float32 one's logits
    over the shipped corpus (fixtures/corpus.txt, KL_CHUNKS windows of KL_CONTEXT tokens): its
    mean KL (nats) with its ± and its top-1 agreement; None where the tool was not built."""
    tool = Path(os.environ.get(LLAMA_TOOLS_ENV, "")) / "bin" / "llama-perplexity"
    if not os.environ.get(LLAMA_TOOLS_ENV) or not tool.is_file():
        return None
    from incell.prompts import CORPUS

    text = work / "corpus.txt"
    words = CORPUS.read_text(encoding="utf-8").split()
    text.write_text(" ".join(words * (1 + KL_CONTEXT * KL_CHUNKS * 2 // max(len(words), 1))),
                    encoding="utf-8")
    logits = work / "base.kld"
    common = ["-c", str(KL_CONTEXT), "--chunks", str(KL_CHUNKS), "-t", str(threads)]
    commands = [[str(tool), "-m", str(base), "-f", str(text), *common, "--kl-divergence-base",
                 str(logits)],
                [str(tool), "-m", str(quantized), *common, "--kl-divergence-base", str(logits),
                 "--kl-divergence"]]
    out = ""
    for cmd in commands:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT_S, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"llama-perplexity failed ({done.returncode}): {done.stderr[-1500:]}")
        out = done.stdout + done.stderr
    kl, top1 = KL_LINE.search(out), TOP1_LINE.search(out)
    if kl is None or top1 is None:
        raise RuntimeError(f"llama-perplexity printed no KLD / top-p lines: {out[-1500:]}")
    return ToolKL(kl_mean=float(kl.group(1)), kl_pm=float(kl.group(2)),
                  top1_agreement=float(top1.group(1)) / 100, top1_pm=float(top1.group(2)) / 100,
                  commands=[" ".join([tool.name, *c[1:]]) for c in commands])


PPL_LINE = re.compile(r"Final estimate: PPL = ([\d.]+) \+/- ([\d.]+)")


def llama_perplexity(gguf: Path, text: Path, n_ctx: int, chunks: int, threads: int
                     ) -> tuple[float, float, str] | None:
    """llama-perplexity's final estimate on `text` in `chunks` windows of `n_ctx` (each scored on
    its second half, as bench/perplexity.py scores ours): (PPL, its ±, the command); None where
    the tool was not built."""
    tool = Path(os.environ.get(LLAMA_TOOLS_ENV, "")) / "bin" / "llama-perplexity"
    if not os.environ.get(LLAMA_TOOLS_ENV) or not tool.is_file():
        return None
    cmd = [str(tool), "-m", str(gguf), "-f", str(text), "-c", str(n_ctx), "--chunks", str(chunks),
           "-t", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT_S, check=False)
    found = PPL_LINE.search(done.stdout + done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"llama-perplexity failed ({done.returncode}), no final estimate: "
                           f"{(done.stdout + done.stderr)[-1500:]}")
    return float(found.group(1)), float(found.group(2)), " ".join([tool.name, *cmd[1:]])
