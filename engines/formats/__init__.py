"""The files engines load, written from a fixture, and what a decode step reads of them: the GGUF
writer (gguf_files.py), the AWQ and GPTQ 4-bit checkpoints (w4_checkpoints.py), and the bytes
one batch-1 step reads of an engine's own weights (weights_read.py)."""
