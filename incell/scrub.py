"""An endpoint's API key never leaves the process: every text written (the result file, the
suites' output, a server's answer quoted in an error) has it scrubbed first
(engines/endpoint.Endpoint.scrub replaces the key's value)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from core.results import CellResult, save
from engines.endpoint import Endpoint


def save_scrubbed(result: CellResult, out: Path, endpoint: Endpoint) -> Path:
    """The result written with the key scrubbed from every text in it (an error message, a
    server's answer): it never reaches the disk."""
    clean = CellResult.from_dict(json.loads(endpoint.scrub(result.to_json())))
    return save(clean, out)


class Scrubbed(io.TextIOBase):
    """A text stream that writes to `stream` with the endpoint's key scrubbed (the suites'
    output: a failing property prints the server's answers)."""

    def __init__(self, stream, endpoint: Endpoint) -> None:
        self.stream, self.endpoint = stream, endpoint

    def write(self, text: str) -> int:
        self.stream.write(self.endpoint.scrub(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()
