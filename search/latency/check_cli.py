"""``python -m search latency-check``: does the lookup table predict measured network latency?

Samples random discrete architectures from each space, builds and exports them, times them end to
end with onnxruntime, and compares with the table (raw sum, and the calibration fitted on half of
the networks, judged on the other half). Stores the calibration in the table's meta unless told
not to. Exit status 0 when every space meets MdAPE <= 10 % and Kendall tau >= 0.8 on its held-out
networks, 1 otherwise.

``--per-frame`` (issue 17) checks the per-frame table the same way: the same random architectures,
built causal and run as one streaming step (one new frame plus its state,
``search.export.stream_latency.sample_stream_networks``), timed end to end, against the sum of their
per-frame entries; the calibration goes into the per-frame table.

``--deployment`` and ``--shipped`` (issue 16, item 4: validate the predictor where it is used) read the
shipped model cards (``--models-dir``, ``search.report.shipped_latency``). ``--deployment`` samples each
space's random networks at the input size its shipped models run at in the app instead of the
preset's, ending in the output their card gives the app (a clip network's softmax,
``Deployment.as_deployed``); ``--shipped`` also rebuilds every shipped searched network of the checked spaces from its
card, times it in the same rounds as its space's random networks, and reports it apart (``shipped``:
measured, predicted raw and with the calibration fitted on the random networks, never on it);
baselines, streaming and INT8 models are listed under ``shipped_skipped`` with the reason. Every
space also reports nn-Meter's goal (at least 90 % of the networks within +-10 %) beside the
pass / fail targets, which do not change.

A command-line module (the CLI layer): ``parse_spaces`` registers every method's search space.
"""

from __future__ import annotations

import argparse
import logging
from functools import partial

from search.latency.profile_cli import PRESETS, SPACES, frame_size, parse_spaces

