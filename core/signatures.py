"""Turn an error into a short, stable signature: the exception type and what it is about.

    ModuleNotFoundError: No module named 'optimum.bettertransformer'
        -> ModuleNotFoundError: optimum.bettertransformer
    TypeError: forward() got an unexpected keyword argument 'encoder_attention_mask'
        -> TypeError: unexpected keyword argument 'encoder_attention_mask'

Memory addresses and paths are dropped so the same failure gives the same
signature on every machine; cells sharing one share a report footnote.
"""

from __future__ import annotations

import re

# (exception type or None for any, pattern on the message, template for what it is about)
RULES: tuple[tuple[str | None, str, str], ...] = (
    (None, r"No module named '([\w.]+)'", r"\1"),
    (None, r"there is no version of ([^\s,]+)", r"no version of \1"),
    (None, r"cannot import name '([\w.]+)'", r"cannot import name '\1'"),
    (None, r"unexpected keyword argument '(\w+)'", r"unexpected keyword argument '\1'"),
    (None, r"missing \d+ required positional argument[s]?: '(\w+)'", r"missing argument '\1'"),
    (None, r"has no attribute '(\w+)'", r"no attribute '\1'"),
    (None, r"(numpy\.dtype size changed.*?binary incompatibility)", r"\1"),
    (None, r"(A module that was compiled using NumPy 1\.x cannot be run in\s+NumPy 2)", r"\1"),
)
_NOISE = (
    (re.compile(r"0x[0-9a-fA-F]+"), "0x…"),
    (re.compile(r"(/[\w.+-]+)+/"), "…/"),
)  # versions stay: "requires transformers<4.49 but found 4.53.3" is the finding itself
MAX_LEN = 120


def first_line(message: str) -> str:
    """The first non-empty line of a message."""
    for line in message.splitlines():
        if line.strip():
            return line.strip()
    return ""


def signature(error_type: str, message: str) -> str:
    """`Type: subject`, stable across machines and runs."""
    for wanted, pattern, template in RULES:
        if wanted not in (None, error_type):
            continue
        match = re.search(pattern, message)
        if match:
            return f"{error_type}: {match.expand(template)}"
    text = first_line(message)
    for noise, repl in _NOISE:
        text = noise.sub(repl, text)
    sig = f"{error_type}: {text}" if text else error_type
    return sig if len(sig) <= MAX_LEN else sig[: MAX_LEN - 1] + "…"


def uv_error(output: str) -> tuple[str, str]:
    """(cause, explanation) of a uv failure, in the resolver's own words.

    uv prints "× cause" / "╰─▶ Because ..." on a terminal and "error: cause" /
    "cause: Because ..." otherwise; both are read, wrapped lines joined.
    """
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    cause = next((ln for ln in lines if ln.startswith(("×", "error:"))), lines[0] if lines else "")
    cause = cause.lstrip("×").strip().removeprefix("error:").strip().rstrip(":")
    text = " ".join(ln.lstrip("╰─▶│ ").removeprefix("cause:").strip() for ln in lines)
    start = text.find("Because")
    return cause, (text[start:] if start >= 0 else cause)


_UNSAT = ", we can conclude that your requirements are unsatisfiable"
_DEPENDS = re.compile(r"((?:all versions of )?\S+?) (depends?) on (\S+?)\.?(?: And because| and) $")


def resolution_subject(explanation: str) -> str:
    """What a resolver failure is about, in one line, from uv's chain of reasons.

    'all versions of embed depend on numpy>=1.20.0,<2; you require embed and numpy>=2',
    else 'no version of X', else 'unsatisfiable: you require A and B'.
    """
    missing = re.search(r"there is no version of ([^\s,]+)", explanation)
    if missing:
        return f"no version of {missing[1]}"
    end = explanation.rfind(_UNSAT)
    start = explanation.rfind("you require ", 0, end)
    if end < 0 or start < 0:
        return first_line(explanation)[:MAX_LEN]
    required = explanation[start + len("you require "):end]
    depends = _DEPENDS.search(explanation[:start])
    if depends:
        return f"{depends[1]} {depends[2]} on {depends[3]}; you require {required}"
    return f"unsatisfiable: you require {required}"
