"""Benchmark profiles: which shapes a run measures, and how many rounds.

`quick` is what every cell of the matrix runs (its bench rung); `full` is the
grid `nox -s bench` runs: generation at batch 1, 4, 16 x input 32, 128, 512
tokens, embedding at batch 1, 32, 128 x short and max-length inputs; `real` is
what `nox -s realsize` runs on a real shape: batch 1 at 512 tokens, batch 8 at 32.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bench.metrics import BenchInputError
from core.errors import unknown


@dataclass(frozen=True)
class Profile:
    name: str
    batches: tuple[int, ...]
    """Generation batch sizes."""
    input_lengths: tuple[int, ...]
    """Generation prompt lengths, in the engine's own tokens."""
    new_tokens: int
    """Tokens generated per row, EOS off, so every round makes the same number."""
    embed_batches: tuple[int, ...]
    embed_inputs: tuple[str, ...]
    """"short" (a sentence) and/or "max" (longer than the model's max length, truncated)."""
    rounds: int
    warmup: int
    paired: bool = False
    """False: every batch at every input length (a grid); True: batches[i] at input_lengths[i]
    only (the real-shape profile: prefill at 512 tokens, decode at batch 8 on short prompts)."""

    def gen_shapes(self) -> list[tuple[int, int]]:
        """(batch, input length) of every generation shape the profile measures."""
        if self.paired:
            return list(zip(self.batches, self.input_lengths))
        return [(b, n) for b in self.batches for n in self.input_lengths]

    def __post_init__(self) -> None:
        for name in ("batches", "input_lengths", "embed_batches"):
            for value in getattr(self, name):
                positive(name, value)
        positive("new_tokens", self.new_tokens)
        if self.new_tokens < 2:
            raise BenchInputError(f"new_tokens must be >= 2 (decode is measured after the first "
                                  f"token), got {self.new_tokens}")
        if self.rounds < 5:
            raise BenchInputError(f"rounds must be at least 5, got {self.rounds}")
        if self.warmup < 0:
            raise BenchInputError(f"warmup must be >= 0, got {self.warmup}")
        if self.paired and len(self.batches) != len(self.input_lengths):
            raise BenchInputError(f"profile {self.name!r} pairs batches with input lengths: give as "
                                  f"many of each, got {self.batches} and {self.input_lengths}")
        for kind in self.embed_inputs:
            if kind not in EMBED_INPUTS:
                raise BenchInputError(unknown("embedding input", kind, EMBED_INPUTS))


EMBED_INPUTS = ("short", "max")


def positive(what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BenchInputError(f"{what}: every value must be an int > 0, got {value!r}")
    return value


PROFILES = {
    "quick": Profile("quick", batches=(1,), input_lengths=(128,), new_tokens=32,
                     embed_batches=(32,), embed_inputs=("short",), rounds=10, warmup=2),
    "full": Profile("full", batches=(1, 4, 16), input_lengths=(32, 128, 512), new_tokens=32,
                    embed_batches=(1, 32, 128), embed_inputs=("short", "max"), rounds=5, warmup=1),
    # A real shape (fixtures/catalog.REAL_SHAPES): batch 1 at 512 tokens (prefill cache-cold,
    # decode after a long prompt) and batch 8 at 32 (decode with a batch); every round is seconds.
    "real": Profile("real", batches=(1, 8), input_lengths=(512, 32), new_tokens=32,
                    embed_batches=(32,), embed_inputs=("short",), rounds=5, warmup=1, paired=True),
}


def profile(name: str, **overrides) -> Profile:
    """A named profile with any field replaced (validated again)."""
    if name not in PROFILES:
        raise BenchInputError(unknown("bench profile", name, PROFILES))
    return replace(PROFILES[name], **{k: v for k, v in overrides.items() if v is not None})


def int_list(text: str) -> tuple[int, ...]:
    """"1,4,16" -> (1, 4, 16), refusing anything that is not a positive int by value."""
    values = []
    for part in text.split(","):
        try:
            values.append(int(part))
        except ValueError:
            raise BenchInputError(f"{part!r} in {text!r} is not an integer") from None
    return tuple(positive("list", v) for v in values)


def int_list_arg(text: str) -> tuple[int, ...]:
    """int_list for argparse: the same message, as argparse's own error."""
    try:
        return int_list(text)
    except BenchInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


SHAPE_OPTIONS = (
    ("--rounds", {"type": int, "help": "timed rounds, at least 5 (default: the profile's)"}),
    ("--warmup", {"type": int, "help": "untimed rounds first (default: the profile's)"}),
    ("--new-tokens", {"type": int, "help": "tokens per row, EOS off (default: the profile's)"}),
    ("--batches", {"type": int_list_arg, "help": "generation batch sizes, e.g. 1,4,16"}),
    ("--input-lengths", {"type": int_list_arg, "help": "prompt lengths in tokens, e.g. 32,128,512"}),
    ("--embed-batches", {"type": int_list_arg, "help": "embedding batch sizes, e.g. 1,32,128"}),
)
"""Options that change a profile's shapes or rounds: incell/throughput/run.py, its pytest session and
`nox -s bench` all take them, declared here once."""


def _dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def add_shape_options(add) -> None:
    """Declare SHAPE_OPTIONS with `add` (argparse's add_argument or pytest's addoption)."""
    for flag, kwargs in SHAPE_OPTIONS:
        add(flag, **kwargs)


def shape_overrides(values: dict) -> dict:
    """{field: value} of the shape options given (None where not), for profile()."""
    return {_dest(flag): values.get(_dest(flag)) for flag, _ in SHAPE_OPTIONS}


def shape_argv(values: dict) -> list[str]:
    """The shape options given, as command-line arguments again."""
    argv = []
    for flag, _ in SHAPE_OPTIONS:
        value = values.get(_dest(flag))
        if value is not None:
            argv += [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return argv


@dataclass(frozen=True)
class BenchArgs:
    """incell/throughput/run.py's own options, as the cell's Ask carries them (core/ask.Ask.bench_args)."""

    name: str
    """The profile's name (quick, full, real)."""
    profile: Profile
    """That profile with the shape options applied."""
    fixture: str | None = None
    """Another fixture than the cell's first (a real shape: nox -s realsize)."""


class _Refusing(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would exit; the ask's reader wants the message
        raise BenchInputError(f"bench_args: {message}")


def parse_bench_args(argv: Sequence[str]) -> BenchArgs:
    """--profile NAME, --fixture NAME and the shape options, checked (BenchInputError names the
    bad value and the valid ones)."""
    parser = _Refusing(prog="bench_args", add_help=False)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--fixture")
    add_shape_options(parser.add_argument)
    args = parser.parse_args(list(argv))
    return BenchArgs(args.profile, profile(args.profile, **shape_overrides(vars(args))), args.fixture)
