"""Domain errors and the "did you mean" message every lookup uses."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class InfermatrixError(Exception):
    """Base class for errors caused by bad input to infermatrix itself."""


class MatrixError(InfermatrixError, ValueError):
    """compat/matrix.toml (or a selector given on the command line) is invalid."""


def unknown(kind: str, value: object, valid: Iterable[str]) -> str:
    """Return "Unknown <kind> 'x'. Did you mean 'y'? Available: a, b" for any lookup."""
    valid = sorted(valid)
    msg = f"Unknown {kind} {value!r}."
    close = difflib.get_close_matches(str(value), valid, n=1)
    if close:
        msg += f" Did you mean {close[0]!r}?"
    return msg + f" Available: {', '.join(valid) or '(none)'}"
