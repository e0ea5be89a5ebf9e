"""Per-frame QC (predicted Dice) for a shipped cine MR segmentation model.

Not a search: the segmentation network is fixed (a shipped card), and a small regression network
learns to predict the Dice of its newest-frame mask, trained on phantom patients that no split of
the segmentation model used, following the S2 protocol of the joint segmentation + QC paper
(the segmentation model frozen; the QC target is the true Dice of its hard mask). The samples are
made by the app's own pipeline stages (``app.engine.stages``), so the QC model sees exactly the
image, probabilities and uncertainty the scanner will give it.
"""
