"""Run by ``torchrun --nproc_per_node 2`` from test_collectives.py: the distributed helpers on gloo.

Each rank writes ``<out>/rank<r>.json`` with what it saw; the test compares the ranks and checks
the values against single-process references computed here on the whole global batch.

Scenarios:
    grads: ``average_gradients`` with a gradient on every rank, on rank 0 only, and on none.
    shards: ``shard_loader`` indices of one epoch (disjoint and complete across ranks).
    step: one DDP weight step + one architecture step of a tiny supernet (with a weight no step
        uses) equals the same steps on one process over the concatenated global batch.
    fit: ``search.train.loop.fit`` interrupted after epoch 1 and resumed equals an uninterrupted
        run; only rank 0 calls the checkpoint writer.
    search: msnas-hw's ``ArchitectureSearch`` (DDP weight steps, averaged arch steps) interrupted
        after step 2 resumes from rank 0's checkpoint on both ranks and finishes in sync.
    restarts: ``fit_with_restarts`` with a floor no net reaches: rank 0 scores each attempt and both
        ranks take the same branch (restart, keep the best attempt), with the same weights after it.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from search import distributed
from search.train import loop


class TinySupernet(nn.Module):
    """``(N, 2, 6, 6) -> (N, 2, 6, 6)``: a two-op mixed edge, a head and a weight no step uses."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        self.ops = nn.ModuleList([nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(2, 3, 1)])
        self.head = nn.Conv2d(3, 2, 1)
        self.spare = nn.Linear(2, 2)  # never used in forward
        self.alpha = nn.Parameter(torch.randn(2, generator=gen) * 1e-3)
        with torch.no_grad():
            for p in self.weight_parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.alpha, dim=0)
        return self.head(sum(wi * op(x) for wi, op in zip(w, self.ops)))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n != "alpha"]


class Pairs(Dataset):
    """``n`` fixed samples ``(x (2, 6, 6), y (2, 6, 6))`` drawn from ``seed``."""

    def __init__(self, n: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 2, 6, 6, generator=gen)
        self.y = torch.randn(n, 2, 6, 6, generator=gen)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i], i


def _loader(ds: Dataset, batch: int, seed: int) -> DataLoader:
    return DataLoader(ds, batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(seed))


def scenario_grads() -> dict:
    r = distributed.rank()
    a, b, c = (nn.Parameter(torch.zeros(3)) for _ in range(3))
    a.grad = torch.full((3,), float(r + 1))
    b.grad = torch.full((3,), 2.0) if r == 0 else None
    distributed.average_gradients([a, b, c])
    return {"a": a.grad.tolist(), "b": b.grad.tolist(), "c_is_none": c.grad is None}


def scenario_shards() -> dict:
    ds = Pairs(11, seed=0)
    loader = distributed.shard_loader(_loader(ds, 4, seed=5))
    first = [int(i) for _, _, idx in loader for i in idx]
    second = [int(i) for _, _, idx in loader for i in idx]
    return {"epoch0": first, "epoch1": second, "per_rank_batch": loader.batch_size, "n": len(ds)}


def _step(net: nn.Module, runner: nn.Module, wx, wy, ax, ay, distributed_run: bool) -> None:
    weight_opt = torch.optim.Adam(net.weight_parameters(), lr=0.05)
    arch_opt = torch.optim.Adam(net.arch_parameters(), lr=0.05)
    weight_opt.zero_grad(set_to_none=True)
    nn.functional.mse_loss(runner(wx), wy).backward()
    weight_opt.step()
    arch_opt.zero_grad(set_to_none=True)
    nn.functional.mse_loss(net(ax), ay).backward()  # the arch step: unwrapped forward
    if distributed_run:
        distributed.average_gradients(net.arch_parameters())
    arch_opt.step()


def scenario_step() -> dict:
    weights, archs = Pairs(8, seed=1), Pairs(8, seed=2)
    net = TinySupernet()
    runner = distributed.wrap(net, exclude=net.arch_parameters())
    wx, wy, widx = next(iter(distributed.shard_loader(_loader(weights, 4, seed=7))))
    ax, ay, aidx = next(iter(distributed.shard_loader(_loader(archs, 4, seed=8))))
    reference = TinySupernet()
    _step(net, runner, wx, wy, ax, ay, distributed_run=True)
    distributed.finish_stage("step", net)
    everyone = [None] * distributed.world_size()
    torch.distributed.all_gather_object(everyone, (widx.tolist(), aidx.tolist()))
    w_all = [i for w, _ in everyone for i in w]
    a_all = [i for _, a in everyone for i in a]
    _step(reference, reference, weights.x[w_all], weights.y[w_all], archs.x[a_all], archs.y[a_all],
          distributed_run=False)
    diff = max(float((p - q).detach().abs().max()) for p, q in zip(net.parameters(), reference.parameters()))
    moved = float((net.alpha - TinySupernet().alpha).detach().abs().max())
    return {"max_diff_vs_one_process": diff, "alpha_moved": moved, "digests": distributed.digests(net),
            "weight_batch": widx.tolist(), "arch_batch": aidx.tolist()}


