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

A command-line module (the CLI layer): ``parse_spaces`` registers every method's search space.
"""

from __future__ import annotations

import argparse
import logging

from search.latency.profile_cli import PRESETS, SPACES, frame_size, parse_spaces


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


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    import torch

    from search.latency.check import CheckSettings, evaluate, measure_networks, store_calibration
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
    spaces = parse_spaces(args.spaces, per_frame=per_frame, preset=args.preset)
    settings = CheckSettings(samples=args.samples, warmup=args.warmup, repeats=args.repeats,
                             group_size=args.group_size, intra_op_threads=args.threads, seed=args.seed)
    path = Path(args.table) if args.table else default_table_path(args.threads, per_frame=per_frame)
    table = LatencyTable.load(path) if path.exists() else LatencyTable(path=str(path))
    if per_frame:
        from search.export import stream_latency

        def sampler(space: str, preset: str, n: int, seed: int):
            return stream_latency.sample_stream_networks(space, preset, n, seed, size)
    else:
        sampler = sample_networks

    networks = []
    for space in spaces:
        sampled = list(sampler(space, args.preset, args.samples, args.seed))
        log.info("%s: %d networks sampled", space, len(sampled))
        networks += sampled
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
    result = evaluate(records, settings)
    machine = {
        "description": f"{hardware_fingerprint()['logical_cores']}-core {hardware_fingerprint()['machine']} CPU, "
                       f"{runtime_name()}",
        "hardware": hardware_fingerprint(),
        "runtime": runtime_name(),
        "threads": effective_threads(args.threads),
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
                     "fit_fraction": settings.fit_fraction, "seed": settings.seed},
        "targets": {"mdape_pct_max": 10.0, "kendall_tau_min": 0.8, "judged_on": "calibrated_held_out"},
        "spaces": result.spaces,
        "passed": result.passed(),
    }
    if not args.no_save:
        store_calibration(table, result, settings, machine)
        table.save(path)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({**summary, "networks": [r.to_dict() for r in result.records]}, indent=1))
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        _print_table(summary)
    return 0 if result.passed() else 1


def _print_table(summary: dict) -> None:
    kind = "per new frame (streaming step)" if summary.get("per_frame") else "per clip / image"
    print(f"machine: {summary['machine']['description']}, {summary['machine']['threads']} threads; latency {kind}")
    print(f"{'space':8s} {'n':>4s} {'median ms':>10s} | {'raw MdAPE':>9s} {'raw RMSPE':>9s} {'raw tau':>7s} | "
          f"{'fit MdAPE':>9s} | {'held-out MdAPE':>14s} {'RMSPE':>7s} {'tau':>5s} {'+-10%':>6s} | ok")
    for space, s in summary["spaces"].items():
        raw, fit, held = s["raw"], s["calibrated_fit"], s["calibrated_held_out"]
        print(f"{space:8s} {s['networks']:4d} {s['measured_ms']['median']:10.2f} | {raw['mdape_pct']:8.1f}% "
              f"{raw['rmspe_pct']:8.1f}% {raw['kendall_tau']:7.3f} | {fit['mdape_pct']:8.1f}% | "
              f"{held['mdape_pct']:13.1f}% {held['rmspe_pct']:6.1f}% {held['kendall_tau']:5.2f} "
              f"{held['within_10pct']:6.0%} | {'yes' if s['meets_targets'] else 'NO'}")
