"""The joint first-order search of the segqc-hw paper over the segmentation and QC supernets.

One epoch walks S1 and S2 batches in pairs (a warm-up epoch does steps 1 and 3 only):

1. S1 batch, weight step: seg and QC weights, ``CE + lambda1 * MSE`` (the latency term of eq. 3
   has no weight gradient).
2. After the warm-up only: S2 batch, architecture step: the alphas of both supernets,
   ``CE + lambda1 * MSE + lambda2 * LAT`` with LAT the Gumbel-softmax expected latency of seg + QC.
   S2 holds patients the segmentation weights never train on, so it plays the role of DARTS'
   validation set (first-order approximation: the gradient is taken at the current weights).
3. S2 batch (the same one), weight step of the QC net only, seg frozen (eval mode, no gradient):
   the QC net learns on segmentations of unseen images, as the paper requires.

Which candidates a forward pass runs is ``cfg.sampler`` (issue 16). ``"darts"``: all of them, summed with
``softmax(alpha)`` (the paper). ``"gdas"``: one per edge, drawn afresh in every forward pass of every step
(the three above, warm-up included) by a hard straight-through Gumbel-softmax sample
(``search.core.mixed.ArchWeighting.gdas``), its temperature annealed linearly from ``cfg.gdas_tau[0]``
to ``cfg.gdas_tau[1]`` over the architecture steps. The latency term is the same Gumbel-softmax
expectation under both samplers.

With ``cfg.sandwich`` (the skeleton space; issue 16) step 1 also runs the seg supernet's widest and narrowest
networks on the same S1 batch and adds their segmentation loss (CE + soft Dice) to the step's gradients before
the update (the sandwich rule of slimmable networks / BigNAS), so the shared weights of every width are trained
alike and the architecture step compares wide and narrow candidates on equal terms.

The warm-up lasts ``cfg.warmup_epochs``, or, with ``cfg.warmup_min_dice`` > 0, until the supernet's
mean Dice on its S1 batches (the QC target, averaged over the epoch) reaches that value, at most
``cfg.warmup_max_epochs`` epochs (issue 16: a supernet that still predicts background everywhere gives
the architecture steps a constant QC target and a CE that any path lowers alike, so they follow noise).
Which phase comes next is decided from the history alone, so a resumed search picks up where it stopped.

The warm-up never reads ``lambda2`` (weight steps carry no latency term) nor the architecture phase's length,
optimiser and latency temperature, so the searches of one run that differ only in those (w/o hw, hw, the
sensitivity searches, a longer or faster architecture phase) share it: with ``warmup_checkpoint`` the state at
the end of the warm-up is written there, and a search that has no checkpoint of its own starts from it
instead of warming up again (the same weights, optimiser states and generators: what it would have
computed itself).

A checkpoint after every epoch (weights, alphas, both optimisers' states, the augmentation
generators, the Gumbel generators, the history) makes the stage resumable; batch order depends on
``(seed, epoch)`` only, so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from search import distributed
from search.core.mixed import SOFTMAX, ArchWeighting, TauSchedule
from search.methods.segqc_hw.config import SearchConfig
from search.methods.segqc_hw.data import loader
from search.methods.segqc_hw.framework import framework_loss, run_framework
from search.train import checkpoints, precision
from search.train.bilevel import frozen
from search.train.datasets import EchoFrameDataset
from search.train.losses import segmentation_loss

log = logging.getLogger(__name__)

#: ``expected_latency(tau, generator) -> scalar tensor`` in ms (Gumbel-softmax sample of the alphas);
#: with ``tau=None`` it returns the deterministic softmax expectation (for logging).
LatencyFn = Callable[[float | None, torch.Generator | None], torch.Tensor]


@dataclass
class SearchState:
    """What the search has done so far (saved in the checkpoint).

    Attributes:
        epoch: Epochs finished.
        history: One dict per epoch: phase, mean CE, MSE, the supernet's mean Dice on its S1 batches,
            expected latency (ms), arch entropy.
    """

    epoch: int = 0
    history: list[dict] = field(default_factory=list)

    @property
    def warmup_epochs(self) -> int:
        """Warm-up epochs run so far."""
        return sum(1 for h in self.history if h["phase"] == "warmup")

    def warmup_record(self, cfg: SearchConfig) -> dict:
        """How the warm-up went: epochs run, the Dice rule, the last warm-up epoch's Dice and whether it was met."""
        warm = [h for h in self.history if h["phase"] == "warmup"]
        last = warm[-1].get("dice_s1") if warm else None
        return {"epochs": len(warm), "min_dice": cfg.warmup_min_dice, "max_epochs": cfg.warmup_max_epochs,
                "dice_s1_last": last,
                "reached_dice": bool(last is not None and last >= cfg.warmup_min_dice) if cfg.warmup_min_dice
                else None}


