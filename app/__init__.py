"""cardiac-rt app: the scanner-side viewer, real-time pipeline engine and headless replay.

Torch-free by contract (``tests/test_layering.py``): this package is what goes onto a scanner PC.
"""

__version__ = "0.1.0"
