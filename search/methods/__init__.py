"""The three hardware-aware search methods, one package each, built on ``search.core``.

- ``segqc_hw``: joint segmentation + quality-control search for contrast echo (Zeng et al. 2021, arXiv:2109.06909).
- ``msnas_hw``: 3D multi-scale hardware-aware search for cine MR (Zeng et al., ICCAD 2020, arXiv:2008.07071).
- ``rtdnas``: real-time constrained search with genetic path selection (RT-DNAS, Lu et al., MICCAI 2022,
  arXiv:2206.04682).

Beside them, ``cine_qc`` is not a search: it trains the per-frame QC (predicted Dice) of a shipped
cine segmentation model with the joint seg + QC paper's S2 protocol.
"""
