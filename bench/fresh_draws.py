"""Do the model cards' Dice figures hold on new patients? Fresh phantom draws through ``app.validate``.

A card's Dice was measured on a handful of held-out patients of the seed its model was trained on.
This check draws patients from a phantom seed that no training split used (``FRESH_SEED``, far from
every seed in ``TRAINING_SEEDS`` and on the shipped cards), spread evenly over the quality bins
(``app.data.phantom.quality``: poor / medium / good, picked by each patient's own drawn quality, never
forced), writes them as labelled recordings the app reads (echo: DICOM US multi-frame +
``<stem>_mask.npz``; cine: ACDC patient folders with every frame labelled), and runs every shipped
segmentation model over them with ``app.validate.validate`` (what ``python -m app validate --model ID
--fast`` runs: the real pipeline, with the model's QC partner, scored by the app's own code).

Per model it reports the card's Dice (``metrics.dice.mean``, and beside it ``metrics.dice_newest_frame``
for a clip model, the Dice of the newest frame of the app's window, which is the one the app shows, and
``metrics.dice_fresh_patients`` when the card has them), the fresh Dice (mean over patients) with a seeded bootstrap 95% CI over patients,
the Dice per quality bin, the QC MAE / Pearson r of the QC partner beside its card, and a verdict:
``holds`` when the card's Dice lies inside the fresh CI or below it (fresh patients do better), else
``card optimistic by X`` (X = card minus fresh mean).

Cine: the app replays one short-axis slice per recording (``--slice``; the default is the
mid-ventricular one), so each chosen slice of a patient is written as its own one-slice ACDC folder
(identical pixels and labels to that slice of the full volume). Fast cine models run every rendered
slice; slow ones (card p50 >= ``--slow-ms``) run ``--slow-cine-slices`` slices spread base to apex,
and the report says which slices each model saw. INT8 duplicates of a model are skipped when slow.

    python bench/fresh_draws.py                                  # 20 patients per modality, all seg models
    python bench/fresh_draws.py --patients 30 --models cine-rtdnas-ga-n7 --out /tmp/fresh

Writes ``fresh_draws.json`` and ``fresh_draws.md`` to ``--out`` (default ``docs/bench``).
``--from-json`` writes them again from an earlier run's JSON without running anything: card figures
the run predates (``CARD_FIELDS``) are filled in from the current cards when the card is still the one
that run checked (same ``metrics.dice.mean``), and the report says so.

    python bench/fresh_draws.py --from-json docs/bench/fresh_draws.json   # re-render docs/bench/fresh_draws.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/fresh_draws.py``
    sys.path.insert(0, str(ROOT))

# A phantom seed no split of any shipped model or search preset used (see TRAINING_SEEDS).
FRESH_SEED = 160006
# Phantom dataset seeds the project trains, splits or demonstrates on (plus each card's ``data.seed``).
TRAINING_SEEDS = {
    0: "segqc-hw echo search (phantom_seed), echo and cine baselines, finetune default",
    1: "bench/phantom_difficulty test cases (seed + 1), segqc-hw S2 split seed",
    1000: "bench/phantom_difficulty extra cases (seed + 1000)",
    2020: "cine searches msnas-hw and rtdnas (search/train/cine_config.py DataConfig.seed)",
    2026: "app demo (app/data/phantom/demo.py DEMO_SEED)",
    3030: "cine-qc (search/methods/cine_qc phantom_seed)",
}
RENDER = {"echo": {"n_frames": 30, "size": 256}, "cine": {"n_frames": 20, "n_slices": 8, "shape": (128, 112)}}
SLOW_MS = 150.0          # a cine model whose card p50 is at least this runs fewer slices
SLOW_CINE_SLICES = 2
BOOTSTRAP = 2000
# Figures of a model's card a report holds (``card`` of each model) that an older run may lack.
CARD_FIELDS = ("dice_newest_frame",)


# -- which models, which seeds ----------------------------------------------------------------------
def _card_p50(card) -> float | None:
    value = (card.metrics.get("latency_ms") or {}).get("p50")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _is_int8(card) -> bool:
    return bool(card.raw.get("quantization"))


def pick_models(models_dir=None, ids: list[str] | None = None, slow_ms: float = SLOW_MS) -> tuple[list, list[dict]]:
    """Segmentation cards to check and the ones left out (with why). ``ids`` picks exactly those."""
    from app.engine.models import find_model, list_models

    if ids:
        cards = [find_model(i, models_dir) for i in ids]
        bad = [c.id for c in cards if c.role != "seg"]
        if bad:
            raise ValueError(f"not segmentation models: {', '.join(bad)} (QC models are checked with their seg partner)")
        return cards, []
    chosen, skipped = [], []
    for card in list_models(None, models_dir):
        if card.role != "seg":
            continue
        p50 = _card_p50(card)
        if _is_int8(card) and p50 is not None and p50 >= slow_ms:
            skipped.append({"id": card.id, "why": f"INT8 duplicate of {card.raw['quantization'].get('float_model')}, "
                                                   f"slow (card p50 {p50:.0f} ms); pass --models to include it"})
            continue
        chosen.append(card)
    return chosen, skipped


def used_seeds(cards) -> dict[int, str]:
    """Phantom seeds in use: ``TRAINING_SEEDS`` plus each card's ``data.seed`` (cards named by id)."""
    seeds = {k: [v] for k, v in TRAINING_SEEDS.items()}
    by_seed: dict[int, list[str]] = {}
    for card in cards:
        seed = (card.raw.get("data") or {}).get("seed")
        if isinstance(seed, int):
            by_seed.setdefault(seed, []).append(card.id)
    for seed, ids in by_seed.items():
        seeds.setdefault(seed, []).append("cards " + ", ".join(sorted(ids)))
    return {k: "; ".join(v) for k, v in sorted(seeds.items())}


