"""The first-order bilevel search of msnas-hw and rtdnas: warm-up, then alternating updates.

Equations and sections: the msnas-hw paper (Zeng et al., ICCAD 2020, arXiv:2008.07071).

Loss (eq. 6): ``CE(w, alpha, beta, gamma) + lambda * LAT(alpha, beta, gamma)``, LAT the expected
latency in milliseconds of the top-n longest paths (eq. 7-9, Gumbel-softmax samples). The training
patients are split 1:1 by patient into a weight set and an architecture set (Sec. 4.2). The first
``warmup_steps`` update only the weights on the weight set; afterwards each iteration makes one
weight step on the weight set and one architecture step on the architecture set (first order:
the architecture gradient is taken at the current weights, no unrolled step). The latency term
does not depend on the weights, so weight steps use the cross-entropy alone.

The loop is resumable: a checkpoint (supernet, both optimisers, step, history, generator states,
architecture trace) is written every ``checkpoint_every`` steps and at the end, atomically.

Every architecture step is followed by ``trace.after_arch_step()``: an
:class:`~search.core.convergence.ArchTrace` of the entropy of every architecture group (about 200
records over the search), from which the caller draws the convergence verdict (issue 16).

rtdnas subclasses :class:`ArchitectureSearch` to change the architecture loss (eq. 2) and the weight
optimiser; both methods import it from here.

``SearchConfig.sampler = "gdas"`` (issue 16) makes every forward pass of the search, warm-up included,
single-path in the cells: each cell node runs one (input, op) pair drawn by hard straight-through
Gumbel-softmax (``ArchWeighting.gdas``, noise from the search's checkpointed generator), with the
temperature annealed over the architecture steps (``TauSchedule``); the layer x scale edges stay a softmax
mixture. The DARTS sampler (the default) is the papers' mixture of every candidate.
``SearchConfig.free_op_dropout`` adds P-DARTS' op-level dropout on the weight-free candidates' outputs, and
``skip_edge_dropout`` the same on the grid's skip edges.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader

from search import distributed
from search.core.convergence import ArchTrace
from search.core.mixed import SOFTMAX, ArchWeighting, TauSchedule, set_free_op_dropout
from search.train.cine_config import SearchConfig
from search.train import checkpoints, precision
from search.train.datasets import IGNORE_INDEX

log = logging.getLogger(__name__)

#: ``(generator) -> expected latency in ms`` (a 0-dim tensor differentiable in the arch parameters).
LatencyTerm = Callable[[torch.Generator], torch.Tensor]

#: About how many entropy records the architecture trace keeps over a search.
TRACE_RECORDS = 200


@dataclass(frozen=True)
class StepRecord:
    """One logged step of the search.

    Attributes:
        step: 1-based step index (an alternating iteration counts as one step).
        phase: ``"warmup"`` or ``"search"``.
        weight_ce: Cross-entropy of the weight step (weight set).
        arch_ce: Cross-entropy of the architecture step (architecture set); NaN during warm-up.
        latency_ms: Expected latency (Gumbel sample) of the architecture step; NaN when not computed.
    """

    step: int
    phase: str
    weight_ce: float
    arch_ce: float
    latency_ms: float


def _forever(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    while True:
        yield from loader


@contextlib.contextmanager
def frozen(params: Iterable[nn.Parameter]) -> Iterator[None]:
    """Within the block ``params`` take no gradient (restored afterwards, also on errors).

    A first-order architecture step treats the weights as constants: freezing them skips their
    gradients (about a third of the backward pass, which the step would discard anyway) and keeps
    stale gradients out of the next weight step. The architecture gradient is unchanged.
    """
    held = [p for p in params if p.requires_grad]
    for p in held:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in held:
            p.requires_grad_(True)


def segmentation_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over every labelled voxel of every frame.

    Args:
        logits: ``(N, K, T, H, W)`` class logits.
        labels: ``(N, T, H, W)`` int64 labels (``IGNORE_INDEX`` where unlabelled).
    """
    return nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)


