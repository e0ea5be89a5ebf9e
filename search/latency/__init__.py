"""Latency of the target hardware: lookup tables, the profiler that fills them, estimators, checks."""