class Interrupted(Exception):
    pass


@contextlib.contextmanager
def _counting_saves():
    """``loop._save`` wrapped to record the rank of every checkpoint written, restored on leaving; yields the list."""
    saves: list[int] = []
    original = loop._save

    def counting_save(*args, **kwargs):
        saves.append(distributed.rank())
        return original(*args, **kwargs)

    loop._save = counting_save
    try:
        yield saves
    finally:
        loop._save = original


def _tiny_net() -> nn.Module:
    """``(N, 2, H, W) -> (N, 2, H, W)``: conv, BatchNorm, ReLU, 1x1 conv, seeded."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


def scenario_fit(folder: Path) -> dict:
    with _counting_saves() as saves:
        cfg = loop.TrainConfig(epochs=3, batch_size=4, lr=0.02, seed=4)
        ds = Pairs(10, seed=3)

        def loss_fn(model, batch):
            x, y, _ = batch
            return nn.functional.mse_loss(model(x), y)

        straight = _tiny_net()
        loop.fit(straight, loss_fn, ds, cfg, checkpoint=folder / "straight.pt")

        def stop_after_first(epoch, epochs, loss):
            if epoch == 1:
                raise Interrupted

        broken = _tiny_net()
        try:
            loop.fit(broken, loss_fn, ds, cfg, checkpoint=folder / "resumed.pt", progress=stop_after_first)
        except Interrupted:
            pass
        distributed.barrier()
        resumed = _tiny_net()
        losses = loop.fit(resumed, loss_fn, ds, cfg, checkpoint=folder / "resumed.pt")
        same = all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))
        return {"resumed_equals_straight": same, "losses": losses, "save_calls": saves,
                "digests": distributed.digests(resumed)}


class Labelled(Dataset):
    """``(x (2, 6, 6), labels (6, 6) int64)`` for the search's cross-entropy."""

    def __init__(self, n: int, seed: int) -> None:
        self.pairs = Pairs(n, seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        x, y, _ = self.pairs[i]
        return x, (y[0] > 0).long()


def scenario_search(folder: Path) -> dict:
    from search.methods.msnas_hw.config import SearchConfig
    from search.methods.msnas_hw.search import ArchitectureSearch

    cfg = SearchConfig(warmup_steps=1, search_steps=3, batch_size=4, arch_lr=0.05)
    saves: list[int] = []

    def searcher() -> ArchitectureSearch:
        net = TinySupernet()
        s = ArchitectureSearch(net, None, _loader(Labelled(8, 1), 4, 3), _loader(Labelled(8, 2), 4, 4), cfg,
                               generator=torch.Generator().manual_seed(0), checkpoint=folder / "search.pt",
                               checkpoint_every=1)
        original = s.state_dict  # called only when the checkpoint is really written

        def counting_state_dict():
            saves.append(distributed.rank())
            return original()
        s.state_dict = counting_state_dict
        return s

    def stop_at_three(rec):
        if rec.step == 3:
            raise Interrupted

    try:
        searcher().run(on_step=stop_at_three)  # the checkpoint of step 2 is the last one written
    except Interrupted:
        pass
    distributed.barrier()
    resumed = searcher()
    history = resumed.run()
    return {"steps": [r.step for r in history], "phases": [r.phase for r in history],
            "digests": distributed.digests(resumed.supernet), "saves": saves,
            "alpha_moved": float((resumed.supernet.alpha - TinySupernet().alpha).detach().abs().max())}


def scenario_restarts(folder: Path) -> dict:
    from search.train.restarts import RestartPolicy, fit_with_restarts

    def loss_fn(model, batch):
        x, labels = batch
        return nn.functional.cross_entropy(model(x), labels)

    net = _tiny_net()
    with _counting_saves() as saves:
        result = fit_with_restarts(net, loss_fn, Labelled(8, 5),
                                   loop.TrainConfig(epochs=2, batch_size=4, lr=0.02, seed=6),
                                   checkpoint=folder / "seg.pt",
                                   policy=RestartPolicy(floor=0.99, max_restarts=1, max_frames=8), name="tiny")
    distributed.barrier()
    return {"record": result.record(), "digests": distributed.digests(net), "saves": saves,
            "restart_checkpoint": (folder / "seg.restart1.pt").is_file()}


def main(out: str) -> int:
    assert distributed.init_from_env(), "run me under torchrun with more than one process"
    torch.set_num_threads(1)
    folder = Path(out)
    results = {"rank": distributed.rank(), "world": distributed.world_size(), "grads": scenario_grads(),
               "shards": scenario_shards(), "step": scenario_step(), "fit": scenario_fit(folder),
               "search": scenario_search(folder), "restarts": scenario_restarts(folder)}
    (folder / f"rank{distributed.rank()}.json").write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
