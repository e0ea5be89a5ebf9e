"""The cine skeleton search: a hardware-aware search of per-frame 2D U-nets for cine MR (issue 16).

``python -m search cine-skeleton``; see ``search.methods.cine_skeleton.run``.
"""