def next_phase(history: list[dict], cfg: SearchConfig) -> str | None:
    """``"warmup"``, ``"alternate"`` or None (the search is done) for the epoch after ``history``."""
    warm = sum(1 for h in history if h["phase"] == "warmup")
    alternate = len(history) - warm
    if alternate == 0:
        if warm < cfg.warmup_epochs:
            return "warmup"
        if cfg.warmup_min_dice and warm < cfg.warmup_max_epochs and history:
            if history[-1].get("dice_s1", math.inf) < cfg.warmup_min_dice:  # a record without it: go on
                return "warmup"
    return "alternate" if alternate < cfg.alternate_epochs else None


def _weights(net: nn.Module) -> list[nn.Parameter]:
    return list(net.weight_parameters())


def _alphas(net: nn.Module) -> list[nn.Parameter]:
    return list(net.arch_parameters())


def arch_entropy(nets: tuple[nn.Module, ...]) -> float:
    """Mean entropy (nats) of the op distributions of every edge: how undecided the search still is."""
    values = []
    for net in nets:
        for a in _alphas(net):
            p = torch.softmax(a.detach().reshape(-1, a.shape[-1]), dim=-1)
            values.append(-(p * torch.log(p + 1e-12)).sum(-1))
    return float(torch.cat(values).mean()) if values else float("nan")


def _pairs(first: Iterator, second: Iterator) -> list[tuple]:
    """Zip two loaders, restarting the shorter one so every batch of the longer is used."""
    a, b = list(first), list(second)
    return [(a[i % len(a)], b[i % len(b)]) for i in range(max(len(a), len(b)))]


def _set_weighting(nets: tuple[nn.Module, ...], weighting: ArchWeighting | None) -> None:
    """Hand ``weighting`` to the supernet wrappers (``networks.SegLogits`` / ``QcOnParts``); None: their default."""
    for net in nets:
        if not hasattr(net, "weighting"):
            raise ValueError(f"the GDAS sampler needs supernet wrappers with a `weighting` attribute; "
                             f"{type(net).__name__} has none")
        net.weighting = weighting


def check_sandwich(seg: nn.Module) -> None:
    """Refuse the sandwich rule where it cannot run: a seg supernet without width choices, or under torchrun
    (the extreme networks' gradients would bypass DDP's averaging)."""
    if not hasattr(getattr(seg, "net", None), "extreme_width_weights"):
        raise ValueError("the sandwich rule needs the skeleton space's seg supernet (searched widths); "
                         f"got {type(getattr(seg, 'net', seg)).__name__}")
    if distributed.is_distributed():
        raise ValueError("the sandwich rule does not run under torchrun; run the search in one process")


def sandwich_backward(seg: nn.Module, images: torch.Tensor, masks: torch.Tensor, dice_weight: float) -> float:
    """Add the widest and the narrowest seg networks' loss gradients (CE + ``dice_weight`` x soft Dice) to the
    weights' ``.grad``; returns the two losses' sum (for the log). ``seg``: a ``SegLogits`` around a
    ``SkeletonSupernet``, drawn with its current ``weighting``."""
    net, weighting = seg.net, seg.weighting or SOFTMAX
    total = 0.0
    for which in ("max", "min"):
        with precision.autocast():
            logits = net(images, weighting, weights=net.extreme_width_weights(which, weighting))
            loss = segmentation_loss(logits, masks, dice_weight=dice_weight)
        loss.backward()
        total += float(loss.detach())
    return total