#: ``search.latency.measure.TIMINGS`` and ``CheckSettings.rounds``' default, spelled here so that building the
#: parser loads no onnxruntime or torch (a test checks that they agree).
TIMINGS = ("interleaved", "blocks")
DEFAULT_ROUNDS = 5


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", default=None, help="table JSON (default: this machine's, as `profile` writes it)")
    parser.add_argument("--spaces", default=None,
                        help=f"comma-separated spaces (default: {','.join(SPACES)}; with --per-frame, the clip (3D) ones)")
    parser.add_argument("--preset", choices=PRESETS, default="default",
                        help="supernet configuration the networks are sampled from (default: default)")
    parser.add_argument("--samples", type=int, default=50, help="random architectures per space (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="discarded runs per network (default 5)")
    parser.add_argument("--repeats", type=int, default=30,
                        help="least timed rounds per network; fast networks get more, up to 5x (default 30)")
    parser.add_argument("--group-size", type=int, default=50,
                        help="networks timed round-robin together (default 50: a whole space, so load drift hits them alike)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: the app's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling, split and timing order (default 0)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    parser.add_argument("--out", default=None, help="also write the figures and every network's record to this JSON file")
    parser.add_argument("--no-profile", action="store_true",
                        help="fail on keys missing from the table instead of measuring them first")
    parser.add_argument("--no-save", action="store_true", help="do not store the fitted calibration in the table")
    parser.add_argument("--per-frame", action="store_true",
                        help="check the per-frame (streaming) table: networks run one new frame plus their state "
                             "(default table: <machine>-stream.json)")
    parser.add_argument("--frame-size", type=frame_size, default=None, metavar="HxW",
                        help="with --per-frame: frames of this size instead of the preset's (as profile --frame-size)")
    parser.add_argument("--deployment", action="store_true",
                        help="sample each space's networks at the input size its shipped models run at in the app "
                             "(the input shape of its segmentation card in --models-dir: the one marked default, "
                             "else contrast echo first, else by id) instead of the preset's, ending in the output that "
                             "card gives the app (a clip network's softmax); the summary names the card")
    parser.add_argument("--shipped", action="store_true",
                        help="also rebuild every shipped searched network of the checked spaces from its card's "
                             "architecture (a segqc-hw seg card with its QC partner, as the app runs the pair), at its "
                             "card's input size, time it with its space's random networks and report it apart "
                             "('shipped': measured, predicted raw and calibrated on the random networks, error, share "
                             "within +-10%%); never fitted on. Baselines, streaming and INT8 models are listed under "
                             "'shipped_skipped' with the reason")
    parser.add_argument("--sparse-share", type=float, default=0.0, metavar="F",
                        help="draw this share of each space's random networks sparse, as the searches ship them: "
                             "multi-scale paths with each step a skip with probability 0.5-0.95, segqc cells with each "
                             "op weight-free with that probability; cheaper than uniform draws, so the calibration is "
                             "fitted and checked where the searches land (default 0: uniform draws only, the networks "
                             "drawn before the option existed)")
    parser.add_argument("--timing", choices=TIMINGS, default="interleaved",
                        help="interleaved: each network runs once per round, round-robin with the others (default); "
                             "blocks: each network runs a warm block of back-to-back runs per round, as the app runs "
                             "a model (the same number of timed runs, spread over --rounds blocks)")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"with --timing blocks: blocks per network (default {DEFAULT_ROUNDS})")
    parser.add_argument("--models-dir", default=None,
                        help="shipped model cards for --deployment / --shipped (default: the app's models/)")


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    import torch

    from search.latency.calibration import GLOBAL
    from search.latency.check import (
        GOAL_WITHIN_10PCT,
        CheckSettings,
        evaluate,
        measure_networks,
        shipped_figures,
        store_calibration,
    )
    from search.latency.core_adapter import sample_networks
    from search.latency.lut import LatencyTable, hardware_fingerprint
    from search.latency.measure import effective_threads, runtime_name
    from search.latency.profiler import OpProfiler, ProfileSettings, default_table_path

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    log = logging.getLogger("search.latency.check")
    torch.set_num_threads(1)
    if args.samples < 4:
        raise SystemExit("--samples: need at least 4 networks per space (half fit, half held out)")
    per_frame = bool(getattr(args, "per_frame", False))
    size = getattr(args, "frame_size", None)
    if size is not None and not per_frame:
        raise SystemExit("--frame-size needs --per-frame")
    if args.rounds is not None and args.timing != "blocks":
        raise SystemExit("--rounds counts the warm blocks of --timing blocks; add --timing blocks or drop it")
    rounds = DEFAULT_ROUNDS if args.rounds is None else args.rounds
    if rounds < 1:
        raise SystemExit(f"--rounds: need at least one block per network, got {rounds}")
    deployment, shipped = bool(getattr(args, "deployment", False)), bool(getattr(args, "shipped", False))
    if not 0.0 <= args.sparse_share <= 1.0:
        raise SystemExit(f"--sparse-share: need a share in [0, 1], got {args.sparse_share:g}")
    if per_frame and args.sparse_share:
        raise SystemExit("--sparse-share works on the clip check; drop it with --per-frame")
    if per_frame and (deployment or shipped):
        raise SystemExit("--deployment / --shipped check clip and image models; for the streaming models use "
                         "--per-frame --frame-size HxW (their card's frame size)")
    spaces = parse_spaces(args.spaces, per_frame=per_frame, preset=args.preset)
    cards = _shipped_cards(getattr(args, "models_dir", None)) if deployment or shipped else []
    deployments = {}
    if deployment:
        from search.report.shipped_latency import deployment_for

        try:
            deployments = {space: deployment_for(space, cards) for space in spaces}
        except ValueError as exc:
            raise SystemExit(f"--deployment: {exc}") from None
    settings = CheckSettings(samples=args.samples, warmup=args.warmup, repeats=args.repeats,
                             group_size=args.group_size, intra_op_threads=args.threads, seed=args.seed,
                             timing=args.timing, rounds=rounds)
    path = Path(args.table) if args.table else default_table_path(args.threads, per_frame=per_frame)
    table = LatencyTable.load(path) if path.exists() else LatencyTable(path=str(path))
    if per_frame:
        from search.export import stream_latency

        def sampler(space: str, preset: str, n: int, seed: int):
            return stream_latency.sample_stream_networks(space, preset, n, seed, size)
    else:
        sampler = partial(sample_networks, sparse_share=args.sparse_share) if args.sparse_share else sample_networks

    shipped_nets, shipped_skipped = [], []
    if shipped:
        from search.report.shipped_latency import shipped_networks

        shipped_nets, shipped_skipped = shipped_networks(spaces, cards, seed=args.seed)
        for skip in shipped_skipped:
            log.info("shipped %s: skipped: %s", skip["id"], skip["reason"])
    networks = []
    for space in spaces:
        if space in deployments:  # only then the size argument: a sampler without one still works
            dep = deployments[space]
            sampled = [dep.as_deployed(net) for net in sampler(space, args.preset, args.samples, args.seed,
                                                                size=dep.size)]
            log.info("%s: %d networks sampled at %s (card %s, its %s output)", space, len(sampled),
                     "x".join(map(str, dep.input_shape)), dep.card, dep.interface or "own")
        else:
            sampled = list(sampler(space, args.preset, args.samples, args.seed))
            log.info("%s: %d networks sampled", space, len(sampled))
        own = [net for net in shipped_nets if net.space == space]  # timed in the same rounds
        if shipped:
            log.info("%s: %d shipped networks: %s", space, len(own), ", ".join(net.model_id for net in own) or "none")
        networks += sampled + own
    missing = table.missing(k for net in networks for k in net.keys)
    if missing:
        if args.no_profile:
            table.get(missing[0])  # raises MissingLatencyKey naming it
        log.info("%d op signatures missing from %s; measuring them first", len(missing), path)
        settings_ = ProfileSettings(intra_op_threads=args.threads, per_frame=per_frame)
        if per_frame:
            stream_latency.stream_profiler(table, settings_, save_to=path).profile(missing)
        else:
            OpProfiler(table, settings_, save_to=path).profile(missing)

    def progress(done: int, total: int, records) -> None:
        log.info("measured %d / %d networks", done, total)
        if args.out:  # partial results survive an interrupted run
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({"partial": True, "table": str(path), "preset": args.preset,
                                                  "networks": [r.to_dict() for r in records]}))

    records = measure_networks(networks, table, settings, progress=progress)
    result = evaluate(records, settings)  # fits on the random networks only
    threads = effective_threads(args.threads)
    for space, figs in result.spaces.items():
        timed = next((r for r in records if r.space == space and r.model_id is None), None)
        figs["input_shape"] = list(timed.input_shape) if timed is not None and space != GLOBAL else None
        figs["size_from"] = (f"card {deployments[space].card}" if space in deployments
                             else None if space == GLOBAL else "--frame-size" if size else f"preset {args.preset}")
        figs["threads"] = threads
    machine = {
        "description": f"{hardware_fingerprint()['logical_cores']}-core {hardware_fingerprint()['machine']} CPU, "
                       f"{runtime_name()}",
        "hardware": hardware_fingerprint(),
        "runtime": runtime_name(),
        "threads": threads,
    }
    summary = {
        "machine": machine,
        "table": str(path),
        "table_entries": len(table),
        "preset": args.preset,
        "per_frame": per_frame,
        "frame_size": list(size) if size else None,
        "settings": {"samples": settings.samples, "warmup": settings.warmup, "repeats": settings.repeats,
                     "group_size": settings.group_size, "min_timed_ms": settings.min_timed_ms,
                     "fit_fraction": settings.fit_fraction, "seed": settings.seed,
                     "sparse_share": args.sparse_share, "timing": settings.timing,
                     "rounds": settings.rounds if settings.timing == "blocks" else None},
        "targets": {"mdape_pct_max": 10.0, "kendall_tau_min": 0.8, "judged_on": "calibrated_held_out"},
        "goal": {"within_10pct_min_share": GOAL_WITHIN_10PCT, "judged_on": "calibrated_held_out",
                 "note": "nn-Meter's accuracy goal (issue 16); reported, not part of the pass / fail rule"},
        "deployment": {space: dep.to_dict() for space, dep in deployments.items()} if deployment else None,
        "spaces": result.spaces,
        "passed": result.passed(),
    }
    if deployment or shipped:
        summary["models_dir"] = str(_models_dir(getattr(args, "models_dir", None)))
    if shipped:
        summary["shipped"] = shipped_figures(result.records)
        summary["shipped_skipped"] = shipped_skipped
    if not args.no_save:
        store_calibration(table, result, settings, machine,
                          fitted_on={"preset": args.preset, "sparse_share": args.sparse_share,
                                     "deployment": {space: dep.to_dict() for space, dep in deployments.items()} or None})
        table.save(path)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({**summary, "networks": [r.to_dict() for r in result.records]}, indent=1))
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        _print_table(summary)
    return 0 if result.passed() else 1


