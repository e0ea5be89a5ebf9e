"""``python -m search segqc-hw``: joint segmentation + QC search for contrast echo (or B-mode: ``--task bmode``).

The paper: Zeng et al. 2021, arXiv:2109.06909 (full reference in ``docs/references.md``).

``--task contrast`` (default) is the paper's task: myocardium on contrast echo, run in
``runs/segqc-hw/<preset>``, report in ``docs/segqc``, models ``echo-segqc-hw-{seg,qc}``. ``--task bmode``
is standard B-mode apical four-chamber echo with 4 classes (background, LV, MYO, LA), run in
``runs/segqc-hw-bmode/<preset>``, report in ``docs/segqc-bmode``, models ``echo-bmode-segqc-hw-{seg,qc}``:
the two never overwrite each other.

Searches (with and without the latency term), derives, retrains from scratch beside the handcrafted
baselines, scores everything on held-out patients, measures Table II on this CPU, draws the report
and exports the winning seg + QC pair with model cards. Resumable: run the same command again
(``<out>/stages.json`` says which stages ran or were skipped, and why).
"""

from __future__ import annotations

import argparse

from search.methods.segqc_hw.tasks import TASKS

PRESET_HELP = ("smoke: end to end in under a minute (tests); default: 2-core CPU, ~1 h on shared cores; "
               "paper: the paper's schedule (80 epochs, 5 seeds, 256x256), for a GPU")


