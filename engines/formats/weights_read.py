"""What one batch-1 decode step reads of the weights an engine loaded, from the files themselves:
every tensor once, except an input embedding table that is only gathered (one row a token) and
is not also the output projection. The roofline charges these bytes (incell/throughput/run.py), not the
bytes on disk: an export that unties a tied embedding (ONNX Runtime's writes the table twice,
622 MiB of files where 513 MiB are read on SmolLM2's shape) would otherwise be charged a table
a decode step never reads.
"""

from __future__ import annotations

from pathlib import Path

GATHERS = ("Gather", "GatherBlockQuantized")
"""ONNX operators that read rows of a table by id: an initializer only they consume is an input
embedding table."""


def gguf_read_bytes(path: Path) -> int:
    """A GGUF's tensors, token_embd.weight left out where output.weight is there to be the head
    (a tied file has no output.weight: llama.cpp reads token_embd whole as the head)."""
    import gguf

    sizes = {t.name: int(t.n_bytes) for t in gguf.GGUFReader(str(path)).tensors}
    untied = "output.weight" in sizes
    return sum(size for name, size in sizes.items() if not (untied and name == "token_embd.weight"))


def onnx_read_bytes(graph: Path) -> int | None:
    """An ONNX graph's initializers (in the file or in its external data), those consumed only
    as a gather's table left out; None where the onnx package is not there to read it."""
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(str(graph), load_external_data=False)
    uses: dict[str, set[str]] = {}
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            uses.setdefault(name, set()).add(node.op_type if position == 0 else "other")
    total = 0
    for tensor in model.graph.initializer:
        if uses.get(tensor.name) and uses[tensor.name] <= set(GATHERS):
            continue  # only gathered: one row a token
        total += initializer_bytes(tensor)
    return total


def initializer_bytes(tensor) -> int:
    """Bytes of one initializer: its raw data, or the length its external data entry gives."""
    if tensor.raw_data:
        return len(tensor.raw_data)
    external = {entry.key: entry.value for entry in tensor.external_data}
    if "length" in external:
        return int(external["length"])
    import onnx.numpy_helper

    return int(onnx.numpy_helper.to_array(tensor).nbytes)


def isq_read_bytes(model_dir: Path, bits_per_weight: float) -> int:
    """A safetensors folder quantized in memory as it loads (mistral.rs's ISQ: every linear
    layer, and the head, in blocks of 32 with a scale, Q8_0 8.5 bits a weight, Q4_0 4.5): the
    2-D weights at `bits_per_weight`, the rest (norms) as stored; the input embedding only where
    it is also the head (tied), else left out as gathered."""
    import json
    import struct

    tensors = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        with open(path, "rb") as f:
            header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
        tensors |= {k: v for k, v in header.items() if k != "__metadata__"}
    sizes = {"F32": 4, "F16": 2, "BF16": 2}
    total = 0.0
    for name, info in tensors.items():
        count = 1
        for n in info["shape"]:
            count *= n
        if name == "model.embed_tokens.weight" and "lm_head.weight" in tensors:
            continue  # gathered only: the untied head is charged instead
        total += count * bits_per_weight / 8 if len(info["shape"]) == 2 else \
            count * sizes.get(info["dtype"], 4)
    return round(total)
