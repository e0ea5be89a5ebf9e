"""Every method's search spaces, registered in the latency tools' table (``search.latency.spaces``).

The latency CLIs (``python -m search profile`` / ``latency-check``) and the tests call
:func:`register_all`; a new method adds its ``latency_space`` module to ``_METHODS``.
"""

from __future__ import annotations

from search.methods.cine_skeleton import latency_space as skeleton_space
from search.methods.msnas_hw import latency_space as msnas_space
from search.methods.rtdnas import latency_space as rtdnas_space
from search.methods.segqc_hw import latency_space as segqc_space

_METHODS = (segqc_space, msnas_space, rtdnas_space, skeleton_space)

#: Space names, in the order of the latency tools (their default ``--spaces``).
SPACE_NAMES = tuple(m.NAME for m in _METHODS)


def register_all() -> tuple[str, ...]:
    """Register every method's space (idempotent); returns the names registered."""
    for method in _METHODS:
        method.register()
    return SPACE_NAMES
