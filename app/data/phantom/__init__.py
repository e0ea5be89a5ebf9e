"""Deterministic cardiac phantoms with exact labels: contrast / B-mode echo and bSSFP cine MR.

Every case is a function of ``(seed, case_index)`` only: the same pair always renders the same
patient (anatomy, heart rate, acquisition quality) and the same pixels.
"""

# Bump whenever rendering changes: cached datasets built by an older generator are not reused.
GENERATOR_VERSION = "2"
