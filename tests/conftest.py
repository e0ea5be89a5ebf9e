import os
import sys

import pytest

# GUI tests run offscreen: no display needed, in CI or here.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tiny torch workloads on a 2-core CI box: more than one intra-op thread only adds contention
# (a 0.2 s forward took 6 s with 2 threads while the other core was busy). Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

# Tests never read or write the user's per-machine model benchmarks (python -m app models --benchmark).
if "CARDIAC_RT_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["CARDIAC_RT_CACHE_DIR"] = tempfile.mkdtemp(prefix="cardiac-rt-test-bench-")


@pytest.fixture(autouse=True)
def _training_precision_back_to_fp32():
    """A test that trained in bf16 (``search.train.precision`` is process-wide) leaves fp32 behind. Never imports
    torch itself: app tests run without it."""
    yield
    module = sys.modules.get("search.train.precision")
    if module is not None:
        module.use("fp32")
