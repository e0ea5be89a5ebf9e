"""Canonical keys of the latency lookup table (defined in ``search.core.keys``, re-exported here).

One key per (op, dimensionality, C_in, C_out, input spatial shape, stride), e.g.
``sep_conv|2d|cin16|cout16|in64x64|s1``. The core's ops compute their own key, so the class lives in
the core layer; the latency layer re-exports it under its historical name.
"""

from __future__ import annotations

from search.core.keys import STREAM_SUFFIX, LatencyLookup, OpKey

__all__ = ["STREAM_SUFFIX", "LatencyLookup", "OpKey"]