def configure(parser: argparse.ArgumentParser) -> None:
    from search.methods.common_cli import add_method_arguments

    add_method_arguments(parser, method="segqc-hw", preset_help=PRESET_HELP,
                         device_help="torch device for the searches and retraining (cpu, cuda); evaluation, "
                                     "latency and export always run on the CPU")
    parser.add_argument("--task", choices=TASKS, default="contrast",
                        help="contrast: contrast echo, myocardium (the paper's task; not on the B-mode datasets CAMUS "
                             "and EchoNet); bmode: B-mode apical four-chamber "
                             "echo, 4 classes (background, LV, MYO, LA) with --data phantom or camus:DIR, run in "
                             "runs/segqc-hw-bmode/<preset>, report in docs/segqc-bmode, models echo-bmode-segqc-hw-* "
                             "(default contrast)")
    parser.add_argument("--retrain-epochs", type=int, nargs=2, metavar=("SEG", "QC"), default=None,
                        help="override the preset's retraining epochs (e.g. a convergence check in another --out "
                             "that reuses a finished run's search/, data/ and latency/ folders)")
    parser.add_argument("--sampler", choices=("darts", "gdas"), default=None,
                        help="how a search step weighs each edge's candidates: darts runs all of them (softmax mixture, "
                             "the paper), gdas runs one drawn by a hard straight-through Gumbel-softmax sample (GDAS; "
                             "much cheaper steps) (default: the preset's, darts)")
    parser.add_argument("--gdas-tau", type=float, nargs=2, metavar=("START", "END"), default=None,
                        help="GDAS temperature, annealed linearly over the architecture steps (default 10 0.1)")
    parser.add_argument("--search-epochs", type=int, nargs=2, metavar=("WARMUP", "ALTERNATE"), default=None,
                        help="override the preset's search schedule: weight-only warm-up epochs, then alternating "
                             "(weight step, architecture step) epochs")
    parser.add_argument("--arch-lr", type=float, default=None, metavar="LR",
                        help="Adam learning rate of the architecture parameters (default: the preset's)")
    parser.add_argument("--arch-weight-decay", type=float, default=None, metavar="WD",
                        help="Adam (L2) weight decay of the architecture parameters (default: the preset's, DARTS' "
                             "1e-3). Adam normalises the decayed gradient, so an alpha stops where WD x alpha equals "
                             "its mean task gradient: with the ~1e-3 gradients of these searches, 1e-3 holds every "
                             "alpha below ~0.7; 0 lets the search decide")
    parser.add_argument("--weight-lr", type=float, default=None, metavar="LR",
                        help="Adam learning rate of the supernets' weights during the search (default: the preset's)")
    parser.add_argument("--warmup-until-dice", type=float, nargs=2, metavar=("DICE", "MAX_EPOCHS"), default=None,
                        help="go on warming up past the preset's warm-up epochs until the supernet's mean Dice on its "
                             "training batches reaches DICE, at most MAX_EPOCHS warm-up epochs in all (the architecture "
                             "steps of a supernet that still predicts background follow noise); 0 0: a fixed warm-up")
    parser.add_argument("--seg-init-filters", type=int, default=None, metavar="N",
                        help="width of the segmentation space: channels after its stem (default: the preset's, the "
                             "paper's 4); the handcrafted U-net(8) starts at 8")
    parser.add_argument("--stem-convs", type=int, default=None, metavar="N",
                        help="3x3 conv layers of the segmentation stem at full resolution (default: the preset's, the "
                             "paper's 1; a U-net's first level has 2)")
    parser.add_argument("--nodes", type=int, default=None, metavar="M",
                        help="intermediate nodes per cell, seg and QC (default: the preset's, the paper's 3)")
    parser.add_argument("--droppable-inputs", nargs="?", const="all", choices=("all", "prev-prev"), default=None,
                        help="let the segmentation cells' input edges be dropped too (zero is a candidate; not in the "
                             "paper): all (the default of the flag): each cell may read only its previous cell, so "
                             "with --nodes 2 --seg-init-filters 8 a residual U-net(8) is a point of the space, but an "
                             "Up cell may also read only its skip and leave the lower U dead; prev-prev: only the "
                             "prev-prev input may be dropped, every cell reads the level next to it")
    parser.add_argument("--input-cost", choices=("always", "by-use"), default=None,
                        help="how the latency term prices the alignment of a droppable cell input: always (default), "
                             "or by-use: by the probability that some edge reads it (a derived cell that drops the "
                             "input does not build it)")
    parser.add_argument("--lambda2", type=float, default=None, metavar="L",
                        help="latency weight of the hardware-aware search (default: the preset's, the paper's 0.001)")
    parser.add_argument("--latency-budget", type=float, default=None, metavar="MS",
                        help="charge only the expected latency (seg + QC, lookup-table ms) above MS: the hardware-aware "
                             "searches push latency down to the budget and below it choose by accuracy alone (default: "
                             "no budget, the paper's lambda2 x every ms)")
    parser.add_argument("--sandwich", action="store_true",
                        help="--space skeleton: every weight step also trains the seg supernet's widest and narrowest "
                             "networks (the sandwich rule of slimmable networks / BigNAS), so the search compares "
                             "widths whose shared weights trained alike; two more seg passes per weight step; not under "
                             "torchrun")
    parser.add_argument("--sensitivity-lambda2", type=float, nargs="*", default=None, metavar="L",
                        help="latency weights of the extra hardware-aware searches reported beside Table II (default: "
                             "the preset's, 0.01); none: no extra search")
    parser.add_argument("--no-random-controls", dest="random_controls", action="store_false",
                        help="leave out the random control of each search (a random genotype of its predicted latency, "
                             "retrained alike: the report's searched-vs-random verdict; never shipped): one retraining "
                             "fewer per search")
    parser.add_argument("--search-seeds", type=int, nargs="+", default=None, metavar="S",
                        help="seeds of every search (default: the preset's, 0); each seed's pair is retrained, Table II "
                             "shows the one best on validation and the report lists them all with their Dice spread")
    parser.add_argument("--space", choices=("cells", "skeleton"), default=None,
                        help="segmentation search space: cells (the paper's NAS-Unet cells, default) or skeleton (issue "
                             "16: a U-net whose every level's width and block -- dense or depthwise-separable 3x3 convs, "
                             "one or two -- is searched, FBNet-style with channel masks, at half resolution by default; "
                             "the QC space is the paper's either way)")
    parser.add_argument("--skeleton-widths", nargs="+", default=None, metavar="W,W,...",
                        help="--space skeleton: candidate widths per level, full resolution first, e.g. 8,12,16 "
                             "16,24,32 32,48,64 64,96,128 (the default)")
    parser.add_argument("--skeleton-blocks", nargs="+", default=None, metavar="TOKEN",
                        help="--space skeleton: candidate blocks, op letter (c dense, s separable) and convs, e.g. "
                             "c2 c1 (the default: dense only; with s2 s1 the GDAS warm-up collapses to background, "
                             "bench/skeleton_warmup.py)")
    parser.add_argument("--input-stride", type=int, choices=(1, 2), default=None,
                        help="--space skeleton: 2 (default): the U runs at half resolution behind a stride-2 entry "
                             "conv, logits upsampled x2; 1: full resolution")
    parser.add_argument("--searches", nargs="+", default=None, metavar="NAME",
                        help="with --stop-after search: run only these searches, by folder name (nohw, hw, "
                             "hw_lambda<L>), e.g. to study the hardware-aware search alone")
    parser.add_argument("--stop-after", choices=("data", "search", "retrain", "all"), default="all",
                        help="stop after this stage (train on a GPU machine, then run again on the target CPU "
                             "to measure Table II and export; data: only cache the patients, e.g. for "
                             "bench/size_table.py)")


