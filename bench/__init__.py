"""Benchmarks: timers, statistics from raw samples, the runs inside a cell."""
