"""``python -m search msnas-hw``: the 3D multi-scale hardware-aware search, Table 2 and a shipped model.

The paper: Zeng et al., ICCAD 2020, arXiv:2008.07071 (full reference in ``docs/references.md``).

Resumable: run the same command again after an interruption and it continues where it stopped.
"""

from __future__ import annotations

import argparse

PRESET_HELP = "smoke: < 1 min, tiny; default: a quiet 2-core CPU in ~1 h; paper: the paper's schedule (GPU)"


def configure(parser: argparse.ArgumentParser) -> None:
    from search.methods.common_cli import add_method_arguments

    add_method_arguments(parser, method="msnas-hw", preset_help=PRESET_HELP,
                         device_help="torch device; msnas-hw searches and trains on the CPU only")


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from search import distributed
    from search.methods.common_cli import require_cpu, run_places
    from search.methods.msnas_hw.config import preset
    from search.methods.msnas_hw.experiment import MsnasHwExperiment

    require_cpu(args, "msnas-hw")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    distributed.init_from_env()  # under torchrun: join the process group (rank 0 alone logs and writes)
    cfg = preset(args.preset, seed=args.seed)
    from search.data import CINE_ACDC
    from search.methods.common_cli import with_data

    cfg = with_data(cfg, args, CINE_ACDC, "msnas-hw")  # --data: checked here, read by search.train.clips
    places = run_places(args, method="msnas-hw", docs_name="msnas")
    out, models_dir, docs_dir = places.out, places.models_dir, places.docs_dir

    def say(msg: str) -> None:
        if distributed.is_main():
            print(f"[msnas-hw] {msg}", flush=True)

    say(f"preset {cfg.preset}, seed {cfg.seed}, run folder {out}")
    try:
        MsnasHwExperiment(cfg, out, docs_dir=docs_dir, models_dir=models_dir, progress=say).run()
    except (ValueError, FileNotFoundError) as exc:
        print(f"msnas-hw: {exc}", file=sys.stderr)
        return 1
    return 0
