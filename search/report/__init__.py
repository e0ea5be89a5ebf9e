"""``python -m search report``: the papers' tables beside ours, and the plots, from stored run results."""
