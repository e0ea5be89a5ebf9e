"""Is a segqc-hw search's architecture gradient a signal or a random walk? Read it off a search checkpoint.

For one ``search.pt`` of a segqc-hw joint search (``runs/<method>/<preset>/search/<variant>/seed<k>/``),
reports, per architecture parameter:

* ``abs_max``: the largest |alpha| reached, and ``steps``: the architecture steps Adam took;
* ``adam_update_over_lr``: the mean |Adam update| of the last step over the learning rate, from the saved
  moments (bias-corrected ``m / (sqrt(v) + eps)``): how far each step moves an alpha, in units of lr;
* ``random_walk_bound``: ``sqrt(steps) * lr``, where |alpha| ends if every step moves by lr in a random
  direction, beside ``steps * lr``, where it ends if every step pushes the same way.

and, over ``--batches`` S2 batches at the checkpoint's weights, the architecture gradient of the search
loss (lambda2 = 0) under both samplers: mean |g| and ``|mean g| / mean |g|`` (1: every batch agrees on
each gradient's sign and size; near 0: they cancel), and where the search's weight decay stops the alphas
(``decay_equilibrium``): Adam adds ``wd * alpha`` to the gradient (coupled L2) and normalises the sum, so an
alpha whose mean gradient is ``gbar`` stops moving at ``|alpha| = gbar / wd``, however many steps it takes
and whatever its learning rate; with gradients of ~1e-3 and DARTS' wd = 1e-3 that is below 1 (issue 16:
why the B-mode searches' entropy hardly fell). Figures of issue 16's README section "A warm-up until
the supernet segments" (B-mode GDAS run ``runs/segqc-hw-bmode/gdas-warm``)::

    python bench/arch_step_noise.py --run runs/segqc-hw-bmode/gdas-warm --variant nohw

Prints JSON. Reads the run's config and cached S2 patients; trains nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python bench/arch_step_noise.py``
    sys.path.insert(0, str(ROOT))


def adam_figures(saved: dict) -> list[dict]:
    """Per architecture parameter: steps, mean |update| / lr from the saved Adam moments."""
    group = saved["opt_arch"]["param_groups"][0]
    beta1, beta2 = group["betas"]
    out = []
    for index, state in sorted(saved["opt_arch"]["state"].items()):
        steps = float(state["step"])
        m = state["exp_avg"] / (1 - beta1 ** steps)
        v = state["exp_avg_sq"] / (1 - beta2 ** steps)
        update = (m / (v.sqrt() + group["eps"])).abs().mean()
        out.append({"index": int(index), "steps": int(steps), "adam_update_over_lr": float(update),
                    "random_walk_bound": math.sqrt(steps) * group["lr"], "straight_line_bound": steps * group["lr"]})
    return out


def decay_equilibrium(mean_abs_grad: float, agreement: float, weight_decay: float) -> dict:
    """Where Adam's coupled L2 decay stops an alpha: ``|alpha| = mean gradient / wd``.

    ``cap``: if every batch pushed one way with the mean |g| (``mean_abs_grad / wd``); ``mean``: with the
    batches' agreement (``mean_abs_grad * agreement / wd``, the mean gradient's size). None without decay.
    """
    if weight_decay <= 0:
        return {"weight_decay": weight_decay, "cap": None, "mean": None}
    return {"weight_decay": weight_decay, "cap": mean_abs_grad / weight_decay,
            "mean": mean_abs_grad * agreement / weight_decay}


def gradient_agreement(seg, qc, cases, cfg, batches: int, seed: int) -> dict:
    """Architecture gradient of the search loss (lambda2 = 0) on ``batches`` S2 batches, per sampler."""
    import torch

    from search.core.mixed import ArchWeighting
    from search.methods.segqc_hw.data import frame_dataset, loader
    from search.methods.segqc_hw.framework import framework_loss, run_framework

    alphas = list(seg.arch_parameters()) + list(qc.arch_parameters())
    ds = frame_dataset(cases, cfg.data.resolution, cfg.data.augment, seed=seed)
    out = {}
    for sampler in ("darts", "gdas"):
        paths = torch.Generator().manual_seed(seed)
        grads = []
        for i, (x, y) in enumerate(loader(ds, cfg.search.batch_size, seed)):
            if i >= batches:
                break
            weighting = ArchWeighting.gdas(paths, 1.0) if sampler == "gdas" else None
            seg.weighting = qc.weighting = weighting
            seg.train(), qc.train()
            terms = framework_loss(run_framework(seg, qc, x, y), y, lambda1=cfg.search.lambda1, lambda2=0.0,
                                   seg_dice_weight=cfg.search.seg_dice_weight)
            g = torch.autograd.grad(terms.total, alphas, allow_unused=True)
            grads.append(torch.cat([(gi if gi is not None else torch.zeros_like(a)).flatten()
                                    for gi, a in zip(g, alphas)]))
        stacked = torch.stack(grads)
        out[sampler] = {"batches": len(grads), "mean_abs_grad": float(stacked.abs().mean()),
                        "agreement": float(stacked.mean(0).abs().mean() / stacked.abs().mean())}
    seg.weighting = qc.weighting = None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a segqc-hw run folder (config.json, data/, search/)")
    ap.add_argument("--variant", default="nohw", help="search under <run>/search/ (default nohw)")
    ap.add_argument("--seed", type=int, default=0, help="search seed folder and batch order (default 0)")
    ap.add_argument("--batches", type=int, default=6, help="S2 batches for the gradient agreement (default 6)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args(argv)

    import torch

    from search.methods.segqc_hw.config import SegQcConfig
    from search.methods.segqc_hw.data import read_cached
    from search.methods.segqc_hw.search import build_supernets
    from search.report.sections import config_from_dict, read_json

    torch.set_num_threads(args.threads)
    run = args.run.resolve()
    cfg = config_from_dict(SegQcConfig, read_json(run / "config.json"))
    checkpoint = run / "search" / args.variant / f"seed{args.seed}" / "search.pt"
    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint}: no search checkpoint (a finished or running segqc-hw search leaves one)")
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    seg, qc = build_supernets(cfg, args.seed)
    seg.load_state_dict(saved["seg"]), qc.load_state_dict(saved["qc"])
    alphas = {name: float(p.detach().abs().max()) for net in (seg.net, qc.net) for name, p in net.named_arch_parameters()}
    doc = {"checkpoint": str(checkpoint.relative_to(ROOT)) if checkpoint.is_relative_to(ROOT) else str(checkpoint),
           "epoch": int(saved["epoch"]), "alpha_abs_max": alphas, "adam": adam_figures(saved),
           "gradient": gradient_agreement(seg, qc, read_cached(run / "data")["s2_train"], cfg, args.batches,
                                          args.seed + 7)}
    decay = float(saved["opt_arch"]["param_groups"][0]["weight_decay"])
    doc["decay_equilibrium"] = {sampler: decay_equilibrium(g["mean_abs_grad"], g["agreement"], decay)
                                for sampler, g in doc["gradient"].items()}
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
