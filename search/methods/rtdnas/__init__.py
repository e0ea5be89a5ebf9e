"""rtdnas: real-time constrained differentiable search with genetic path selection.

The paper: RT-DNAS, Lu et al., MICCAI 2022, arXiv:2206.04682 (full reference in ``docs/references.md``).
"""
