"""``python -m search`` with no command: the chain of every stage, from latency table to shipped models.

Named *chain* (not *pipeline*) so it is not mistaken for ``app.engine.pipeline``, the per-frame
inference pipeline of the app.
"""
