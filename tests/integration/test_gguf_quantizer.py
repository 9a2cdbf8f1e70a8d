"""llama.cpp's quantizer on real fixtures, in the real llama_cpp-quantq4_k_m venv: a K-quant that
silently falls back is caught, a Qwen2 shape computes what the float64 forward does, the LoRA
fixture in llama.cpp's adapter format matches the merged weights."""

from __future__ import annotations

import json
import subprocess

import pytest

from compat.cell import cell_env
from fixtures.ensure import build_parity_references
from tests.conftest import REPO, installed

FORWARD = """
import json, numpy as np
from safetensors.numpy import load_file
from bench.quality import drift
from bench.reference_forward import llama_logits
from fixtures.catalog import locate
from fixtures.parity import load_reference
folder = locate("small-llama")
weights = load_file(str(folder / "model.safetensors"))
config = json.loads((folder / "config.json").read_text())
rows = load_reference("small-llama")["prompts"]
expected = [step for r in rows for step in r["logprobs"]]
got = [llama_logits(weights, config, [*r["prompt_ids"], *r["ids"][:t]])
       for r in rows for t in range(len(r["logprobs"]))]
print(json.dumps(drift(np.array(expected), np.array(got)).to_json()))
"""

QUANTIZE = """
import json, tempfile
from pathlib import Path
from engines.formats.gguf_files import GGUF_NAME, TYPES_FILE, describe_types, quantize_gguf, write_gguf
from fixtures.catalog import locate
out = {}
for name in ("small-llama", "tiny-llama"):
    work = Path(tempfile.mkdtemp())
    (work / "f32").mkdir(); (work / "q").mkdir()
    write_gguf(locate(name), work / "f32")
    quantize_gguf(work / "f32" / GGUF_NAME, work / "q", "q4_k_m")
    found = json.loads((work / "q" / TYPES_FILE).read_text())
    out[name] = {**found, "line": describe_types(found)}
print(json.dumps(out))
"""

# A real shape's conversion path on a small one: Qwen2 (q/k/v biases, NeoX rotation: no
# permutation), a tied output projection (not written: llama.cpp reads the embedding) and an
# embedding wider than the tokenizer (the token list padded), against the float64 forward.
QWEN2 = """
import json, shutil, tempfile
from pathlib import Path
import numpy as np
from llama_cpp import Llama
from safetensors.numpy import save_file
from bench.reference_forward import llama_logits
from engines.formats.gguf_files import GGUF_NAME, write_gguf
from fixtures.build import make_weights
from fixtures.catalog import locate
small = locate("small-llama")
model = Path(tempfile.mkdtemp())
for name in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(small / name, model / name)
config = {**json.loads((small / "config.json").read_text()), "model_type": "qwen2",
          "architectures": ["Qwen2ForCausalLM"], "vocab_size": 640, "tie_word_embeddings": True}
(model / "config.json").write_text(json.dumps(config))
weights = make_weights(config, 7, embed_std=0.5)
rng = np.random.default_rng(7)
for name in [n for n in weights if n.endswith("proj.bias")]:
    weights[name] = rng.normal(0, 0.5, weights[name].shape).astype(np.float32)
save_file(weights, str(model / "model.safetensors"))
out = Path(tempfile.mkdtemp())
write_gguf(model, out)
llm = Llama(str(out / GGUF_NAME), n_ctx=64, logits_all=True, verbose=False)
ids = [1, 40, 300, 77, 12, 500]
llm.eval(ids)
got = np.array(llm.scores[len(ids) - 1][:llm.n_vocab()], dtype=np.float64)
want = llama_logits(weights, config, ids)
print(json.dumps({"n_vocab": llm.n_vocab(), "max_abs": float(np.abs(got - want).max()),
                  "spread": float(want.std()), "argmax": [int(got.argmax()), int(want.argmax())],
                  "output_written": "output.weight" in {t.name for t in
                      __import__("gguf").GGUFReader(str(out / GGUF_NAME)).tensors}}))
"""

