"""The searches of ``segqc-hw``: the two supernets, the joint search run, its derived pair and the baselines.

``search_stage`` runs one joint search (resumable mid-way from ``search.pt``) and writes its
``genotype.json`` (the derived architecture: argmax structure, zero excluded, with the search record);
``read_search`` reads it back. Which searches run, and when one is skipped, is declared in
``search.methods.segqc_hw.experiment``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from search import distributed
from search.baselines.resnet_qc import ResNetQc, ResNetQcConfig
from search.baselines.unet import UNet, UNetConfig
from search.core.convergence import ArchTrace
from search.core.decode import decode_nasunet, decode_qc
from search.core.derived.nasunet import DerivedNasUnet
from search.core.derived.qcnet import DerivedQcNet
from search.core.derived.unet_skeleton import SkeletonUNet
from search.core.genotypes import SegQcGenotype, SkeletonQcGenotype, genotype_from_json
from search.core.supernets.nasunet import NasUnetConfig, NasUnetSupernet
from search.core.supernets.qcnet import QcNetConfig, QcSupernet
from search.core.supernets.unet_skeleton import SkeletonChoices, SkeletonSupernet
from search.methods.segqc_hw.config import SegQcConfig
from search.methods.segqc_hw.data import frame_dataset
from search.methods.segqc_hw.joint_search import run_joint_search
from search.methods.segqc_hw.latency_model import FrameworkLatency, is_skeleton
from search.methods.segqc_hw.networks import QcFlat, QcOnParts, SegLogits
from search.train.cine_rows import read_json, write_json

log = logging.getLogger(__name__)

BASELINE_UNET_DEPTH = 5  # the segqc-hw paper's U-net(IF) is (D5, IF): see search.baselines.unet


def seg_config(cfg: SegQcConfig) -> NasUnetConfig | SkeletonChoices:
    """The U of the config's space, with the task's classes (2 contrast, 4 B-mode): the cell space's
    ``NasUnetConfig``, or the skeleton space's ``SkeletonChoices`` (``space.seg_space == "skeleton"``)."""
    if cfg.space.seg_space == "skeleton":
        return cfg.space.skeleton_choices(cfg.task.num_classes)
    return NasUnetConfig(num_classes=cfg.task.num_classes, init_filters=cfg.space.seg_init_filters,
                         depth=cfg.space.seg_depth, n_nodes=cfg.space.nodes,
                         droppable_inputs=cfg.space.droppable_inputs, keep_prev=cfg.space.keep_prev,
                         stem_convs=cfg.space.stem_convs)


def qc_config(cfg: SegQcConfig) -> QcNetConfig:
    """The QC net of the config's space; its input holds the task's class probabilities."""
    return QcNetConfig(num_classes=cfg.task.num_classes, init_filters=cfg.space.qc_init_filters,
                       n_stages=cfg.space.qc_stages, n_nodes=cfg.space.nodes)


def build_supernets(cfg: SegQcConfig, seed: int) -> tuple[SegLogits, QcOnParts]:
    """Fresh seg and QC supernets (weights and alphas seeded by ``seed``)."""
    seg_cfg = seg_config(cfg)
    seg = SkeletonSupernet(seg_cfg, seed=seed) if is_skeleton(seg_cfg) else NasUnetSupernet(seg_cfg, seed=seed)
    return SegLogits(seg), QcOnParts(QcSupernet(qc_config(cfg), seed=seed + 100))


def decode_pair(seg: SegLogits, qc: QcOnParts) -> SegQcGenotype | SkeletonQcGenotype:
    """The derived pair of the two supernets (argmax structure): a cell U or a skeleton U, and the QC cells."""
    if isinstance(seg.net, SkeletonSupernet):
        return SkeletonQcGenotype(seg.net.decode(), decode_qc(qc.net))
    return SegQcGenotype(decode_nasunet(seg.net), decode_qc(qc.net))


def build_derived(cfg: SegQcConfig, genotype: SegQcGenotype | SkeletonQcGenotype,
                  seed: int) -> tuple[nn.Module, nn.Module]:
    """The derived pair, freshly initialised (retraining from scratch)."""
    if isinstance(genotype, SkeletonQcGenotype):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            seg = SkeletonUNet(genotype.seg, n_classes=cfg.task.num_classes)
        return SegLogits(seg), QcOnParts(DerivedQcNet(genotype.qc, qc_config(cfg), seed=seed + 100))
    return (SegLogits(DerivedNasUnet(genotype.seg, seg_config(cfg), seed=seed)),
            QcOnParts(DerivedQcNet(genotype.qc, qc_config(cfg), seed=seed + 100)))