# -- patients ---------------------------------------------------------------------------------------
def _render(modality: str, seed: int, index: int, *, probe: bool = False, variant: str = "contrast", **kwargs):
    if modality == "echo":
        from app.data.phantom.echo import render_echo_case

        if probe:  # the quality is the first draw of the case's acquisition stream: size and frames leave it alone
            return render_echo_case(seed, index, n_frames=1, size=64, variant=variant)
        return render_echo_case(seed, index, variant=variant, **kwargs)
    from app.data.phantom.cine import render_cine_case

    if probe:
        return render_cine_case(seed, index, n_frames=1, n_slices=1, shape=(32, 32))
    return render_cine_case(seed, index, **kwargs)


def quotas(n: int) -> dict[str, int]:
    """``n`` patients over the quality bins as evenly as possible (poor first gets the remainder)."""
    from app.data.phantom.quality import QUALITY_BINS

    names = [b[0] for b in QUALITY_BINS]
    return {name: n // len(names) + (1 if i < n % len(names) else 0) for i, name in enumerate(names)}


def stratified_indices(modality: str, seed: int, n: int, variant: str = "contrast",
                       max_tries: int = 10_000) -> list[tuple[int, float, str]]:
    """Case indices ``0, 1, ...`` of ``seed`` kept while their own quality bin still needs patients.

    Returns ``(index, quality, bin)`` in index order. Quality is never forced: every patient is
    the phantom's natural draw, only the choice of which to keep is stratified.
    """
    from app.data.phantom.quality import quality_bin

    need = quotas(n)
    picked = []
    for index in range(max_tries):
        if not any(need.values()):
            break
        q = float(_render(modality, seed, index, probe=True, variant=variant).quality)
        name = quality_bin(q)
        if need[name]:
            need[name] -= 1
            picked.append((index, q, name))
    if any(need.values()):
        raise RuntimeError(f"{modality} seed {seed}: quality bins not filled after {max_tries} cases: {need}")
    return picked


def write_recordings(modality: str, seed: int, n: int, root: Path, *, variant: str = "contrast",
                     frames: int | None = None, indices: list[int] | None = None) -> dict:
    """Render ``n`` stratified patients and write them under ``root``; returns the manifest (also on disk).

    Echo: ``echo_NNNN.dcm`` + ``_mask.npz``. Cine: ``pNNNN-zZ/patientNNN/`` one-slice ACDC folders
    for every rendered slice (the app replays one slice of a cine recording). ``indices``: exactly
    these case indices instead of a stratified draw (a card's own test patients).
    """
    from app.data.writers import write_acdc_patient, write_echo_dicom

    kwargs = dict(RENDER[modality])
    if frames is not None:
        kwargs["n_frames"] = frames
    root.mkdir(parents=True, exist_ok=True)
    patients = []
    if indices is not None:
        from app.data.phantom.quality import quality_bin

        picked = []
        for index in indices:
            q = float(_render(modality, seed, index, probe=True, variant=variant).quality)
            picked.append((index, q, quality_bin(q)))
    else:
        picked = stratified_indices(modality, seed, n, variant)
    for number, (index, quality, name) in enumerate(picked, start=1):
        case = _render(modality, seed, index, variant=variant, **kwargs)
        if not math.isclose(case.quality, quality) or case.quality_bin != name:
            raise RuntimeError(f"{case.case_id}: probed quality {quality} differs from the render's {case.quality}")
        entry = {"index": index, "case_id": case.case_id, "quality": round(float(quality), 4), "bin": name,
                 "frames": case.n_frames, "labelled_frames": len(case.labelled_frames)}
        if modality == "echo":
            entry["recordings"] = {"all": str(write_echo_dicom(case, root / f"echo_{index:04d}.dcm", number))}
        else:
            entry["recordings"] = {}
            for z in range(case.n_slices):
                one = dataclasses.replace(case, frames=case.frames[:, z:z + 1],
                                          labels=None if case.labels is None else case.labels[:, z:z + 1])
                entry["recordings"][str(z)] = str(write_acdc_patient(one, root / f"p{index:04d}-z{z}", number))
            entry["slices"] = case.n_slices
        patients.append(entry)
    manifest = {"modality": modality, "seed": seed, "variant": variant if modality == "echo" else None,
                "render": {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
                "patients": patients}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


_CASE_ID = re.compile(r"^phantom-(echo|cine)(?:-(contrast|bmode))?-s(\d+)-(\d+)$")


def card_test_patients(card) -> tuple[int, list[int]] | None:
    """``(seed, case indices)`` of the held-out patients the card's Dice was measured on, when it lists them."""
    test = ((card.raw.get("data") or {}).get("split") or {}).get("test")
    if not isinstance(test, list) or not test:
        return None
    seeds, indices = set(), []
    for case_id in test:
        m = _CASE_ID.match(str(case_id))
        if not m or m.group(1) != card.modality:
            return None
        seeds.add(int(m.group(3)))
        indices.append(int(m.group(4)))
    return (seeds.pop(), sorted(indices)) if len(seeds) == 1 else None


def spread_slices(n_slices: int, k: int) -> list[int]:
    """``k`` slice indices spread base to apex, away from the two ends (all when ``k >= n_slices``)."""
    if k >= n_slices:
        return list(range(n_slices))
    return sorted({int(round(x)) for x in np.linspace(0, n_slices - 1, k + 2)[1:-1]})


# -- statistics -------------------------------------------------------------------------------------
def bootstrap_ci(values, weights=None, *, n_boot: int = BOOTSTRAP, seed: int = 0) -> list[float] | None:
    """Percentile 95% CI of the (weighted) mean, resampling patients with a seeded generator
    (``search.core.stats.bootstrap_mean_ci``); NaN values and non-positive weights are dropped first."""
    from search.core.stats import bootstrap_mean_ci

    v = np.asarray(values, dtype=np.float64)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(v) & (w > 0)
    v, w = v[ok], w[ok]
    if v.size == 0:
        return None
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xF5E5]))
    lo, hi = bootstrap_mean_ci(v, w, n_boot=n_boot, rng=rng)
    return [round(lo, 4), round(hi, 4)]