def run_joint_search(seg: nn.Module, qc: nn.Module, expected_latency: LatencyFn, s1: EchoFrameDataset,
                     s2: EchoFrameDataset, cfg: SearchConfig, *, seed: int, checkpoint: Path | None = None,
                     detach_qc_input: bool = False, device: str | torch.device = "cpu",
                     on_arch_step: Callable[[], None] | None = None,
                     warmup_checkpoint: Path | None = None) -> SearchState:
    """Search both supernets jointly; resumes from ``checkpoint`` when it exists.

    Args:
        seg: Segmentation supernet wrapper, ``(N, 3, H, W) -> (N, 2, H, W)`` logits, with
            ``weight_parameters()`` and ``arch_parameters()``.
        qc: QC supernet wrapper, ``(image, probs, uncertainty) -> (N, 1)``, same two methods.
        expected_latency: Differentiable expected latency of seg + QC in ms (see ``LatencyFn``).
        s1: Augmented frames of S1 (seg + QC weights).
        s2: Augmented frames of S2 (architecture steps and QC weights).
        cfg: Schedule, optimisers, loss weights.
        seed: Seeds batch order and Gumbel noise.
        checkpoint: ``.pt`` written after every epoch.
        detach_qc_input: Keep the QC error from reaching the segmentation net.
        device: Where the supernets live (batches are moved there; ``"cuda"`` on a GPU machine).
        on_arch_step: Called after every architecture step (the convergence trace, issue 16).
        warmup_checkpoint: The state at the end of the warm-up, shared by searches that differ only in
            ``lambda2``: read when ``checkpoint`` does not exist yet, written when the warm-up ends.
    """
    opt_seg = torch.optim.Adam(_weights(seg), lr=cfg.weight_lr, weight_decay=cfg.weight_decay)
    opt_qc = torch.optim.Adam(_weights(qc), lr=cfg.weight_lr, weight_decay=cfg.weight_decay)
    opt_arch = torch.optim.Adam(_alphas(seg) + _alphas(qc), lr=cfg.arch_lr, betas=tuple(cfg.arch_betas),
                                weight_decay=cfg.arch_weight_decay)
    if cfg.sandwich:
        check_sandwich(seg)
    gumbel = torch.Generator().manual_seed(seed * 7919 + 1)
    gdas = cfg.sampler == "gdas"
    paths = torch.Generator().manual_seed(seed * 7919 + 2)  # GDAS path samples (never drawn with "darts")
    tau = TauSchedule(*cfg.gdas_tau)
    state = SearchState()
    def planned() -> int:  # for the log: once the warm-up is over, its actual length (the Dice rule may extend it)
        warm = max(cfg.warmup_epochs, state.warmup_epochs)
        return warm + cfg.alternate_epochs

    start = checkpoint if checkpoint is not None and checkpoint.is_file() else None
    if start is None and warmup_checkpoint is not None and warmup_checkpoint.is_file():
        start = warmup_checkpoint
    if start is not None:
        saved = checkpoints.load(start)  # a shared warm-up too is checked: it is part of this search's training
        seg.load_state_dict(saved["seg"])
        qc.load_state_dict(saved["qc"])
        opt_seg.load_state_dict(saved["opt_seg"])
        opt_qc.load_state_dict(saved["opt_qc"])
        opt_arch.load_state_dict(saved["opt_arch"])
        for group in opt_arch.param_groups:  # this search's settings (a shared warm-up may carry another's)
            group.update(lr=cfg.arch_lr, betas=tuple(cfg.arch_betas), weight_decay=cfg.arch_weight_decay)
        gumbel.set_state(saved["gumbel"])
        if "paths" in saved:
            paths.set_state(saved["paths"])
        s1.rng.bit_generator.state = saved["s1_rng"]
        s2.rng.bit_generator.state = saved["s2_rng"]
        state = SearchState(epoch=int(saved["epoch"]), history=list(saved["history"]))
        log.info("search: resumed %s at epoch %d (%d planned)%s", start, state.epoch, planned(),
                 " (the warm-up shared with the run's other searches)" if start == warmup_checkpoint else "")
    # Under torchrun: weight steps through DDP (alphas left out), alphas averaged in their own step.
    seg_ddp = distributed.wrap(seg, exclude=_alphas(seg), varying_graph=gdas)
    qc_ddp = distributed.wrap(qc, exclude=_alphas(qc), varying_graph=gdas)
    weights = _weights(seg) + _weights(qc)
    while (phase := next_phase(state.history, cfg)) is not None:
        epoch = state.epoch
        searching = phase == "alternate"
        warmed = state.warmup_epochs  # warm-up epochs before this one (the architecture steps start after them)
        sums = {"ce": 0.0, "mse": 0.0, "qc_mse_s2": 0.0, "arch_loss": 0.0, "dice_s1": 0.0, "sandwich": 0.0}
        steps = arch_steps = 0
        batches = _pairs(iter(distributed.shard_loader(loader(s1, cfg.batch_size, seed * 1000 + epoch))),
                         iter(distributed.shard_loader(loader(s2, cfg.batch_size, seed * 1000 + epoch + 500))))
        total_arch = cfg.alternate_epochs * len(batches)
        tau_now = tau.start
        for i, ((x1, y1), (x2, y2)) in enumerate(batches):
            x1, y1, x2, y2 = (t.to(device, non_blocking=True) for t in (x1, y1, x2, y2))
            if gdas:  # one sampled path per forward pass from here on; tau from the architecture step's index
                arch_index = (epoch - warmed) * len(batches) + i if searching else 0
                tau_now = tau.at(arch_index, total_arch)
                _set_weighting((seg, qc), ArchWeighting.gdas(paths, tau_now))
            # 1. S1: weights of both networks.
            seg.train(), qc.train()
            with precision.autocast():  # bf16 where the command asked for it (search.train.precision)
                out = run_framework(seg_ddp, qc_ddp, x1, y1, detach_qc_input=detach_qc_input)
                terms = framework_loss(out, y1, lambda1=cfg.lambda1, lambda2=cfg.lambda2,
                                       seg_dice_weight=cfg.seg_dice_weight)
            opt_seg.zero_grad(set_to_none=True), opt_qc.zero_grad(set_to_none=True)
            terms.total.backward()
            if cfg.sandwich:  # the widest and narrowest seg networks on the same batch, gradients added
                sums["sandwich"] += sandwich_backward(seg, x1, y1, cfg.seg_dice_weight)
            opt_seg.step(), opt_qc.step()
            sums["ce"] += terms.ce
            sums["mse"] += terms.mse
            sums["dice_s1"] += float(out.true_dice.mean())
            steps += 1
            # 2. S2: architecture of both networks (after the warm-up).
            if searching:
                with frozen(weights):  # first order: no weight gradients (steps 1 and 3 would discard them)
                    lat = expected_latency(cfg.gumbel_tau, gumbel)  # float32, outside the autocast
                    with precision.autocast():
                        out = run_framework(seg, qc, x2, y2, detach_qc_input=detach_qc_input)
                        terms = framework_loss(out, y2, lambda1=cfg.lambda1, lambda2=cfg.lambda2, latency_ms=lat,
                                               seg_dice_weight=cfg.seg_dice_weight,
                                               latency_budget_ms=cfg.latency_budget_ms)
                    opt_arch.zero_grad(set_to_none=True)
                    terms.total.backward()
                distributed.average_gradients(_alphas(seg) + _alphas(qc))
                opt_arch.step()
                if on_arch_step is not None:
                    on_arch_step()
                sums["arch_loss"] += float(terms.total.detach())
                arch_steps += 1
            # 3. S2: QC weights only, segmentation frozen.
            seg.eval()
            qc.train()
            with precision.autocast():
                out = run_framework(seg, qc_ddp, x2, y2, seg_frozen=True)
                terms = framework_loss(out, y2, lambda1=cfg.lambda1, lambda2=cfg.lambda2, with_ce=False)
            opt_qc.zero_grad(set_to_none=True)
            terms.total.backward()
            opt_qc.step()
            sums["qc_mse_s2"] += terms.mse
        with torch.no_grad():
            lat_ms = float(expected_latency(None, None))
        record = {
            "epoch": epoch + 1, "phase": phase,
            "ce": sums["ce"] / max(1, steps), "mse_s1": sums["mse"] / max(1, steps),
            # every rank decides the next phase from it: the mean over ranks, the same on each
            "dice_s1": distributed.mean_over_ranks(sums["dice_s1"] / max(1, steps)),
            "mse_s2": sums["qc_mse_s2"] / max(1, steps),
            "arch_loss": sums["arch_loss"] / arch_steps if arch_steps else math.nan,
            "expected_latency_ms": lat_ms, "arch_entropy": arch_entropy((seg, qc)),
        }
        if gdas:
            record["gdas_tau"] = tau_now  # the temperature of the epoch's last step
        if cfg.sandwich:
            record["sandwich_loss"] = sums["sandwich"] / max(1, steps)  # widest + narrowest seg loss
        state.history.append(record)
        state.epoch = epoch + 1
        log.info("search epoch %d (%d planned) %s: CE %.4f, Dice(S1) %.3f, MSE(S1) %.4f, MSE(S2) %.4f, "
                 "E[lat] %.2f ms, H(alpha) %.3f", epoch + 1, planned(), phase, record["ce"], record["dice_s1"],
                 record["mse_s1"], record["mse_s2"], lat_ms, record["arch_entropy"])
        if checkpoint is not None and distributed.is_main():
            _save(checkpoint, seg, qc, opt_seg, opt_qc, opt_arch, gumbel, paths, s1, s2, state)
        if (warmup_checkpoint is not None and phase == "warmup" and next_phase(state.history, cfg) != "warmup"
                and distributed.is_main()):
            _save(warmup_checkpoint, seg, qc, opt_seg, opt_qc, opt_arch, gumbel, paths, s1, s2, state)
    if gdas:  # the wrappers are back to their default weighting (the softmax mixture)
        _set_weighting((seg, qc), None)
    distributed.finish_stage("joint search", seg, qc)
    seg.eval(), qc.eval()
    return state


def _save(path: Path, seg, qc, opt_seg, opt_qc, opt_arch, gumbel, paths, s1, s2, state: SearchState) -> None:
    checkpoints.save({"seg": seg.state_dict(), "qc": qc.state_dict(), "opt_seg": opt_seg.state_dict(),
                      "opt_qc": opt_qc.state_dict(), "opt_arch": opt_arch.state_dict(),
                      "gumbel": gumbel.get_state(), "paths": paths.get_state(),
                      "s1_rng": s1.rng.bit_generator.state, "s2_rng": s2.rng.bit_generator.state,
                      "epoch": state.epoch, "history": state.history}, path)
