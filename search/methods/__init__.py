"""The three hardware-aware search methods, one package each, built on ``search.core``.

- ``segqc_hw``: joint segmentation + quality-control search for contrast echo (seed 000).
- ``msnas_hw``: 3D multi-scale hardware-aware search for cine MR (seed 001).
- ``rtdnas``: real-time constrained search with genetic path selection (seed 002).
"""