def build_baseline(width: int, seed: int, n_classes: int = 2) -> tuple[nn.Module, nn.Module]:
    """U-net(width) (D5) + ResNet18-style QC for ``n_classes`` classes (background included), seeded."""
    torch.manual_seed(seed)
    seg = UNet(UNetConfig(dims=2, in_channels=3, n_classes=n_classes, depth=BASELINE_UNET_DEPTH,
                          initial_filters=width))
    torch.manual_seed(seed + 100)
    return seg, QcFlat(ResNetQc(ResNetQcConfig(n_classes=n_classes)))


def search_stage(cfg: SegQcConfig, lambda2: float, seed: int, s1, s2, latency: FrameworkLatency,
                 folder: Path, device: str = "cpu", warmup_checkpoint: Path | None = None) -> tuple[SegQcGenotype, dict]:
    """One joint search (resumes mid-way from ``folder/search.pt``); writes ``folder/genotype.json`` and
    returns the derived genotype and the search record. ``warmup_checkpoint``: the warm-up shared by the
    run's searches that differ only in ``lambda2`` (``run_joint_search``)."""
    done = folder / "genotype.json"
    seg, qc = build_supernets(cfg, seed)
    seg.to(device), qc.to(device)
    lat_fn = latency.bind(seg.net, qc.net)
    search_cfg = type(cfg.search)(**{**cfg.search.__dict__, "lambda2": lambda2})
    s1_ds = frame_dataset(s1, cfg.data.resolution, cfg.data.augment, seed=seed * 10 + 3)
    s2_ds = frame_dataset(s2, cfg.data.resolution, cfg.data.augment, seed=seed * 10 + 4)
    # Issue 16: entropy of every architecture group (~200 records), saved beside the checkpoint so a resumed
    # search keeps its curve (steps of an epoch interrupted mid-way are counted twice; first and last are exact).
    arch_steps = search_cfg.alternate_epochs * -(-max(len(s1_ds), len(s2_ds)) // search_cfg.batch_size)
    trace = ArchTrace({"seg": seg.net, "qc": qc.net}, every=max(1, arch_steps // 200))
    trace_path = folder / "arch_trace.json"
    if trace_path.is_file() and (folder / "search.pt").is_file():
        trace.load_json(json.loads(trace_path.read_text()))

    def on_arch_step() -> None:
        trace.after_arch_step()
        if trace.steps[-1] == trace.arch_steps and distributed.is_main():
            write_json(trace_path, trace.to_json())

    state = run_joint_search(seg, qc, lat_fn, s1_ds, s2_ds, search_cfg, seed=seed, checkpoint=folder / "search.pt",
                             device=device, on_arch_step=on_arch_step, warmup_checkpoint=warmup_checkpoint)
    genotype = decode_pair(seg, qc)
    initial = trace.initial_argmax(lambda: decode_pair(seg, qc))
    convergence = trace.verdict(genotype, initial)
    budget = search_cfg.latency_budget_ms if lambda2 > 0 else 0.0  # a budget means nothing without a latency term
    log.info("search lambda2=%g%s%s seed %d: %s", lambda2, f" budget {budget:g} ms" if budget else "",
             " sandwich" if search_cfg.sandwich else "", seed, convergence.summary())
    with torch.no_grad():
        rec = {"genotype": genotype.to_json(), "lambda2": lambda2, "seed": seed, "sampler": search_cfg.sampler,
               **({"latency_budget_ms": budget} if budget else {}),
               **({"sandwich": True} if search_cfg.sandwich else {}),
               # the whole schedule (arch lr, weight decay, warm-up rule, ...): a search is reproducible from its record
               "search_config": {k: v for k, v in asdict(search_cfg).items() if k not in ("seeds", "sensitivity_lambda2")},
               "history": state.history, "warmup": state.warmup_record(search_cfg),
               "expected_latency_ms_final": float(lat_fn(None, None)),
               "alphas": {n: p.detach().tolist() for n, p in list(seg.net.named_arch_parameters())
                          + list(qc.net.named_arch_parameters())},
               "convergence": convergence.to_json(), "arch_trace": trace.to_json()}
    if distributed.is_main():  # under torchrun every rank derives the same genotype; rank 0 writes it
        write_json(done, rec)
    log.info("search lambda2=%g seed %d: derived %s", lambda2, seed, genotype.to_json())
    return genotype, rec


def read_search(folder: Path) -> tuple[SegQcGenotype | SkeletonQcGenotype, dict]:
    """A finished search read back from ``folder/genotype.json``: the derived genotype (of either space, by its
    ``kind``) and the search record."""
    rec = read_json(folder / "genotype.json")
    return genotype_from_json(rec["genotype"]), rec