def _wmean(values, weights) -> float | None:
    pairs = [(v, w) for v, w in zip(values, weights) if v is not None and math.isfinite(v) and w > 0]
    if not pairs:
        return None
    return float(sum(v * w for v, w in pairs) / sum(w for _, w in pairs))


def _r(value, digits: int = 4):
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def verdict(card_value: float | None, mean: float | None, ci: list[float] | None) -> str:
    """``holds`` when the card lies in the fresh CI (or below it), else how optimistic the card is."""
    if card_value is None or mean is None or ci is None:
        return "n/a"
    if card_value > ci[1]:
        return f"card optimistic by {card_value - mean:.3f}"
    if card_value < ci[0]:
        return f"holds (fresh above card by {mean - card_value:.3f})"
    return "holds"


def card_evaluated_on(card) -> str:
    """What the card's Dice was measured on, in words (its own ``evaluated_on`` when it has one)."""
    metrics, data = card.metrics, card.raw.get("data") or {}
    said = (metrics.get("dice") or {}).get("evaluated_on")
    if said:
        return f"{said} (seed {data.get('seed')})"
    split = data.get("split") or {}
    test = split.get("test")
    n = len(test) if isinstance(test, list) else test if isinstance(test, int) else \
        (data.get("patients") or {}).get("test")
    frames = metrics.get("eval_frames")
    return (f"{n if n is not None else '?'} held-out phantom patients of seed {data.get('seed')}"
            + (f", {frames} frames" if frames else ""))