LORA = """
import json
import numpy as np
from bench.quality import drift
from bench.reference_forward import llama_logits
from engines.llama_cpp import LlamaCppGenerator
from fixtures.catalog import locate
from fixtures.lora import adapter, merged_weights
model = locate("tiny-llama")
config = json.loads((model / "config.json").read_text())
engine = LlamaCppGenerator()
engine.load(model, quantization="none")
prefixes = [[1, 5, 9, 33, 70][:n] for n in (2, 3, 4, 5)]
logits = lambda: np.concatenate([engine.next_token_logits_from_ids([p]) for p in prefixes])
base = logits()
engine.set_adapter(adapter(model))
with_adapter = logits()
engine.set_adapter(None)
again = logits()
merged = merged_weights(model, adapter(model))
exact = np.array([llama_logits(merged, config, p) for p in prefixes])
print(json.dumps({"vs_merged": drift(exact, with_adapter).kl_mean,
                  "effect": drift(base, with_adapter).kl_mean,
                  "restored": float(np.abs(again - base).max())}))
"""



@pytest.mark.slow
def test_gguf_conversions_state_their_fallbacks_and_read_real_shapes(tmp_path) -> None:
    """small-llama's sizes are multiples of 256: Q4_K_M is written as asked. tiny-llama's (64)
    are not: llama.cpp writes other types for those matrices, and the file's types say which,
    with the bits per weight. A Qwen2 shape with a tied head and a padded vocabulary loads and
    computes what the float64 forward does."""
    run = installed("llama_cpp-quantq4_k_m", tmp_path, ("small-llama", "tiny-llama"))
    found = json.loads(subprocess.run([str(run.python), "-c", QUANTIZE], capture_output=True,
                                      text=True, env=cell_env(run), cwd=REPO, check=True).stdout)
    assert found["small-llama"]["fallbacks"] == [], found["small-llama"]
    assert set(found["small-llama"]["types"]) <= {"Q4_K", "Q6_K"}, found["small-llama"]
    tiny = found["tiny-llama"]
    assert tiny["fallbacks"] and all(not t.endswith(("(Q4_K)", "(Q6_K)")) for t in tiny["fallbacks"])
    assert "fell back to another type" in tiny["line"] and 4.5 < tiny["bits_per_weight"] < 8.5, tiny
    assert 4.5 < found["small-llama"]["bits_per_weight"] < 5.5, found["small-llama"]
    qwen2 = json.loads(subprocess.run([str(run.python), "-c", QWEN2], capture_output=True,
                                      text=True, env=cell_env(run), cwd=REPO, check=True).stdout)
    assert qwen2["n_vocab"] == 640 and not qwen2["output_written"], qwen2
    assert qwen2["argmax"][0] == qwen2["argmax"][1], qwen2
    assert qwen2["max_abs"] < 0.02 * qwen2["spread"], qwen2
    # the float64 reference forward (the dequantized-weights check's) on the float32 weights
    # gives transformers' own distributions (the parity reference): it is a faithful Llama
    build_parity_references(["small-llama"], limit=600, log=print)
    forward = subprocess.run([str(run.python), "-c", FORWARD], capture_output=True, text=True,
                             env=cell_env(run), cwd=REPO, check=True).stdout
    figures = json.loads(forward)
    assert figures["kl_mean"] < 1e-9 and figures["top1"] == 1.0, figures
    # the LoRA fixture in llama.cpp's adapter format (B permuted for q and k), set at run time:
    # the logits of the weights with it merged, in float64; cleared: the engine's own again
    lora = json.loads(subprocess.run([str(run.python), "-c", LORA], capture_output=True, text=True,
                                     env=cell_env(run), cwd=REPO, check=True).stdout)
    assert lora["vs_merged"] < 1e-3 and lora["effect"] > 1e-2 and lora["restored"] == 0.0, lora
