"""cardiac-rt search: hardware-aware differentiable NAS (segqc-hw, msnas-hw, rtdnas), offline.

May import ``app`` (its torch-free data, readers and metrics); never imports Qt.
"""

__version__ = "0.1.0"
