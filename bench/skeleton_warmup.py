"""Does the segqc-hw U-net skeleton supernet learn to segment during its weight-only warm-up?

Trains the skeleton supernet's weights (seg alone: CE + soft Dice, the search's loss with lambda1 = 0; the
QC error never reaches the seg net when its input is detached, so this is also the joint warm-up's seg
gradient under ``detach_qc_input``) on a finished run's cached S1 patients, for a few epochs, under one
path regime, and prints the mean hard Dice of its own training batches per epoch (the search log's
``Dice(S1)``):

* ``gdas``: one path per step, every block and width drawn uniformly (GDAS / SPOS at uniform alphas: what
  the search's warm-up runs with ``--sampler gdas``);
* ``soft``: the uniform softmax mixture of every candidate (DARTS; ~3.7x the cost of a step here);
* ``fixed``: one fixed path, the largest widths and the first block (``c2``): the supernet as one U-net;
* ``derived``: that U-net built on its own (``SkeletonUNet``), not a supernet.

``--blocks`` narrows the block candidates (e.g. ``c2 c1``). Issue 16 found that ``gdas`` over
``c2 c1 s2 s1`` collapses to background (Dice 0 by epoch 8) while ``gdas`` over ``c2 c1``, ``soft`` and
``fixed`` learn; see README "A skeleton supernet that collapses"::

    python bench/skeleton_warmup.py --run runs/segqc-hw/skeleton-probe --regime gdas --blocks c2 c1 --epochs 8

Prints one line per epoch and a JSON summary. One CPU-heavy job (2 torch threads by default).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

REGIMES = ("gdas", "soft", "fixed", "derived")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a segqc-hw run folder with data/cases_s1.npz")
    p.add_argument("--regime", choices=REGIMES, default="gdas")
    p.add_argument("--blocks", nargs="+", default=None, help="candidate block tokens (default: the config's)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-threads", type=int, default=2)
    args = p.parse_args(argv)

    import torch

    from search.core.derived.unet_skeleton import SkeletonUNet
    from search.core.mixed import ArchWeighting
    from search.methods.segqc_hw.config import preset
    from search.methods.segqc_hw.data import frame_dataset, loader, read_cached
    from search.methods.segqc_hw.networks import SegLogits
    from search.methods.segqc_hw.search import build_supernets
    from search.train.losses import dice_of_prediction, segmentation_loss

    torch.set_num_threads(args.torch_threads)
    cfg = preset("default")
    space = replace(cfg.space, seg_space="skeleton")
    if args.blocks:
        space = replace(space, skeleton_blocks=tuple(args.blocks))
    cfg = replace(cfg, space=space)
    s1 = read_cached(args.run / "data")["s1"]
    seg, _ = build_supernets(cfg, args.seed)
    net = seg.net
    if args.regime == "fixed":  # logits so peaked that the softmax is one-hot to float precision
        with torch.no_grad():
            for name, a in net.skeleton_arch.items():
                a.zero_()
                a[-1 if name.startswith("width") else 0] = 30.0
    elif args.regime == "gdas":
        seg.weighting = ArchWeighting.gdas(torch.Generator().manual_seed(args.seed), 10.0)
    if args.regime == "derived":
        torch.manual_seed(args.seed)
        widest = replace(net.decode(), levels=tuple(replace(lv, width=max(ws), op="c", convs=2)
                                                    for lv, ws in zip(net.decode().levels, space.skeleton_widths)))
        seg = SegLogits(SkeletonUNet(widest, 3, cfg.task.num_classes))
        params = list(seg.parameters())
    else:
        params = [w for n, w in seg.named_parameters() if "skeleton_arch" not in n]
    opt = torch.optim.Adam(params, lr=cfg.search.weight_lr, weight_decay=cfg.search.weight_decay)
    ds = frame_dataset(s1, cfg.data.resolution, cfg.data.augment, seed=args.seed * 10 + 3)
    curve = []
    for epoch in range(args.epochs):
        t0, dice, n = time.perf_counter(), 0.0, 0
        seg.train()
        for x, y in loader(ds, cfg.search.batch_size, args.seed * 1000 + epoch):
            logits = seg(x)
            loss = segmentation_loss(logits, y, dice_weight=cfg.search.seg_dice_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            dice += float(dice_of_prediction(logits.detach(), y).mean())
            n += 1
        curve.append(round(dice / n, 4))
        print(f"{args.regime} epoch {epoch + 1}: Dice(S1) {curve[-1]:.3f}, {time.perf_counter() - t0:.1f} s", flush=True)
    print(json.dumps({"run": str(args.run), "regime": args.regime, "blocks": list(space.skeleton_blocks),
                      "widths": [list(w) for w in space.skeleton_widths], "seed": args.seed,
                      "dice_s1_per_epoch": curve}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