def _models_dir(text: str | None):
    from pathlib import Path

    from app.cards import default_models_dir

    return Path(text) if text else default_models_dir()


def _shipped_cards(text: str | None) -> list:
    """The model cards of ``--models-dir`` (``app.cards.discover``); a missing folder or a bad card ends the run."""
    from app.cards import ModelCardError, discover

    folder = _models_dir(text)
    if not folder.is_dir():
        raise SystemExit(f"--models-dir: {folder} is not a folder of model cards")
    try:
        return discover(folder)
    except ModelCardError as exc:
        raise SystemExit(f"--models-dir: {exc}") from None


def _pct(share) -> str:
    return "   -" if share is None else f"{share:4.0%}"


def _print_table(summary: dict) -> None:
    kind = "per new frame (streaming step)" if summary.get("per_frame") else "per clip / image"
    goal = summary.get("goal", {}).get("within_10pct_min_share", 0.9)
    print(f"machine: {summary['machine']['description']}, {summary['machine']['threads']} threads; latency {kind}")
    for space, dep in (summary.get("deployment") or {}).items():
        partner = f" + {dep['partner']}" if dep.get("partner") else ""
        others = f" (other sizes: {dep['other_shapes']})" if dep.get("other_shapes") else ""
        print(f"{space}: deployment input {'x'.join(map(str, dep['input_shape']))} from card {dep['card']}{partner}{others}")
    print(f"{'space':8s} {'input':>14s} {'n':>4s} {'median ms':>10s} | {'raw MdAPE':>9s} {'RMSPE':>7s} {'tau':>6s} "
          f"{'+-10%':>5s} | {'fit MdAPE':>9s} | {'held-out MdAPE':>14s} {'RMSPE':>7s} {'tau':>5s} {'+-10%':>5s} | "
          f"targets | >={goal:.0%} in +-10%")
    for space, s in summary["spaces"].items():
        raw, fit, held = s["raw"], s["calibrated_fit"], s["calibrated_held_out"]
        shape = "x".join(map(str, (s.get("input_shape") or [])[1:])) or "-"
        met = (s.get("within_10pct_goal") or {}).get("calibrated_held_out")
        print(f"{space:8s} {shape:>14s} {s['networks']:4d} {s['measured_ms']['median']:10.2f} | {raw['mdape_pct']:8.1f}% "
              f"{raw['rmspe_pct']:6.1f}% {raw['kendall_tau']:6.3f} {_pct(raw['within_10pct'])} | "
              f"{fit['mdape_pct']:8.1f}% | {held['mdape_pct']:13.1f}% {held['rmspe_pct']:6.1f}% "
              f"{held['kendall_tau']:5.2f} {_pct(held['within_10pct'])} | {'yes' if s['meets_targets'] else 'NO':>7s} | "
              f"{'met' if met else 'not met'}")
    shipped = summary.get("shipped")
    if shipped is None:
        return
    print(f"shipped networks ({shipped['n']}; predicted with their space's calibration, never fitted on them):")
    for net in shipped["networks"]:
        shape = "x".join(map(str, net["input_shape"][1:]))
        print(f"  {' + '.join(net['cards'])} [{net['space']}, {shape}]: measured {net['measured_ms']:.2f} ms; "
              f"raw {net['predicted_ms_raw']:.2f} ms ({net['error_pct_raw']:+.1f}%), "
              f"calibrated {net['predicted_ms_calibrated']:.2f} ms ({net['error_pct_calibrated']:+.1f}%)")
    within = shipped["within_10pct"]
    if shipped["n"]:
        print(f"  within +-10%: raw {_pct(within['raw']).strip()}, calibrated {_pct(within['calibrated']).strip()} "
              f"(goal {goal:.0%}: {'met' if shipped['goal_within_10pct_met'] else 'not met'})")
    for skip in summary.get("shipped_skipped", []):
        print(f"  skipped {skip['id']}: {skip['reason']}")