def summarise(card, qc_card, manifest: dict, slices: list[int] | None, out: dict, *, n_boot: int,
              boot_seed: int) -> dict:
    """Patient-level Dice, CI, per bin / slice / class and QC from one ``validate`` report."""
    rows = []  # (patient entry, slice, case)
    for patient in manifest["patients"]:
        for key in ([str(z) for z in slices] if slices is not None else ["all"]):
            rows.append((patient, key, None))
    cases = out["cases"]
    if len(cases) != len(rows):
        raise RuntimeError(f"{card.id}: validate returned {len(cases)} cases for {len(rows)} recordings")
    rows = [(p, k, c) for (p, k, _), c in zip(rows, cases)]
    patients = []
    for patient in manifest["patients"]:
        mine = [c for p, _, c in rows if p is patient]
        weights = [c["labelled_frames"] for c in mine]
        qc_n = [c["qc"]["n"] or 0 for c in mine]
        patients.append({
            "case_id": patient["case_id"], "quality": patient["quality"], "bin": patient["bin"],
            "dice": _r(_wmean([c["dice_mean"] for c in mine], weights)),
            "classes": {name: _r(_wmean([c["classes"][name]["dice"] for c in mine],
                                        [c["classes"][name]["frames_scored"] for c in mine]))
                        for name in mine[0]["classes"]},
            "qc_mae": _r(_wmean([c["qc"]["mae"] for c in mine], qc_n)), "qc_n": sum(qc_n),
            "frames": sum(c["processed"] for c in mine), "labelled_frames": sum(weights),
            "errors": sum(c["errors"] for c in mine),
        })
    dice = [p["dice"] for p in patients if p["dice"] is not None]
    mean = _r(float(np.mean(dice))) if dice else None
    ci = bootstrap_ci(dice, n_boot=n_boot, seed=boot_seed)
    per_bin = {}
    for name in quotas(3):
        mine = [p for p in patients if p["bin"] == name]
        values = [p["dice"] for p in mine if p["dice"] is not None]
        per_bin[name] = {"patients": len(mine), "dice": _r(float(np.mean(values))) if values else None,
                         "qc_mae": _r(_wmean([p["qc_mae"] for p in mine], [p["qc_n"] for p in mine]))}
    per_slice = None
    if slices is not None:
        per_slice = {}
        for z in slices:
            values = [c["dice_mean"] for _, k, c in rows if k == str(z) and c["dice_mean"] is not None]
            per_slice[str(z)] = _r(float(np.mean(values))) if values else None
    class_names = list(patients[0]["classes"]) if patients else []
    per_class = {n: _r(float(np.mean([p["classes"][n] for p in patients if p["classes"][n] is not None])))
                 for n in class_names if any(p["classes"][n] is not None for p in patients)}
    qc = None
    if qc_card is not None:
        cal = out["overall"]["qc_calibration"]
        m = qc_card.metrics
        qc = {"model": qc_card.id, "card_mae": m.get("qc_mae"), "card_pearson": m.get("qc_pearson"),
              "card_scored_seg_model": m.get("scored_seg_model"),
              "fresh_mae": cal["mae"], "fresh_mae_ci95": bootstrap_ci([p["qc_mae"] for p in patients],
                                                                      [p["qc_n"] for p in patients],
                                                                      n_boot=n_boot, seed=boot_seed),
              "fresh_pearson": cal["pearson"], "frames": cal["n"]}
    metrics = card.metrics
    card_dice = (metrics.get("dice") or {}).get("mean")
    card_fresh = metrics.get("dice_fresh_patients")
    newest = _r(card.newest_frame_dice) if card.newest_frame_dice is not None else None
    return {
        "id": card.id, "modality": card.modality, "method": card.method, "int8": _is_int8(card),
        "qc_model": qc_card.id if qc_card is not None else None,
        "slices": slices,
        "card": {"dice": _r(card_dice) if card_dice is not None else None,
                 "dice_newest_frame": newest,
                 "evaluated_on": card_evaluated_on(card),
                 "dice_fresh_patients": card_fresh},
        "fresh": {"dice": mean, "ci95": ci, "patients": len(dice),
                  "frames": sum(p["frames"] for p in patients),
                  "labelled_frames": sum(p["labelled_frames"] for p in patients),
                  "errors": sum(p["errors"] for p in patients),
                  "per_class": per_class, "per_bin": per_bin, "per_slice": per_slice,
                  "latency_ms": out["overall"]["latency_ms"], "fps": out["overall"]["fps"]},
        "qc": qc,
        "verdict": verdict(card_dice, mean, ci),
        "verdict_dice_fresh_patients": verdict(card_fresh.get("mean"), mean, ci)
        if isinstance(card_fresh, dict) else None,
        "verdict_dice_newest_frame": verdict(newest, mean, ci) if newest is not None else None,
        "patients": patients,
    }


# -- the run ----------------------------------------------------------------------------------------
def _machine() -> dict:
    from app.engine.benchmark import cpu_name, machine_state, uptime_text
    from app.engine.replay import machine_description

    return {"description": machine_description(), "cpu": cpu_name(), **machine_state(), "uptime": uptime_text()}


