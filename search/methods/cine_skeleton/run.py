"""One cine skeleton search: latency table -> search -> verdict -> retrain -> export with a card.

Why (issue 16): on the cine phantom the handcrafted per-frame U-net 2D (D3, IF16) beats every network the
3D searches (msnas-hw, rtdnas) found, at the same training budget (``docs/bench/cine_baselines*``). So this
searches around it: U-net's own skeleton in 2D, run on every frame (``search.core.supernets.unet_skeleton``:
per level a width and a block; the U-net 2D baseline is one network of the space), hardware-aware with
this machine's per-op latency table at the deployed frame size, then retrains the derived network from
scratch with the baseline's own recipe and ships it as a per-frame cine model.

Stages, each resumable in the run folder:

1. ``latency-table.json``: every op signature of the supernet at the cine frame size, one input channel,
   profiled best-of-N with the app's threads (``search.latency.best_of.profile_best_of``).
2. ``search.pt`` / ``search.json``: the first-order bilevel search (``search.train.bilevel``) on the
   training patients split 1:1 into a weight set and an architecture set; loss ``CE + lambda_rel * LAT /
   LAT(reference)``; GDAS sampling by default; the entropy trace of every decision and the convergence
   verdict (``search.core.convergence``).
3. ``retrain.pt``: the derived network, fresh weights, trained as the per-frame baseline is (same
   clips, augmentation, schedule: ``search.baselines``' cine recipe).
4. Export (``search.baselines.shipping.export_cine_seg``): ONNX + card, Dice on the test patients, latency
   measured, INT8 tried; the card carries the genotype (its spec), the verdict and the learning curves.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader

from search.baselines.presets import get_preset as baseline_preset
from search.baselines.registry import CINE_CLASSES as CLASSES
from search.baselines.run import cine_card_data, cine_split, cine_test_dataset, cine_train_dataset
from search.baselines.shipping import export_cine_seg
from search.baselines.training import default_augmentation, seg_step
from search.baselines.unet import FrameWiseUNet
from search.citations import SEGQC_HW
from search.core.derived.unet_skeleton import SkeletonUNet, UNetSkeleton
from search.core.mixed import SOFTMAX, ArchWeighting
from search.core.supernets.base import Supernet
from search.core.supernets.unet_skeleton import SkeletonSupernet, derived_latency, skeleton_keys
from search.data import DataSpec
from search.methods.cine_skeleton.config import CineSkeletonConfig
from search.methods.cine_skeleton.config import choices_of as choices
from search.privacy import recorded_source
from search.train.bilevel import ArchitectureSearch, StepRecord
from search.train.data import split_patients
from search.train.datasets import CineClipDataset
from search.train.loop import fit, seed_everything
from search.train.stages import latency_table_stage

log = logging.getLogger(__name__)

METHOD = "cine-skeleton"
IN_CHANNELS = 1


class OtherSearchError(ValueError):
    """The run folder holds a finished search with other settings (resuming it would return that search)."""


class FrameWiseSupernet(Supernet):
    """The skeleton supernet run on every frame of a clip: ``(N, 1, T, H, W) -> (N, K, T, H, W)`` logits."""

    ARCH_PREFIXES = ("frames.unet.skeleton_arch.",)

    def __init__(self, net: SkeletonSupernet):
        super().__init__()
        self.frames = FrameWiseUNet(net)

    @property
    def net(self) -> SkeletonSupernet:
        return self.frames.unet

    def forward(self, clips: torch.Tensor, weighting: ArchWeighting = SOFTMAX) -> torch.Tensor:
        return self.frames(clips, weighting)


def _profile(cfg: CineSkeletonConfig, path: Path, keys: Callable[[], Any]):
    from search.latency.best_of import best_of_profiler
    from search.latency.profiler import ProfileSettings

    settings = ProfileSettings(warmup=cfg.lut_warmup, repeats=cfg.lut_repeats, intra_op_threads=cfg.threads,
                               seed=cfg.seed)
    config = {"space": [list(w) for w in cfg.widths], "blocks": list(cfg.blocks), "threads": cfg.threads,
              "lut_warmup": cfg.lut_warmup, "lut_repeats": cfg.lut_repeats}
    return latency_table_stage(path, keys, settings, progress=log.info, profile=best_of_profiler(settings, path),
                               config=config)


def _loader(cases, cfg: CineSkeletonConfig, size: tuple[int, int], seed: int) -> DataLoader:
    dataset = CineClipDataset(cases, cfg.search_clip_length, size, stride=cfg.search_clip_length,
                              augment=default_augmentation(), seed=seed, per_frame_norm=True)
    bs = cfg.search.batch_size
    return DataLoader(dataset, batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(seed),
                      drop_last=len(dataset) > bs)


def search(cfg: CineSkeletonConfig, train_cases, size: tuple[int, int], out: Path, table,
           source: str = "phantom") -> dict[str, Any]:
    """Run (or resume) the search; write and return ``search.json`` (``source``: the data, as run folders
    record it, ``search.privacy.recorded_source``)."""
    done = out / "search.json"
    if done.is_file():
        found = json.loads(done.read_text())
        _check_same_search(found.get("config"), cfg, source, done)
        return found
    space = choices(cfg)
    parts = split_patients(train_cases, cfg.split, cfg.seed)
    supernet = FrameWiseSupernet(SkeletonSupernet(space, seed=cfg.seed))
    reference = UNetSkeleton.parse(cfg.reference)
    reference_ms = derived_latency(reference, table, size, IN_CHANNELS, len(CLASSES))
    search_cfg = dataclasses.replace(cfg.search, latency_lambda=cfg.relative_lambda / max(reference_ms, 1e-6))

    def latency(_generator: torch.Generator) -> torch.Tensor:  # the exact expectation: no sample needed
        return supernet.net.expected_latency(table, size)

    torch.manual_seed(cfg.seed)
    runner = ArchitectureSearch(supernet, latency, _loader(parts["weight"], cfg, size, cfg.seed),
                                _loader(parts["arch"], cfg, size, cfg.seed + 1), search_cfg,
                                generator=torch.Generator().manual_seed(cfg.seed), checkpoint=out / "search.pt",
                                checkpoint_every=25)
    started, first = time.perf_counter(), runner.step

    def on_step(rec: StepRecord) -> None:
        if rec.step % 50 == 0 or rec.step == runner.total_steps:
            log.info("search step %d/%d %s weight CE %.3f arch CE %.3f LAT %.2f ms", rec.step, runner.total_steps,
                     rec.phase, rec.weight_ce, rec.arch_ce, rec.latency_ms)

    history = runner.run(on_step=on_step)
    seconds = time.perf_counter() - started
    derived = supernet.net.decode()
    initial = runner.trace.initial_argmax(supernet.net.decode)
    verdict = runner.trace.verdict(derived, initial)
    log.info("%s: %s", derived.spec, verdict.summary())
    runner.trace.plot(out / "entropy.png", title=f"cine-skeleton {cfg.preset} seed {cfg.seed}: entropy per decision")
    with torch.no_grad():
        probabilities = {name: [round(float(v), 4) for v in torch.softmax(p, 0)]
                         for name, p in supernet.net.skeleton_arch.items()}
    doc = {
        "genotype": derived.spec, "initial_argmax": initial.spec,
        "convergence": verdict.to_json(), "trace": runner.trace.to_json(), "probabilities": probabilities,
        "predicted_ms": {"derived": round(derived_latency(derived, table, size, IN_CHANNELS, len(CLASSES)), 3),
                         "reference": round(reference_ms, 3), "reference_spec": cfg.reference},
        "steps": len(history), "seconds_this_run": round(seconds, 1),
        "steps_per_second": round((runner.step - first) / seconds, 3) if seconds > 0 and runner.step > first else None,
        "history_tail": [r.__dict__ for r in history[-5:]],
        "patients": {name: len(cases) for name, cases in parts.items()},
        "latency_lambda": search_cfg.latency_lambda,
        "config": _search_config(cfg, source),
    }
    done.write_text(json.dumps(doc, indent=1, default=float))
    return doc


def retrain(cfg: CineSkeletonConfig, skeleton: UNetSkeleton, train, out: Path, schedule) -> tuple[SkeletonUNet, list]:
    """The derived network from scratch on the baseline's clips and schedule (checkpoint ``retrain.pt``)."""
    seed_everything(schedule.seed)
    net = SkeletonUNet(skeleton, in_channels=IN_CHANNELS, n_classes=len(CLASSES))
    losses = fit(FrameWiseUNet(net), seg_step, train, schedule, checkpoint=out / "retrain.pt")
    return net.eval(), losses


