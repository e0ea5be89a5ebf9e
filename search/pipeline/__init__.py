"""``python -m search`` with no command: the whole chain from latency table to shipped models."""
