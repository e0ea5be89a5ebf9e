"""Torch-free cardiac data: phantom generators, real-format writers, dataset loaders, splits."""
