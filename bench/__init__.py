"""Measuring, with no engine of its own: the metric definitions (metrics.py, each named once),
statistics from raw samples (stats.py), the roofline's arithmetic (roofline.py), the serving load
generator and its calibration server (loadgen.py, calibration.py) and the reduction of its
samples (serving.py), quality against a reference (quality.py, perplexity.py), the benchmark
profiles (profiles.py), comparisons of two runs (compare.py) and a plain forward pass over a
fixture's safetensors (reference_forward.py). The runs inside a cell that use them live in
incell/."""
