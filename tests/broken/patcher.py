"""A stand-in engine for the stacks' one-process step: importing it monkey-patches torch, which
the transformers engine computes with (as vLLM patches transformers at import). Alone, every
engine is right; together with it, transformers' greedy ids depart from the pinned reference.
incell/together.py must name the patch (in the order transformers, then this) and the failure
that appears only together (in both orders)."""

from __future__ import annotations

import torch

from engines.transformers import TransformersGenerator

PATCHED = "torch.nn.functional.silu"


def _relu_instead(input, inplace=False):
    return torch.relu(input)


torch.nn.functional.silu = _relu_instead


class SiluPatcher(TransformersGenerator):
    """The transformers adapter, unchanged: what is broken is what its import did to torch."""
