"""The RT-DNAS differentiable search (Sec. 2.1-2.2): msnas-hw's first-order loop with the
paper's loss and optimiser (Lu et al., MICCAI 2022, arXiv:2206.04682).

Loss of the architecture step (eq. 2, ``L = L_a * L_t + lambda * exp(L_t - L_ub)`` in the paper):

    L = L_a * (L_t / L_ub) + lambda * exp((L_t - L_ub) / tau)

* ``L_a``: cross-entropy on the architecture patients;
* ``L_t``: expected network latency in ms (``PathProbabilityLatency``, softmax weights);
* the paper does not say how L_t is scaled inside the product; we divide by L_ub so the product is
  unitless and ~L_a at the budget (our choice). The exponent is ``(L_t - L_ub) / tau``
  with tau in ms: the paper's literal ``exp(L_t - L_ub)`` is tau = 1 ms (``paper`` preset); the
  default preset uses tau = 5 ms so that one noisy architecture step cannot overflow the penalty.
  The exponent is clamped at 30 (e^30 ~ 1e13) for the same reason. lambda = 1 by default: at the
  budget the penalty is as large as a typical cross-entropy and grows e-fold every tau ms beyond it.

Weights: SGD, momentum 0.9, lr 0.01 -> 0.001 (cosine over the whole schedule), weight decay 3e-4.
Architecture: Adam (DARTS settings, lr from the preset). Warm-up steps train the weights only.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from search import distributed
from search.train.cine_config import SearchConfig
from search.train import precision
from search.train.bilevel import ArchitectureSearch, frozen, segmentation_ce
from search.methods.rtdnas.config import LATENCY_LOSSES, RtSearchConfig

MAX_EXPONENT = 30.0


def rtdnas_loss(ce: torch.Tensor, latency_ms: torch.Tensor, ub_ms: float, penalty_lambda: float,
                tau_ms: float, form: str = "product") -> torch.Tensor:
    """``L_a * (L_t / L_ub) + lambda * exp((L_t - L_ub) / tau)`` (0-dim tensors in, 0-dim out).

    ``form="penalty"`` drops the product: ``L_a + lambda * exp((L_t - L_ub) / tau)``. The product's gradient is
    that of ``log L_a + log L_t`` (scale-free in L_t), so it trades a relative drop in accuracy loss 1:1 for one
    in latency at *every* latency, also far below the budget; the penalty form charges latency only as it nears
    and passes L_ub and below it chooses by accuracy (issue 16; the paper's loss is the product).
    """
    if ub_ms <= 0 or tau_ms <= 0:
        raise ValueError(f"L_ub and tau must be positive, got {ub_ms}, {tau_ms}")
    if form not in LATENCY_LOSSES:
        raise ValueError(f"latency loss must be one of {LATENCY_LOSSES}, got {form!r}")
    exponent = torch.clamp((latency_ms - ub_ms) / tau_ms, max=MAX_EXPONENT)
    accuracy = ce * (latency_ms / ub_ms) if form == "product" else ce
    return accuracy + penalty_lambda * torch.exp(exponent)


def _as_msnas(cfg: RtSearchConfig) -> SearchConfig:
    return SearchConfig(warmup_steps=cfg.warmup_steps, search_steps=cfg.search_steps, batch_size=cfg.batch_size,
                        weight_lr=cfg.weight_lr, weight_decay=cfg.weight_decay, arch_lr=cfg.arch_lr,
                        arch_betas=cfg.arch_betas, arch_weight_decay=cfg.arch_weight_decay, latency_lambda=1.0,
                        proxy_clip=cfg.proxy_clip, sampler=cfg.sampler, gdas_tau=cfg.gdas_tau,
                        free_op_dropout=cfg.free_op_dropout, skip_edge_dropout=cfg.skip_edge_dropout)


class RtdnasSearch(ArchitectureSearch):
    """One search round at a given L_ub (resumable through msnas-hw's checkpointing).

    Args:
        supernet: ``input_op_pair`` multi-scale supernet.
        latency: ``() -> L_t`` (ms, differentiable in the arch logits).
        weight_loader, arch_loader: Batches ``(clips (N, 1, T, H, W), labels (N, T, H, W))``.
        cfg: The search settings.
        ub_ms: This round's L_ub.
        generator: The GDAS draws (``cfg.sampler == "gdas"``; L_t itself uses no noise here); checkpointed.
        checkpoint: Resumable state file.
    """

    def __init__(self, supernet: nn.Module, latency, weight_loader: DataLoader, arch_loader: DataLoader,
                 cfg: RtSearchConfig, *, ub_ms: float, generator: torch.Generator, checkpoint: Path | None = None,
                 checkpoint_every: int = 20):
        super().__init__(supernet, None, weight_loader, arch_loader, _as_msnas(cfg), generator=generator,
                         checkpoint=checkpoint, checkpoint_every=checkpoint_every)
        self.rt = cfg
        self.ub_ms = float(ub_ms)
        self.l_t = latency
        self.weight_opt = torch.optim.SGD(self.weights, lr=cfg.weight_lr,
                                          momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        total = max(1, cfg.warmup_steps + cfg.search_steps)
        floor = cfg.weight_lr_min / cfg.weight_lr
        self.weight_sched = torch.optim.lr_scheduler.LambdaLR(
            self.weight_opt, lambda s: floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total)))

    def _arch_step(self) -> tuple[float, float]:
        clips, labels = next(self.arch_batches)
        self._train_mode()
        self.arch_opt.zero_grad(set_to_none=True)
        with frozen(self.weights):  # first order: no weight gradients (they were computed and discarded)
            with precision.autocast():  # the network; the latency term below stays float32
                ce = segmentation_ce(self.forward(self.supernet, clips), labels)
            lat = self.l_t()
            loss = rtdnas_loss(ce, lat, self.ub_ms, self.rt.penalty_lambda, self.rt.penalty_tau_ms,
                               self.rt.latency_loss)
            loss.backward()
        distributed.average_gradients(self.supernet.arch_parameters())  # under torchrun: same alphas on every rank
        self.arch_opt.step()
        self.weight_opt.zero_grad(set_to_none=True)
        return float(ce.detach()), float(lat.detach())
