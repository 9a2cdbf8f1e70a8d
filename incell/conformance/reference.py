"""The reference side of comparisons, independent of any engine library.

The chat template is rendered with jinja2 the way Hugging Face does
(trim_blocks, lstrip_blocks) and encoded with the `tokenizers` library
straight from tokenizer.json, so an engine's own template handling is checked
against the fixture files, not against itself.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jinja2
from tokenizers import Tokenizer


@cache
def _tokenizer(model_dir: Path) -> Tokenizer:
    return Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))


def _token(value) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def tokenizer_config(model_dir: Path) -> dict:
    return json.loads((Path(model_dir) / "tokenizer_config.json").read_text(encoding="utf-8"))


def bos_token_id(model_dir: Path) -> int | None:
    """The BOS id if the tokenizer adds one, else None."""
    cfg = tokenizer_config(model_dir)
    if not cfg.get("add_bos_token"):
        return None
    return _tokenizer(model_dir).token_to_id(_token(cfg["bos_token"]))


def chat_prompt_ids(model_dir: Path, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of the chat template applied with the generation prompt."""
    cfg = tokenizer_config(model_dir)
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, autoescape=False)
    text = env.from_string(cfg["chat_template"]).render(
        messages=messages,
        add_generation_prompt=True,
        bos_token=_token(cfg.get("bos_token")) or "",
        eos_token=_token(cfg.get("eos_token")) or "",
    )
    return _tokenizer(model_dir).encode(text, add_special_tokens=False).ids


def encode(model_dir: Path, text: str) -> list[int]:
    """Token ids of `text` with the tokenizer's own special tokens (BOS where it adds one)."""
    return _tokenizer(model_dir).encode(text).ids


def encode_as_text(model_dir: Path, text: str) -> list[int]:
    """Token ids of `text` with special-token strings in it kept as text (tokenizers'
    encode_special_tokens), the other mode of encode()."""
    tok = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))  # its own: the mode sticks
    tok.encode_special_tokens = True
    return tok.encode(text).ids


def decode(model_dir: Path, ids) -> str:
    """Text of token ids, special tokens skipped (as engines return generated text)."""
    return _tokenizer(model_dir).decode(list(ids), skip_special_tokens=True)


def straddling_stop(model_dir, ids: tuple[int, ...], text: str) -> str:
    """A 3-character piece of `text` that crosses a token boundary (first one found)."""
    for k in range(1, len(ids)):
        cut = len(decode(model_dir, ids[:k]))
        piece = text[cut - 1:cut + 2]
        if cut >= 1 and len(piece) == 3 and piece.strip() and "\ufffd" not in piece:
            return piece
    return text[:3]
