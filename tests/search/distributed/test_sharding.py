"""Sharding and the single-process behaviour of ``search.distributed`` (no process group needed)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from search import distributed
from search.distributed import sampling


@pytest.mark.parametrize("n,world", [(7, 2), (8, 2), (10, 3), (3, 4)])
def test_shards_are_complete_equal_length_and_disjoint_up_to_padding(n, world):
    ds = TensorDataset(torch.arange(n))
    shards = [list(distributed.ShardSampler(ds, num_replicas=world, rank=r, shuffle=True, seed=11))
              for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # every rank makes the same number of steps
    assert set().union(*shards) == set(range(n))
    padding = len(shards[0]) * world - n
    assert sum(len(s) for s in shards) - len(set().union(*shards)) == padding


def test_sampler_reshuffles_every_pass_like_distributed_sampler_epochs():
    ds = TensorDataset(torch.arange(20))
    mine = distributed.ShardSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=5)
    reference = DistributedSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=5)
    for epoch in range(3):
        reference.set_epoch(epoch)
        assert list(mine) == list(reference)
    assert list(distributed.ShardSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=5)) == \
        list(distributed.ShardSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=5))  # seeded


def test_split_batch_keeps_two_per_rank_for_batchnorm(monkeypatch):
    monkeypatch.setattr(sampling, "world_size", lambda: 4)
    assert [distributed.split_batch(b) for b in (1, 2, 5, 8, 16)] == [1, 2, 2, 2, 4]
    monkeypatch.setattr(sampling, "world_size", lambda: 1)
    assert [distributed.split_batch(b) for b in (1, 2, 5)] == [1, 2, 5]


def test_without_torchrun_nothing_changes(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.init_from_env()
    assert not distributed.is_distributed() and distributed.is_main() and distributed.world_size() == 1
    loader = DataLoader(TensorDataset(torch.arange(6)), batch_size=2, shuffle=True)
    assert distributed.shard_loader(loader) is loader
    net = nn.Linear(2, 1)
    assert distributed.wrap(net) is net
    net.weight.grad = torch.ones_like(net.weight)
    distributed.average_gradients(net.parameters())
    assert torch.equal(net.weight.grad, torch.ones_like(net.weight)) and net.bias.grad is None
    assert distributed.share_from_main({"a": 1}) == {"a": 1}
    assert distributed.main_only(lambda x: x + 1, 1) == 2
    with distributed.main_first():
        pass
    distributed.finish_stage("nothing", net)  # no process group: no check, no error


def test_digests_separate_weights_arch_and_buffers():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)
            self.bn = nn.BatchNorm2d(1)
            self.alpha = nn.Parameter(torch.zeros(3))

        def arch_parameters(self):
            return [self.alpha]

    a, b = Tiny(), Tiny()
    b.load_state_dict(a.state_dict())
    assert distributed.digests(a) == distributed.digests(b)
    with torch.no_grad():
        b.alpha += 1
    da, db = distributed.digests(a), distributed.digests(b)
    assert da["arch"] != db["arch"] and da["weights"] == db["weights"] and da["buffers"] == db["buffers"]