def run(*, patients: int = 20, seed: int = FRESH_SEED, model_ids: list[str] | None = None, models_dir=None,
        echo_frames: int | None = None, cine_frames: int | None = None, cine_slices: int | None = None,
        slow_cine_slices: int = SLOW_CINE_SLICES, slow_ms: float = SLOW_MS, recordings: Path | None = None,
        n_boot: int = BOOTSTRAP, boot_seed: int = 0, card_patients: bool = True, log=print) -> dict:
    """Render, write, validate and summarise; returns the report (see ``write_report``).

    ``card_patients``: also run each model, the same way, on the held-out patients its card lists
    (same seed as its training), which splits a card-vs-fresh gap into the part the app's scoring
    already shows on the card's own patients and the part new patients add.
    """
    from app.engine.models import list_models, qc_for
    from app.validate import validate

    if patients < 1:
        raise ValueError(f"--patients must be at least 1, got {patients}")
    started = time.perf_counter()
    before = _machine()
    cards, skipped = pick_models(models_dir, model_ids, slow_ms)
    if not cards:
        raise ValueError("no segmentation models to check")
    seeds = used_seeds(list_models(None, models_dir))
    if seed in seeds:
        raise ValueError(f"seed {seed} is a training / split seed ({seeds[seed]}); use one no split used "
                         f"(default {FRESH_SEED})")
    n_slices = RENDER["cine"]["n_slices"]
    all_slices = list(range(n_slices)) if cine_slices is None else spread_slices(n_slices, cine_slices)
    with tempfile.TemporaryDirectory(prefix="fresh-draws-") as tmp:
        base = Path(recordings) if recordings is not None else Path(tmp)
        datasets: dict[str, dict] = {}
        models = []
        for card in cards:
            key = f"echo-{card.echo_mode}" if card.modality == "echo" else "cine"
            if key not in datasets:
                t0 = time.perf_counter()
                datasets[key] = write_recordings(card.modality, seed, patients, base / key,
                                                 variant=card.echo_mode or "contrast",
                                                 frames=echo_frames if card.modality == "echo" else cine_frames)
                datasets[key]["write_s"] = round(time.perf_counter() - t0, 1)
                bins = {}
                for p in datasets[key]["patients"]:
                    bins[p["bin"]] = bins.get(p["bin"], 0) + 1
                log(f"wrote {patients} {key} patients (seed {seed}, bins {bins}) in {datasets[key]['write_s']} s")
            manifest = datasets[key]
            slices = None
            if card.modality == "cine":
                p50 = _card_p50(card)
                slow = p50 is not None and p50 >= slow_ms
                slices = spread_slices(n_slices, slow_cine_slices) if slow else all_slices
                specs = [p["recordings"][str(z)] for p in manifest["patients"] for z in slices]
            else:
                specs = [p["recordings"]["all"] for p in manifest["patients"]]
            qc_card = qc_for(card, models_dir)
            t0 = time.perf_counter()
            log(f"{card.id}: validating {len(specs)} recordings"
                + (f" (slices {slices} of {n_slices})" if slices is not None else ""))
            try:
                report = validate(specs, report=base / f"validate-{card.id}.json", model_id=card.id,
                                  models_dir=models_dir, fast=True)
                entry = summarise(card, qc_card, manifest, slices, report, n_boot=n_boot, boot_seed=boot_seed)
                entry["validate_models"] = report["models"]
            except Exception as exc:  # one model failing must not lose the others
                entry = {"id": card.id, "modality": card.modality, "error": f"{type(exc).__name__}: {exc}",
                         "verdict": "error"}
            entry["elapsed_s"] = round(time.perf_counter() - t0, 1)
            entry["dataset"] = key
            held = card_test_patients(card) if card_patients and "error" not in entry else None
            if held is not None:
                hseed, hidx = held
                hkey = f"card-{card.id}"
                t1 = time.perf_counter()
                try:
                    hman = write_recordings(card.modality, hseed, len(hidx), base / hkey,
                                            variant=card.echo_mode or "contrast", indices=hidx,
                                            frames=echo_frames if card.modality == "echo" else cine_frames)
                    hspecs = [p["recordings"][str(z)] for p in hman["patients"] for z in slices] if slices is not None \
                        else [p["recordings"]["all"] for p in hman["patients"]]
                    hrep = validate(hspecs, report=base / f"validate-{hkey}.json", model_id=card.id,
                                    models_dir=models_dir, fast=True)
                    hsum = summarise(card, qc_card, hman, slices, hrep, n_boot=n_boot, boot_seed=boot_seed)
                    entry["card_patients"] = {"seed": hseed, "case_ids": [p["case_id"] for p in hman["patients"]],
                                              "dice": hsum["fresh"]["dice"], "ci95": hsum["fresh"]["ci95"],
                                              "per_class": hsum["fresh"]["per_class"],
                                              "elapsed_s": round(time.perf_counter() - t1, 1)}
                except Exception as exc:  # reported; the fresh figures stand
                    entry["card_patients"] = {"seed": hseed, "error": f"{type(exc).__name__}: {exc}"}
                cp = entry["card_patients"]
                log(f"{card.id}: on its card's {len(hidx)} test patients (seed {hseed}) through the app: "
                    f"{cp.get('dice')} ({cp.get('elapsed_s')} s)")
            models.append(entry)
            fresh = entry.get("fresh") or {}
            log(f"{card.id}: card {entry.get('card', {}).get('dice')} fresh {fresh.get('dice')} "
                f"CI {fresh.get('ci95')} -> {entry['verdict']} ({entry['elapsed_s']} s)")
    after = _machine()
    return {
        "title": "Card Dice on fresh phantom draws (issue 16 item 6)",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"before": before, "after": after},
        "seed": seed,
        "training_seeds": {str(k): v for k, v in seeds.items()},
        "settings": {"patients_per_modality": patients, "mode": "validate --fast (every frame, as fast as possible)",
                     "echo_frames": echo_frames or RENDER["echo"]["n_frames"],
                     "cine_frames": cine_frames or RENDER["cine"]["n_frames"],
                     "cine_rendered_slices": n_slices, "cine_slices": all_slices,
                     "slow_cine_slices": spread_slices(n_slices, slow_cine_slices), "slow_ms": slow_ms,
                     "bootstrap": {"resamples": n_boot, "seed": boot_seed, "unit": "patient",
                                   "interval": "percentile 95%"},
                     "quality_quotas": quotas(patients), "card_patients": card_patients},
        "datasets": {k: {kk: vv for kk, vv in v.items() if kk != "patients"}
                     | {"patients": [{kk: vv for kk, vv in p.items() if kk != "recordings"} for p in v["patients"]]}
                     for k, v in datasets.items()},
        "skipped": skipped,
        "models": models,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


