"""Per-frame skeleton networks retrained with other training seeds: is a difference the architecture or the seed?

The cine-skeleton search retrains its derived network once, with the U-net 2D baseline's schedule and seed, so two
searched networks that differ by .01 Dice (``16c2-16c2-48c2`` vs ``16c2-16c2-32c2``, the level-2 width the search
leaves undecided) may differ by their training seed alone. This retrains each given skeleton exactly as
``python -m search cine-skeleton`` does (same patients, clips, augmentation, steps, learning rate: the baselines
preset's cine recipe, ``search.methods.cine_skeleton.run.retrain``) with each given training seed (initialisation
and data order; the augmentation stream stays the preset's) and exports each as a per-frame card into
``--models-dir`` (id ``skel-<spec>-t<seed>``; no INT8), to score them on fresh patients with
``bench/fresh_draws.py --models-dir ... --paired-to ...``. Resumable: a card already there is kept.

    python bench/cine_skeleton_train_seeds.py --specs 16c2-16c2-48c2 16c2-16c2-32c2 --seeds 1 \
        --out runs/cine-skeleton/train-seeds --models-dir runs/cine-skeleton/train-seeds/models
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def model_id(spec: str, seed: int) -> str:
    return f"skel-{spec}-t{seed}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", nargs="+", required=True, metavar="SPEC", help="U-net skeletons, e.g. 16c2-16c2-48c2")
    ap.add_argument("--seeds", nargs="+", type=int, required=True, metavar="SEED", help="training seeds")
    ap.add_argument("--preset", default="default", help="cine-skeleton preset whose baselines recipe is used")
    ap.add_argument("--out", type=Path, required=True, help="checkpoints, one folder per network and seed")
    ap.add_argument("--models-dir", type=Path, required=True, help="where the cards are written")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    import torch

    from search.baselines.presets import get_preset as baseline_preset
    from search.baselines.run import cine_split, cine_train_dataset
    from search.core.derived.unet_skeleton import UNetSkeleton
    from search.methods.cine_skeleton.config import preset
    from search.methods.cine_skeleton.run import METHOD, retrain, ship_per_frame

    try:
        skeletons = [UNetSkeleton.parse(s) for s in args.specs]
        cfg = preset(args.preset)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(cfg.threads)
    bp = baseline_preset(cfg.baselines)
    split = cine_split(bp, None, METHOD)
    train = cine_train_dataset(bp, split["train"], per_frame=True)
    done = []
    for seed in args.seeds:
        schedule = dataclasses.replace(bp.cine_train, seed=seed)
        for skeleton in skeletons:
            mid = model_id(skeleton.spec, seed)
            if (args.models_dir / f"{mid}.json").is_file():
                logging.info("%s: card there, kept", mid)
                done.append(mid)
                continue
            folder = args.out / mid
            folder.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            net, losses = retrain(cfg, skeleton, train, folder, schedule)
            notes = (f"{skeleton.spec} retrained with training seed {seed} (the cine-skeleton {cfg.preset} recipe, "
                     f"{bp.name} baselines preset; bench/cine_skeleton_train_seeds.py).")
            ship_per_frame(net, skeleton, bp, split, None, losses, args.models_dir, model_id=mid, notes=notes,
                           quantize=False, extra={"training_seed": seed,
                                                  "train_seconds": round(time.perf_counter() - started, 1)})
            done.append(mid)
    print(json.dumps({"models": done, "models_dir": str(args.models_dir)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
