"""Shared fixtures: a synthetic latency table that answers every key deterministically."""

import zlib

import pytest

from search.latency.keys import OpKey
from search.latency.lut import LatencyTable


class SyntheticTable(LatencyTable):
    """Every key costs a deterministic pseudo-random 0.1 .. 1.1 ms (hash of its canonical form)."""

    def get(self, key: OpKey) -> float:
        return 0.1 + (zlib.crc32(key.canonical().encode()) % 1000) / 1000.0


@pytest.fixture
def synthetic_table() -> LatencyTable:
    return SyntheticTable()


@pytest.fixture(autouse=True)
def single_thread_torch():
    """Tiny tensors: one intra-op thread is faster, and on a shared 2-core machine two OpenMP threads
    spin against other processes (a 0.2 s forward became 6 s under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