# -- the report -------------------------------------------------------------------------------------
def _f(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ci(ci) -> str:
    return "-" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def markdown(result: dict) -> str:
    s = result["settings"]
    before, after = result["machine"]["before"], result["machine"]["after"]
    lines = [
        f"# {result['title']}",
        "",
        f"Run {result['date']} on {before['cpu']} ({before['description']}); load average before "
        f"{before['load_avg']}, after {after['load_avg']} (`uptime`: {before.get('uptime') or '-'}). "
        f"Took {result['elapsed_s'] / 60:.1f} min ({result['elapsed_s']:.0f} s).",
        "",
        f"Fresh patients: phantom seed **{result['seed']}**, which no split used. Seeds in use (training, splits, "
        "demo, other benches): " + ", ".join(f"{k}" for k in result["training_seeds"]) + " (see the JSON's "
        "`training_seeds` for who uses each). "
        f"{s['patients_per_modality']} patients per modality, kept in case order while their own drawn quality "
        f"bin still needed patients (quotas {s['quality_quotas']}); quality is never forced.",
        "",
        f"Each patient is written as a labelled recording (echo: DICOM + `_mask.npz`, {s['echo_frames']} frames; "
        f"cine: one-slice ACDC folders, {s['cine_frames']} frames, every frame labelled) and run through "
        "`app.validate.validate` (the code of `python -m app validate --model ID --fast`), with the model's QC "
        "partner. Patient Dice = the app's per-frame Dice (mean over the classes present) averaged over the "
        f"patient's labelled frames; fresh Dice = mean over patients, 95% CI = percentile bootstrap over patients "
        f"({s['bootstrap']['resamples']} resamples, seed {s['bootstrap']['seed']}).",
        "",
        f"Cine: fast models see all {s['cine_rendered_slices']} rendered slices ({s['cine_slices']}); models whose "
        f"card p50 is >= {s['slow_ms']:.0f} ms see only slices {s['slow_cine_slices']} (to keep the run short), "
        "so their figure is over those slices only; the per-slice table below shows how much slices differ.",
        "",
        "Verdict: *holds* when the card's Dice lies inside the fresh CI (or below it), else *card optimistic by X*, "
        "X = card minus fresh mean.",
        "",
        "Column *card newest-frame Dice* (clip models only: cine models that take a 20-frame clip): the card's "
        "`metrics.dice_newest_frame`, the Dice of the newest position of the window the app runs the model on, "
        "the one the app shows, on the card's own test patients at the model's grid; *card Dice* "
        "(`metrics.dice`) averages every position of the test clips. In parentheses, the verdict against it. "
        "Streaming and per-frame models have no such figure: their card Dice is already that of each newest frame.",
        "",
        "Column *app on card's patients*: the same model run the same way on the held-out patients its card "
        "lists (its training seed), so *card - that* is what the app's scoring (mask at the source resolution, "
        "every frame through the real pipeline) already costs on the card's own patients, and *that - fresh* "
        "is what new patients add.",
        "",
        "| model | modality | slices | card Dice | card newest-frame Dice | card fresh-patients Dice | "
        "app on card's patients | fresh Dice [95% CI] | patients (frames) | poor / medium / good | QC: card MAE, r "
        "| QC: fresh MAE [CI], r | verdict | time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    filled = result.get("card_fields_filled")
    if filled:
        lines[3:3] = ["", f"Re-rendered {filled['date']} from this run's JSON (`--from-json`): "
                        + ", ".join(f"`{f}`" for f in filled["fields"]) + " taken from the current cards of "
                        + ", ".join(filled["models"]) + f" ({filled['why']})."]
    for m in result["models"]:
        if "error" in m:
            lines.append(f"| {m['id']} | {m['modality']} | - | - | - | - | - | error: {m['error']} | - | - | - | - "
                         f"| error | {m['elapsed_s']} s |")
            continue
        c, f, qc = m["card"], m["fresh"], m["qc"]
        cf = c.get("dice_fresh_patients")
        cf_text = f"{cf['mean']:.3f} {_ci(cf.get('ci95'))} ({m['verdict_dice_fresh_patients']})" if cf else "-"
        nf = c.get("dice_newest_frame")
        nf_text = "-" if nf is None else f"{nf:.3f} ({m.get('verdict_dice_newest_frame') or 'n/a'})"
        bins = " / ".join(_f(f["per_bin"][b]["dice"]) + f" (n={f['per_bin'][b]['patients']})"
                          for b in ("poor", "medium", "good"))
        qc_card = f"{_f(qc['card_mae'])}, {_f(qc['card_pearson'])}" if qc else "-"
        qc_fresh = f"{_f(qc['fresh_mae'])} {_ci(qc['fresh_mae_ci95'])}, {_f(qc['fresh_pearson'])}" if qc else "-"
        sl = "all" if m["slices"] is None else ("all 8" if len(m["slices"]) == s["cine_rendered_slices"]
                                                  else ",".join(map(str, m["slices"])))
        cp = m.get("card_patients")
        cp_text = "-" if not cp else f"error: {cp['error']}" if "error" in cp else \
            f"{_f(cp['dice'])} (n={len(cp['case_ids'])}, seed {cp['seed']})"
        lines.append(f"| {m['id']} | {m['modality']} | {sl} | {_f(c['dice'])} | {nf_text} | {cf_text} | {cp_text} "
                     f"| {_f(f['dice'])} "
                     f"{_ci(f['ci95'])} | {f['patients']} ({f['labelled_frames']}) | {bins} | {qc_card} | {qc_fresh} "
                     f"| {m['verdict']} | {m['elapsed_s']:.0f} s |")
    cine = [m for m in result["models"] if m.get("fresh") and m["fresh"].get("per_slice")]
    if cine:
        slices = sorted({int(z) for m in cine for z in m["fresh"]["per_slice"]})
        lines += ["", "Cine Dice per slice (0 = base), mean over patients:", "",
                  "| model | " + " | ".join(f"z={z}" for z in slices) + " |",
                  "|---|" + "---|" * len(slices)]
        for m in cine:
            lines.append(f"| {m['id']} | " + " | ".join(_f(m["fresh"]["per_slice"].get(str(z))) for z in slices) + " |")
    lines += ["", "Per class (fresh, mean over patients):", ""]
    for m in result["models"]:
        if m.get("fresh"):
            classes = ", ".join(f"{n} {_f(v)}" for n, v in m["fresh"]["per_class"].items())
            lines.append(f"- {m['id']}: {classes}; card: {m['card']['evaluated_on']}")
    qc_notes = [m for m in result["models"] if m.get("qc") and m["qc"]["card_scored_seg_model"] not in (None, m["id"])]
    for m in qc_notes:
        lines.append(f"- {m['id']}: its QC partner {m['qc']['model']}'s card scored "
                     f"{m['qc']['card_scored_seg_model']}, not this model")
    for s_ in result["skipped"]:
        lines.append(f"- skipped {s_['id']}: {s_['why']}")
    lines.append("")
    return "\n".join(lines)


def fill_card_fields(result: dict, models_dir=None, *, date: str | None = None) -> list[str]:
    """Add the ``CARD_FIELDS`` an older run's report lacks from the current cards; returns the ids filled.

    Only where the card is still the one the run checked (its ``metrics.dice.mean`` rounds to the
    report's card Dice); the verdict against the figure is added with it (from the run's fresh
    Dice and CI). The report records what was filled, when, and why (``card_fields_filled``).
    """
    from app.cards import ModelCardError
    from app.engine.models import find_model

    filled = []
    for m in result["models"]:
        c, fresh = m.get("card"), m.get("fresh")
        if not c or not fresh or all(f in c for f in CARD_FIELDS):
            continue
        try:
            card = find_model(m["id"], models_dir)
        except ModelCardError:
            continue
        dice = (card.metrics.get("dice") or {}).get("mean")
        if dice is None or c.get("dice") is None or _r(dice) != c["dice"]:
            continue  # another card now: its figures would not describe the model this run checked
        newest = _r(card.newest_frame_dice) if card.newest_frame_dice is not None else None
        c["dice_newest_frame"] = newest
        m["verdict_dice_newest_frame"] = verdict(newest, fresh["dice"], fresh["ci95"]) if newest is not None else None
        if newest is not None:
            filled.append(m["id"])
    if filled:
        result["card_fields_filled"] = {
            "date": date or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "fields": list(CARD_FIELDS), "models": filled,
            "why": "the run predates the field; the cards' metrics.dice is unchanged since"}
    return filled


def _boot_settings(result: dict) -> dict:
    """The run's own bootstrap resamples and seed (``settings.bootstrap``), for paired gaps rendered later."""
    boot = (result.get("settings") or {}).get("bootstrap") or {}
    return {"n_boot": int(boot.get("resamples", BOOTSTRAP)), "seed": int(boot.get("seed", 0))}


def paired_gaps(result: dict, reference: str, *, n_boot: int = BOOTSTRAP, seed: int = 0) -> list[dict]:
    """Every other model of ``reference``'s modality minus ``reference``, paired by patient: mean difference of
    the patients' Dice with a seeded bootstrap 95% CI over patients. Only models that saw the same slices of the
    same patients are paired (a slow cine model that saw fewer slices is left out, with the reason)."""
    models = {m["id"]: m for m in result["models"] if m.get("fresh")}
    if reference not in models:
        raise ValueError(f"--paired-to {reference}: not among the run's scored models ({', '.join(models) or 'none'})")
    ref = models[reference]
    ref_dice = {p["case_id"]: p["dice"] for p in ref["patients"]}
    rows = []
    for m in models.values():
        if m["id"] == reference or m["modality"] != ref["modality"]:
            continue
        if m.get("slices") != ref.get("slices"):
            rows.append({"model": m["id"], "reference": reference, "why_not": f"saw slices {m.get('slices')}, "
                         f"{reference} {ref.get('slices')}"})
            continue
        diffs = [p["dice"] - ref_dice[p["case_id"]] for p in m["patients"]
                 if p["case_id"] in ref_dice and p["dice"] is not None and ref_dice[p["case_id"]] is not None]
        rows.append({"model": m["id"], "reference": reference, "patients": len(diffs),
                     "mean_diff": _r(float(np.mean(diffs))) if diffs else None,
                     "ci95": bootstrap_ci(diffs, n_boot=n_boot, seed=seed),
                     "better_on": int(sum(d > 0 for d in diffs))})
    return rows


def paired_markdown(rows: list[dict]) -> str:
    """The paired gaps of ``paired_gaps`` as a Markdown table."""
    if not rows:
        return ""
    lines = [f"Paired by patient against {rows[0]['reference']} (model minus it; mean [bootstrap 95% CI over patients]):",
             "", "| model | Dice difference | better on patients |", "|---|---|---|"]
    for r in rows:
        if "why_not" in r:
            lines.append(f"| {r['model']} | not paired: {r['why_not']} | - |")
        else:
            lines.append(f"| {r['model']} | {r['mean_diff']:+.3f} {_ci(r['ci95'])} | {r['better_on']} of {r['patients']} |")
    return "\n".join(lines) + "\n"


def write_report(result: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "fresh_draws.json", out / "fresh_draws.md"
    js.write_text(json.dumps(result, indent=1) + "\n")
    paired = result.get("paired")
    md.write_text(markdown(result) + ("\n" + paired_markdown(paired) if paired else ""))
    return js, md


def render_from_json(path: Path, out: Path, models_dir=None, paired_to: str | None = None) -> int:
    """``--from-json``: re-render a saved run (see ``fill_card_fields``; ``paired_to``: add ``paired_gaps``);
    2 when the file is unreadable or the reference is not in it."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    if paired_to is not None:
        try:
            result["paired"] = paired_gaps(result, paired_to, **_boot_settings(result))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    filled = fill_card_fields(result, models_dir)
    js, md = write_report(result, out)
    print(f"filled {', '.join(CARD_FIELDS)} of {', '.join(filled)} from their cards" if filled
          else "no card figures to fill")
    print(f"wrote {js} and {md}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=20, help="fresh patients per modality (default 20)")
    ap.add_argument("--seed", type=int, default=FRESH_SEED, help=f"phantom seed no split used (default {FRESH_SEED})")
    ap.add_argument("--models", nargs="+", metavar="ID", help="segmentation model ids (default: every shipped seg "
                                                              "model, INT8 duplicates only when fast)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench", help="folder for fresh_draws.{json,md}")
    ap.add_argument("--models-dir", type=Path, help="folder of model cards (default: the shipped models/)")
    ap.add_argument("--echo-frames", type=int, help=f"frames per echo patient (default {RENDER['echo']['n_frames']})")
    ap.add_argument("--cine-frames", type=int, help=f"frames per cine slice (default {RENDER['cine']['n_frames']})")
    ap.add_argument("--cine-slices", type=int, help="cine slices per patient for every cine model, spread base to "
                                                    f"apex (default all {RENDER['cine']['n_slices']})")
    ap.add_argument("--slow-cine-slices", type=int, default=SLOW_CINE_SLICES,
                    help=f"cine slices per patient for slow models (default {SLOW_CINE_SLICES})")
    ap.add_argument("--slow-ms", type=float, default=SLOW_MS, help=f"card p50 from which a model is slow "
                                                                   f"(default {SLOW_MS:.0f})")
    ap.add_argument("--bootstrap", type=int, default=BOOTSTRAP, help=f"bootstrap resamples (default {BOOTSTRAP})")
    ap.add_argument("--no-card-patients", dest="card_patients", action="store_false",
                    help="skip the run on each card's own held-out patients")
    ap.add_argument("--recordings", type=Path, help="keep the recordings and validate reports here (default: a "
                                                    "temporary folder)")
    ap.add_argument("--from-json", type=Path, metavar="JSON",
                    help="run nothing: write fresh_draws.{json,md} again from an earlier run's fresh_draws.json, "
                         "with the card figures it predates filled in from the current cards")
    ap.add_argument("--paired-to", metavar="ID", help="also report every other model of its modality minus ID, "
                    "paired by patient (with --from-json too)")
    args = ap.parse_args(argv)
    if args.from_json is not None:
        return render_from_json(args.from_json, args.out, args.models_dir, args.paired_to)
    for name in ("patients", "echo_frames", "cine_frames", "cine_slices", "slow_cine_slices", "bootstrap"):
        value = getattr(args, name)
        if value is not None and value < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        result = run(patients=args.patients, seed=args.seed, model_ids=args.models, models_dir=args.models_dir,
                     echo_frames=args.echo_frames, cine_frames=args.cine_frames, cine_slices=args.cine_slices,
                     slow_cine_slices=args.slow_cine_slices, slow_ms=args.slow_ms, recordings=args.recordings,
                     n_boot=args.bootstrap, card_patients=args.card_patients)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["command"] = "python bench/fresh_draws.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.paired_to is not None:
        try:
            result["paired"] = paired_gaps(result, args.paired_to, **_boot_settings(result))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
    js, md = write_report(result, args.out)
    print(markdown(result))
    print(f"wrote {js} and {md}")
    return 1 if any("error" in m for m in result["models"]) else 0


if __name__ == "__main__":
    sys.exit(main())