class ArchitectureSearch:
    """Runs one search of a supernet exposing ``weight_parameters()`` and ``arch_parameters()``.

    Args:
        supernet: The layer x scale supernet; ``forward(clip (N, 1, T, H, W)) -> logits (N, K, T, H, W)``.
        latency: Expected latency term, or None for a search without it (MS-NAS).
        weight_loader: Batches from the weight patients.
        arch_loader: Batches from the architecture patients.
        cfg: Schedule and optimiser settings.
        generator: Seeds the Gumbel noise.
        checkpoint: Where to keep the resumable state (None: no checkpoints).
        checkpoint_every: Steps between checkpoints.
    """

    def __init__(self, supernet: nn.Module, latency: LatencyTerm | None, weight_loader: DataLoader,
                 arch_loader: DataLoader, cfg: SearchConfig, *, generator: torch.Generator,
                 checkpoint: Path | None = None, checkpoint_every: int = 20):
        self.supernet = supernet
        self.latency = latency
        self.cfg = cfg
        self.generator = generator
        self.checkpoint = checkpoint
        self.checkpoint_every = max(1, checkpoint_every)
        self.weight_batches = _forever(distributed.shard_loader(weight_loader))  # rank shards under torchrun
        self.arch_batches = _forever(distributed.shard_loader(arch_loader))
        # Weight steps run through DDP under torchrun; the alphas are averaged in the arch step.
        self.runner = distributed.wrap(supernet, exclude=supernet.arch_parameters(),
                                       varying_graph=cfg.sampler == "gdas")  # every rank draws the same path
        # Listed once: walking the module tree for them costs ~0.05 s a step on the default supernet.
        self.weights = list(supernet.weight_parameters())
        if cfg.free_op_dropout > 0:  # P-DARTS: every training-mode pass of the search drops weight-free outputs
            set_free_op_dropout(supernet, cfg.free_op_dropout)
        if cfg.skip_edge_dropout > 0:
            if not hasattr(supernet, "skip_edge_dropout"):
                raise ValueError(f"{type(supernet).__name__} has no skip edges to drop (skip_edge_dropout)")
            supernet.skip_edge_dropout = cfg.skip_edge_dropout
        self.weight_opt = torch.optim.Adam(self.weights, lr=cfg.weight_lr,
                                           weight_decay=cfg.weight_decay)
        total = max(1, cfg.warmup_steps + cfg.search_steps)
        self.weight_sched = torch.optim.lr_scheduler.LambdaLR(
            self.weight_opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total)))
        self.arch_opt = torch.optim.Adam(list(supernet.arch_parameters()), lr=cfg.arch_lr,
                                         betas=tuple(cfg.arch_betas), weight_decay=cfg.arch_weight_decay)
        self.step = 0
        self.history: list[StepRecord] = []
        # Built on the freshly initialised supernet: its initial logits are the "argmax at initialisation".
        self.trace = ArchTrace(supernet, every=max(1, cfg.search_steps // TRACE_RECORDS))

    def weighting(self) -> ArchWeighting:
        """How this step's forward pass weighs the candidates: DARTS' softmax, or a GDAS sample at the
        temperature of the current architecture step (the first temperature during the warm-up)."""
        if self.cfg.sampler != "gdas":
            return SOFTMAX
        arch_step = max(0, self.step - 1 - self.cfg.warmup_steps)
        return ArchWeighting.gdas(self.generator, TauSchedule(*self.cfg.gdas_tau).at(arch_step, self.cfg.search_steps))

    def forward(self, module: nn.Module, clips: torch.Tensor) -> torch.Tensor:
        """``module(clips)`` under this step's weighting (a DARTS search calls it plainly, as it always has)."""
        if self.cfg.sampler != "gdas":
            return module(clips)
        return module(clips, self.weighting())

    @property
    def total_steps(self) -> int:
        return self.cfg.warmup_steps + self.cfg.search_steps

    @property
    def done(self) -> bool:
        return self.step >= self.total_steps

    def _train_mode(self) -> None:
        """Training mode (BN batch statistics); the module-tree walk only when something left it."""
        if not self.supernet.training:
            self.supernet.train()

    def _weight_step(self) -> float:
        clips, labels = next(self.weight_batches)
        self._train_mode()
        self.weight_opt.zero_grad(set_to_none=True)
        with precision.autocast():
            loss = segmentation_ce(self.forward(self.runner, clips), labels)
        loss.backward()
        nn.utils.clip_grad_norm_(self.weights, 5.0)
        self.weight_opt.step()
        self.weight_sched.step()
        return float(loss.detach())

    def _arch_step(self) -> tuple[float, float]:
        clips, labels = next(self.arch_batches)
        self._train_mode()
        self.arch_opt.zero_grad(set_to_none=True)
        with frozen(self.weights):  # first order: the weights are constants of the architecture step
            with precision.autocast():  # the network; the latency term below stays float32
                ce = segmentation_ce(self.forward(self.supernet, clips), labels)
            loss = ce
            latency_ms = float("nan")
            if self.latency is not None and self.cfg.latency_lambda > 0:
                lat = self.latency(self.generator)
                loss = ce + self.cfg.latency_lambda * lat
                latency_ms = float(lat.detach())
            loss.backward()
        distributed.average_gradients(self.supernet.arch_parameters())
        self.arch_opt.step()
        return float(ce.detach()), latency_ms

    def run(self, *, on_step: Callable[[StepRecord], None] | None = None) -> list[StepRecord]:
        """Run (or resume) to the end of the schedule; return the history."""
        self.resume()
        while not self.done:
            self.step += 1
            weight_ce = self._weight_step()
            if self.step <= self.cfg.warmup_steps:
                rec = StepRecord(self.step, "warmup", weight_ce, float("nan"), float("nan"))
            else:
                arch_ce, latency_ms = self._arch_step()
                self.trace.after_arch_step()
                rec = StepRecord(self.step, "search", weight_ce, arch_ce, latency_ms)
            self.history.append(rec)
            if on_step is not None:
                on_step(rec)
            if self.step % self.checkpoint_every == 0 or self.done:
                self.save()
        self.trace.finish()
        distributed.finish_stage("search", self.supernet)
        return self.history

    # ----------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "supernet": self.supernet.state_dict(),
            "weight_opt": self.weight_opt.state_dict(),
            "weight_sched": self.weight_sched.state_dict(),
            "arch_opt": self.arch_opt.state_dict(),
            "history": [r.__dict__ for r in self.history],
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),  # the op-level dropout's masks draw from it
            "arch_trace": self.trace.to_json(),
        }

    def save(self) -> None:
        if self.checkpoint is None or not distributed.is_main():
            return
        checkpoints.save(self.state_dict(), self.checkpoint)

    def resume(self) -> bool:
        """Load the checkpoint if there is one; True when it did.

        The data iterators restart from their seeded order (batches seen before the interruption
        are not skipped); everything that defines the optimisation state is restored exactly.
        """
        if self.checkpoint is None or not self.checkpoint.is_file() or self.step > 0:
            return False
        state = checkpoints.load(self.checkpoint)
        self.supernet.load_state_dict(state["supernet"])
        self.weight_opt.load_state_dict(state["weight_opt"])
        self.weight_sched.load_state_dict(state["weight_sched"])
        self.arch_opt.load_state_dict(state["arch_opt"])
        self.history = [StepRecord(**r) for r in state["history"]]
        self.generator.set_state(state["generator"])
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        if "arch_trace" in state:
            self.trace.load_json(state["arch_trace"])
        else:  # a checkpoint from before the trace: its curve starts here, its initial point stays exact
            self.trace.arch_steps = max(0, self.step - self.cfg.warmup_steps)
        log.info("resumed search from %s at step %d/%d", self.checkpoint, self.step, self.total_steps)
        return True
