"""A float64 numpy forward pass of the Llama architecture (and Qwen2's: q/k/v biases; a tied
output projection read off the embedding), from a dict of weights in Hugging Face
names and layout: the reference for the dequantized-weights check. Given the weights a quantized
engine actually holds (dequantized), it says what those weights compute exactly, so the engine's
distance from it is its kernels' (activation rounding, a float16 cache, or a bug) and the
distance between it and the float32 model is the quantization's.

Pure numpy; slow for real sizes, instant for the fixtures.
"""

from __future__ import annotations

import numpy as np


def _rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight


def _rope(x: np.ndarray, theta: float) -> np.ndarray:
    """Rotary embedding, Hugging Face's rotate-half form, on (heads, positions, head_dim)."""
    half = x.shape[-1] // 2
    inv = theta ** (-np.arange(0, half, dtype=np.float64) / half)
    angles = np.arange(x.shape[1], dtype=np.float64)[:, None] * inv[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    first, second = x[..., :half], x[..., half:]
    return np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


def llama_logits(weights: dict[str, np.ndarray], config: dict, ids: list[int]) -> np.ndarray:
    """Next-token logits (vocab,) after `ids`, causal, no cache."""
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    dim = config.get("head_dim") or config["hidden_size"] // heads
    eps, theta = config["rms_norm_eps"], config["rope_theta"]
    x = w["model.embed_tokens.weight"][ids]
    n = len(ids)
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = _rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q, k, v = (_linear(w, p + f"self_attn.{name}_proj", h).reshape(n, count, dim).transpose(1, 0, 2)
                   for name, count in (("q", heads), ("k", kv_heads), ("v", kv_heads)))
        q, k = _rope(q, theta), _rope(k, theta)
        k, v = (np.repeat(t, heads // kv_heads, axis=0) for t in (k, v))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(dim) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = (scores / scores.sum(-1, keepdims=True)) @ v
        x = x + attn.transpose(1, 0, 2).reshape(n, heads * dim) @ w[p + "self_attn.o_proj.weight"].T
        h = _rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "mlp.down_proj.weight"].T
    last = _rms_norm(x[-1], w["model.norm.weight"], eps)
    return last @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T


def _linear(w: dict[str, np.ndarray], name: str, x: np.ndarray) -> np.ndarray:
    """x @ weight.T, plus the bias where the layer has one."""
    out = x @ w[name + ".weight"].T
    return out + w[name + ".bias"] if name + ".bias" in w else out
