"""The in-cell benchmark session (pytest-benchmark, one test per shape), run by incell/throughput/run.py."""
