"""The in-cell benchmark session (pytest-benchmark, one test per shape), run by incell/bench.py."""
