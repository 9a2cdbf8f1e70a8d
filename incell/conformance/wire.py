"""wire_parity's judgement (incell/conformance/test_api.py): where a server's greedy answer first
departs from the same engine's in process, whether the departure is allowed, and where a
text-only API cannot say."""

from __future__ import annotations

import numpy as np
import pytest


def held_undecided(undecided: int, prompts: int, note: str, record_property) -> None:
    """Prompts whose texts agree only up to an incomplete character (U+FFFD, past which a text
    API names no token) are said in the note; where every prompt is such, the property is not
    decided: a ✅ must rest on a prompt decided."""
    cut = f"{undecided} the same only up to an incomplete character (U+FFFD)"
    if undecided:
        record_property("note", f"{note}; {cut}")
    if undecided == prompts:
        pytest.skip(f"not decided: {note}; {cut}")


def wire_divergence(engine, twin, wire, local) -> str | None:
    """Why the server's answer breaks parity with the engine's in process, or None. Where they
    first differ, the server's token must be among the engine's top-k (parity_top_k) there;
    for a text-only API, the token whose text continues the server's (texts compared up to the
    first incomplete character)."""
    want, k = list(local.token_ids), engine.parity_top_k
    if engine.ids_from_server:
        got = list(wire.token_ids)
        pos = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
        if pos is None:
            return None if len(got) == len(want) else f"{len(got)} ids against {len(want)} in process"
        fits = lambda token: token == got[pos]  # noqa: E731
    else:  # text only: compared up to the first incomplete character of either side, which a
        # server sends as U+FFFD or drops, so that the tokens behind it are unknowable
        if wire.text == local.text or agree_before_a_cut(wire.text, local.text):
            return None
        text = valid(wire.text)
        pos = next(i for i in range(len(want) + 1)
                   if i == len(want) or not text.startswith(valid(engine._text(want[:i + 1]))))
        if pos == len(want):
            return (f"the server's text {wire.text!r} goes on past the engine's {local.text!r} "
                    "(more tokens than asked)")
        fits = lambda token: text.startswith(valid(engine._text([*want[:pos], token])))  # noqa: E731
    where = f"first divergence at token {pos} ({want[pos]} in process)"
    if not twin.capabilities.logits:
        return where
    logits = twin.next_token_logits_from_ids([list(local.prompt_token_ids) + want[:pos]])[0]
    top = [int(t) for t in np.argsort(-logits, kind="stable")[:k]]
    return None if any(fits(t) for t in top) else f"{where}: the server's is not in its top-{k} {top}"


def agree_before_a_cut(wire: str, local: str) -> bool:
    """The two texts differ, and agree up to the first incomplete character of either."""
    cuts = [i for i in (wire.find("\ufffd"), local.find("\ufffd")) if i >= 0]
    return wire != local and bool(cuts) and wire[:min(cuts)] == local[:min(cuts)]


def valid(text: str) -> str:
    """`text` without U+FFFD: what a text API can say of tokens that are not whole characters."""
    return text.replace("\ufffd", "")
