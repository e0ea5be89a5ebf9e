"""``python -m search profile``: build the latency lookup table for this machine.

Enumerates every op signature the supernets of the chosen spaces can contain under the chosen
preset, and times the ones the table lacks (cached, resumable: interrupt it and run it again).

``--per-frame`` (issue 17) builds the per-frame table instead: the causal variant of the clip (3D)
spaces, each op timed as its streaming step on one new frame plus its carried state
(``search.export.stream_latency``), into ``models/latency/<machine>-stream.json``.

A command-line module (the CLI layer, though it lives beside the latency code it drives): it
registers every method's search space (``search.methods.spaces``) before reading the table.
"""

from __future__ import annotations

import argparse
import logging

from search.methods.spaces import SPACE_NAMES as SPACES
from search.methods.spaces import register_all
from search.methods.common_cli import frame_size_type

PRESETS = ("smoke", "default", "paper")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", default=None,
                        help="table JSON (default: models/latency/<cpu>-<n>cpu-ort<version>-t<threads>.json)")
    parser.add_argument("--spaces", default=None,
                        help=f"comma-separated search spaces to cover (default: {','.join(SPACES)}; "
                             "with --per-frame, the clip (3D) ones among them)")
    parser.add_argument("--preset", choices=PRESETS, default="default",
                        help="which preset's supernet configurations to cover (default: default)")
    parser.add_argument("--warmup", type=int, default=10, help="discarded runs per op (default 10)")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per op; the entry is their median (default 50)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: the app's)")
    parser.add_argument("--group-size", type=int, default=8, help="ops timed round-robin together (default 8)")
    parser.add_argument("--dry-run", action="store_true", help="only count the keys and the missing ones")
    parser.add_argument("--torch-cuda", action="store_true",
                        help="also time the ops with PyTorch on the GPU into <table>-torch-cuda.json (needs CUDA)")
    parser.add_argument("--per-frame", action="store_true",
                        help="build the per-frame (streaming) table: each op of the causal variant of the clip "
                             "spaces timed on one new frame plus its state (default table: <machine>-stream.json)")
    parser.add_argument("--frame-size", type=frame_size, default=None, metavar="HxW",
                        help="with --per-frame: frames of this size instead of the preset's, at the preset's widths "
                             "(e.g. 128x112 with --preset default for a model shipped with rtdnas.streaming --size)")


frame_size = frame_size_type(8)  # ``"128x112"`` -> ``(128, 112)``: the spaces' 4 scales need multiples of 8


def parse_spaces(text: str | None, *, per_frame: bool = False, preset: str = "smoke") -> list[str]:
    """``"segqc,msnas"`` -> ``["segqc", "msnas"]`` (registering every method's space); unknown names
    are an error naming them. ``None``: every space; with ``per_frame``, every clip (3D) space of
    ``preset``, and a 2D space named is an error."""
    from search.latency.spaces import space_names

    register_all()
    known = space_names()
    if per_frame:
        from search.export.stream_latency import streamable_spaces

        spaces = parse_spaces(text) if text is not None else list(SPACES)
        streamable = streamable_spaces(spaces, preset)
        if text is not None and streamable != spaces:
            flat = [s for s in spaces if s not in streamable]
            raise SystemExit(f"--spaces: {','.join(flat)} take 2D inputs: no per-frame table (no time to stream)")
        return streamable
    if text is None:
        text = ",".join(SPACES)
    spaces = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in spaces if s not in known]
    if unknown or not spaces:
        raise SystemExit(f"--spaces: unknown space(s) {unknown or [text]}; choose from {','.join(known)}")
    return spaces


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch
    from tqdm import tqdm

    from search.latency.core_adapter import preset_keys
    from search.latency.lut import LatencyTable
    from search.latency.profiler import OpProfiler, ProfileSettings, default_table_path

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)  # building and exporting ops; timing threads are onnxruntime's
    per_frame = bool(getattr(args, "per_frame", False))
    size = getattr(args, "frame_size", None)
    if per_frame and args.torch_cuda:
        raise SystemExit("--torch-cuda times clip ops only; run it without --per-frame")
    if size is not None and not per_frame:
        raise SystemExit("--frame-size needs --per-frame")
    spaces = parse_spaces(args.spaces, per_frame=per_frame, preset=args.preset)
    path = Path(args.table) if args.table else default_table_path(args.threads, per_frame=per_frame)
    table = LatencyTable.load(path) if path.exists() else LatencyTable(path=str(path))
    kind = ""
    if per_frame:
        from search.export import stream_latency

        kind = "per-frame (streaming step) " + (f"{size[0]}x{size[1]} " if size else "")

    def keys_of(space: str, preset: str) -> set:
        if per_frame:
            return stream_latency.stream_preset_keys(space, preset, size)
        return preset_keys(space, preset)

    keys = set()
    for space in spaces:
        space_keys = keys_of(space, args.preset)
        print(f"{space} ({args.preset}): {len(space_keys)} {kind}op signatures")
        keys |= space_keys
    settings = ProfileSettings(warmup=args.warmup, repeats=args.repeats, intra_op_threads=args.threads,
                               group_size=args.group_size, per_frame=per_frame)
    if per_frame:
        profiler = stream_latency.stream_profiler(table, settings, save_to=path)
    else:
        profiler = OpProfiler(table, settings, save_to=path)
    missing = profiler.missing(keys)
    print(f"table {path}: {len(table)} entries, {len(keys)} needed, {len(missing)} to measure")
    if args.dry_run:
        return 0
    if missing:
        with tqdm(total=len(missing), unit="op", desc="profiling") as bar:
            def progress(done: int, total: int, key) -> None:
                bar.set_postfix_str(key.canonical()[:48])
                bar.update(done - bar.n)

            profiler.profile(missing, progress=progress)
        table.save(path)
    if args.torch_cuda:
        from search.latency.torch_cuda import profile_torch_cuda

        cuda_path = path.with_name(path.stem + "-torch-cuda.json")
        n = profile_torch_cuda(sorted(keys), cuda_path, warmup=args.warmup, repeats=args.repeats)
        print(f"torch CUDA table {cuda_path}: {n} ops measured")
    print(f"table {path}: {len(table)} entries (runtime {table.meta.get('runtime_version')}, "
          f"{table.meta.get('threads')} threads)")
    return 0
