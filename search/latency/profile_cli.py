"""``python -m search profile``: build the latency lookup table for this machine.

Enumerates every op signature the supernets of the chosen spaces can contain under the chosen
preset, and times the ones the table lacks (cached, resumable: interrupt it and run it again).

A command-line module (the CLI layer, though it lives beside the latency code it drives): it
registers every method's search space (``search.methods.spaces``) before reading the table.
"""

from __future__ import annotations

import argparse
import logging

from search.methods.spaces import SPACE_NAMES as SPACES
from search.methods.spaces import register_all

PRESETS = ("smoke", "default", "paper")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", default=None,
                        help="table JSON (default: models/latency/<cpu>-<n>cpu-ort<version>-t<threads>.json)")
    parser.add_argument("--spaces", default=",".join(SPACES),
                        help=f"comma-separated search spaces to cover (default: {','.join(SPACES)})")
    parser.add_argument("--preset", choices=PRESETS, default="default",
                        help="which preset's supernet configurations to cover (default: default)")
    parser.add_argument("--warmup", type=int, default=10, help="discarded runs per op (default 10)")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per op; the entry is their median (default 50)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: the app's)")
    parser.add_argument("--group-size", type=int, default=8, help="ops timed round-robin together (default 8)")
    parser.add_argument("--dry-run", action="store_true", help="only count the keys and the missing ones")
    parser.add_argument("--torch-cuda", action="store_true",
                        help="also time the ops with PyTorch on the GPU into <table>-torch-cuda.json (needs CUDA)")


def parse_spaces(text: str) -> list[str]:
    """``"segqc,msnas"`` -> ``["segqc", "msnas"]`` (registering every method's space); unknown names
    are an error naming them."""
    from search.latency.spaces import space_names

    register_all()
    known = space_names()
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
    spaces = parse_spaces(args.spaces)
    path = Path(args.table) if args.table else default_table_path(args.threads)
    table = LatencyTable.load(path) if path.exists() else LatencyTable(path=str(path))
    keys = set()
    for space in spaces:
        space_keys = preset_keys(space, args.preset)
        print(f"{space} ({args.preset}): {len(space_keys)} op signatures")
        keys |= space_keys
    settings = ProfileSettings(warmup=args.warmup, repeats=args.repeats, intra_op_threads=args.threads,
                               group_size=args.group_size)
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