def run(args: argparse.Namespace) -> int:
    import logging
    from dataclasses import replace

    from search import distributed
    from search.methods.common_cli import run_places, with_runtime
    from search.methods.segqc_hw.config import preset
    from search.methods.segqc_hw.experiment import RunPaths, run_segqc_hw, searches

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):  # the ONNX exporter's stage-by-stage chatter
        logging.getLogger(noisy).setLevel(logging.WARNING)
    distributed.init_from_env()  # under torchrun: join the process group (rank 0 alone logs and writes)
    cfg = with_runtime(preset(args.preset, seed=args.seed, task=getattr(args, "task", "contrast")), args)
    from search.methods.common_cli import with_data

    from search.methods.common_cli import data_spec
    from search.methods.segqc_hw.tasks import data_refusal

    task = cfg.task
    refusal = data_refusal(task.name, data_spec(args).kind)  # B-mode datasets never train the contrast task
    if refusal:
        raise SystemExit(f"{task.method_label}: --data {data_spec(args).kind}: {refusal}")
    cfg = with_data(cfg, args, task.need, task.method_label)  # --data: checked here, read by load_protocol
    if args.retrain_epochs is not None:
        seg_epochs, qc_epochs = args.retrain_epochs
        cfg = replace(cfg, retrain=replace(cfg.retrain, seg_epochs=seg_epochs, qc_epochs=qc_epochs))
    search = cfg.search
    if getattr(args, "sampler", None) is not None:
        search = replace(search, sampler=args.sampler)
    if getattr(args, "gdas_tau", None) is not None:
        search = replace(search, gdas_tau=tuple(args.gdas_tau))
    if getattr(args, "arch_lr", None) is not None:
        search = replace(search, arch_lr=args.arch_lr)
    if getattr(args, "arch_weight_decay", None) is not None:
        if args.arch_weight_decay < 0:
            raise SystemExit(f"{task.method_label}: --arch-weight-decay must be >= 0, got {args.arch_weight_decay:g}")
        search = replace(search, arch_weight_decay=args.arch_weight_decay)
    if getattr(args, "weight_lr", None) is not None:
        search = replace(search, weight_lr=args.weight_lr)
    if getattr(args, "search_epochs", None) is not None:
        search = replace(search, warmup_epochs=args.search_epochs[0], alternate_epochs=args.search_epochs[1])
    if getattr(args, "warmup_until_dice", None) is not None:
        dice, max_epochs = args.warmup_until_dice
        if max_epochs != int(max_epochs):
            raise SystemExit(f"{task.method_label}: --warmup-until-dice: MAX_EPOCHS must be a whole number, "
                             f"got {max_epochs:g}")
        try:
            search = replace(search, warmup_min_dice=dice, warmup_max_epochs=int(max_epochs))
        except ValueError as err:
            raise SystemExit(f"{task.method_label}: --warmup-until-dice: {err}") from None
    if getattr(args, "input_cost", None) is not None:
        search = replace(search, input_cost=args.input_cost.replace("-", "_"))
    if getattr(args, "lambda2", None) is not None:
        search = replace(search, lambda2=args.lambda2)
    if getattr(args, "latency_budget", None) is not None:
        if args.latency_budget <= 0:
            raise SystemExit(f"{task.method_label}: --latency-budget must be > 0 ms, got {args.latency_budget:g}")
        search = replace(search, latency_budget_ms=args.latency_budget)
    if getattr(args, "sandwich", False):
        search = replace(search, sandwich=True)
    if getattr(args, "sensitivity_lambda2", None) is not None:
        search = replace(search, sensitivity_lambda2=tuple(args.sensitivity_lambda2))
    if getattr(args, "search_seeds", None) is not None:
        if len(set(args.search_seeds)) != len(args.search_seeds):
            raise SystemExit(f"{task.method_label}: --search-seeds: each seed once, got {args.search_seeds}")
        search = replace(search, seeds=tuple(args.search_seeds))
    if any(lam < 0 for lam in (search.lambda2, *search.sensitivity_lambda2)):
        raise SystemExit(f"{task.method_label}: latency weights must be >= 0")
    space = cfg.space
    for flag, name in (("seg_init_filters", "seg_init_filters"), ("nodes", "nodes"), ("stem_convs", "stem_convs")):
        value = getattr(args, flag, None)
        if value is not None:
            if value < 1:
                raise SystemExit(f"{task.method_label}: --{flag.replace('_', '-')} must be at least 1, got {value}")
            space = replace(space, **{name: value})
    if getattr(args, "droppable_inputs", None):
        space = replace(space, droppable_inputs=True, keep_prev=args.droppable_inputs == "prev-prev")
    space = _skeleton_space(args, space, task.method_label)
    if search.sandwich and space.seg_space != "skeleton":
        raise SystemExit(f"{task.method_label}: --sandwich only with --space skeleton (it trains the widest and "
                         "narrowest networks of the searched widths)")
    cfg = replace(cfg, search=search, space=space)
    places = run_places(args, method=task.run_method, docs_name=task.docs_name)
    paths = RunPaths(out=places.out, models=places.models_dir, docs=places.docs_dir)
    only = getattr(args, "searches", None)
    if only is not None and args.stop_after != "search":
        raise SystemExit(f"{task.method_label}: --searches needs --stop-after search (the retraining, Table II and "
                         "export need every search)")
    try:
        searches(cfg, only)
    except ValueError as e:
        raise SystemExit(f"{task.method_label}: --searches: {e}") from None
    summary = run_segqc_hw(cfg, paths, device=args.device, stop_after=args.stop_after, only_searches=only,
                           random_controls=getattr(args, "random_controls", True))
    if distributed.is_main():
        print(summary)
    return 0


