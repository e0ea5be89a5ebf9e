import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests share 2 cores with everyone else: one torch thread, one onnxruntime thread."""
    torch.set_num_threads(1)
    old = os.environ.get("OMP_NUM_THREADS")
    yield
    if old is not None:
        os.environ["OMP_NUM_THREADS"] = old