def run(cfg: CineSkeletonConfig, out: Path, *, models_dir: Path | None = None, ship: bool = True,
        search_only: bool = False, data: DataSpec | None = None) -> dict[str, Any]:
    """Every stage of one search; returns (and writes ``report.json``) what was found and shipped.
    ``search_only`` stops after the search (the report holds the config and the search). ``data``: a cine
    dataset (``--data acdc:DIR``) instead of the phantom, split by patient as the baselines split it (its
    official test set as test); the card records it by kind, hashes and counts."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    bp = baseline_preset(cfg.baselines)
    size = tuple(bp.cine_input)
    split = cine_split(bp, data, METHOD)
    source = recorded_source(data.text if data is not None else None)
    reference = UNetSkeleton.parse(cfg.reference)  # priced even when the space does not hold it (other blocks)
    table = _profile(cfg, out / "latency-table.json",
                     lambda: set(SkeletonSupernet(choices(cfg)).latency_keys(size))
                     | set(skeleton_keys(reference, size, IN_CHANNELS, len(CLASSES)))).run()
    found = search(cfg, split["train"], size, out, table, source)
    if search_only:
        report = {"config": _config_json(cfg), "search": {k: v for k, v in found.items() if k != "trace"},
                  "retrain_loss": None, "search_only": True}
        (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
        return report
    skeleton = UNetSkeleton.parse(found["genotype"])
    train = cine_train_dataset(bp, split["train"], per_frame=True)
    net, losses = retrain(cfg, skeleton, train, out, bp.cine_train)
    report: dict[str, Any] = {"config": _config_json(cfg), "search": {k: v for k, v in found.items() if k != "trace"},
                              "retrain_loss": [round(float(v), 4) for v in losses]}
    if ship:
        conv = found["convergence"]
        notes = (f"Searched per-frame U-net skeleton ({SEGQC_HW.cite}'s skeleton space, issue 16) on cine frames at "
                 f"{size[0]}x{size[1]}: {found['genotype']}; hardware-aware with this machine's op table (predicted "
                 f"{found['predicted_ms']['derived']} ms per frame against {found['predicted_ms']['reference']} ms for "
                 f"the U-net 2D (D3, IF16) {cfg.reference}); retrained from scratch with the per-frame U-net 2D "
                 f"baseline's data and schedule ({bp.name} baselines preset).")
        extra = {"searched_with": {"preset": cfg.preset, "seed": cfg.seed, "relative_lambda": cfg.relative_lambda,
                                   "sampler": cfg.search.sampler, "warmup_steps": cfg.search.warmup_steps,
                                   "search_steps": cfg.search.search_steps,
                                   "predicted_ms": found["predicted_ms"], "initial_argmax": found["initial_argmax"]}}
        cards, decision = ship_per_frame(net, skeleton, bp, split, data, losses, Path(models_dir or "models"),
                                         model_id=cfg.model_id, notes=notes, quantize=bp.quantize,
                                         convergence=_card_convergence(conv), extra=extra)
        report["shipped"] = [c.id for c in cards]
        report["int8"] = decision.reason if decision is not None else None
        report["card"] = {"dice": cards[0].raw.get("metrics", {}).get("dice"),
                          "latency_ms": cards[0].raw.get("metrics", {}).get("latency_ms")}
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    return report


def ship_per_frame(net: SkeletonUNet, skeleton: UNetSkeleton, bp, split: dict[str, list], data: DataSpec | None,
                   losses, models_dir: Path, *, model_id: str, notes: str, quantize: bool,
                   convergence: dict[str, Any] | None = None, extra: dict[str, Any] | None = None):
    """Export a retrained skeleton network as a per-frame cine card (``export_cine_seg``), scored on the split's
    test clips, INT8 calibrated on its training clips; returns ``(cards, INT8 decision)``."""
    test = cine_test_dataset(None, bp, split["test"], per_frame=True)
    calibration = CineClipDataset(split["train"], bp.clip_length, tuple(bp.cine_input), per_frame_norm=True)
    return export_cine_seg(net, test, calibration, models_dir, model_id=model_id, classes=CLASSES, per_frame=True,
                           method=METHOD, data=cine_card_data(bp, split, data, losses),
                           architecture={"unet_skeleton": {"spec": skeleton.spec}}, notes=notes, quantize=quantize,
                           latency_repeats=bp.latency_repeats, convergence=convergence, extra=extra)


def _card_convergence(doc: dict[str, Any]) -> dict[str, Any]:
    from search.core.convergence import Convergence

    return Convergence.from_json(doc).card_field()


def _search_config(cfg: CineSkeletonConfig, source: str) -> dict[str, Any]:
    """What decides the search's outcome (not the card's id): the settings and the data."""
    return {**{k: v for k, v in _config_json(cfg).items() if k != "model_id"}, "data": source}


def _check_same_search(recorded: dict[str, Any] | None, cfg: CineSkeletonConfig, source: str, path: Path) -> None:
    """A finished search in the run folder is reused only for the same settings and data (older runs recorded
    none)."""
    if recorded is None:
        return
    recorded = {"data": "phantom", **recorded}  # recorded before the data was
    wanted = _search_config(cfg, source)
    differ = sorted(k for k in set(recorded) | set(wanted) if recorded.get(k) != wanted.get(k))
    if differ:
        raise OtherSearchError(f"{path}: this run folder holds a search with other settings ({', '.join(differ)}); "
                               "pass another --out")


def _config_json(cfg: CineSkeletonConfig) -> dict[str, Any]:
    from search.train import precision

    return json.loads(json.dumps(precision.tag(dataclasses.asdict(cfg)), default=list))  # bf16 training recorded