def _skeleton_space(args: argparse.Namespace, space, label: str):
    """``--space`` and the skeleton space's flags applied to ``space`` (a ``SpaceConfig``)."""
    from dataclasses import replace

    flags = {"skeleton_widths": "--skeleton-widths", "skeleton_blocks": "--skeleton-blocks",
             "input_stride": "--input-stride"}
    given = {name: getattr(args, name) for name in flags if getattr(args, name, None) is not None}
    kind = getattr(args, "space", None) or space.seg_space
    if given and kind != "skeleton":
        raise SystemExit(f"{label}: {', '.join(flags[n] for n in given)} only with --space skeleton")
    if "skeleton_widths" in given:
        try:
            given["skeleton_widths"] = tuple(tuple(int(w) for w in level.split(",")) for level in given["skeleton_widths"])
        except ValueError:
            raise SystemExit(f"{label}: --skeleton-widths: each level is comma-separated whole numbers (e.g. 8,12,16), "
                             f"got {' '.join(args.skeleton_widths)}") from None
    if "skeleton_blocks" in given:
        given["skeleton_blocks"] = tuple(given["skeleton_blocks"])
    try:
        return replace(space, seg_space=kind, **given)
    except ValueError as err:
        raise SystemExit(f"{label}: --space skeleton: {err}") from None
