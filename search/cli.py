"""``python -m search``: regenerate every shipped model, or run one stage / method."""

from __future__ import annotations

import sys
from typing import Sequence

from app.subcommands import Subcommand, build_parser, dispatch

COMMANDS = (
    Subcommand("all", "search.chain.all_cli", "regenerate every shipped model (the default with no command)"),
    Subcommand("profile", "search.latency.profile_cli", "build the latency lookup table for this machine"),
    Subcommand("latency-check", "search.latency.check_cli", "check the lookup table against measured networks"),
    Subcommand("segqc-hw", "search.methods.segqc_hw.cli", "joint segmentation + QC search for contrast echo (or B-mode: --task bmode)"),
    Subcommand("msnas-hw", "search.methods.msnas_hw.cli", "3D multi-scale hardware-aware search for cine MR"),
    Subcommand("rtdnas", "search.methods.rtdnas.cli", "real-time constrained search with genetic path selection"),
    Subcommand("cine-skeleton", "search.methods.cine_skeleton.cli", "hardware-aware search of a per-frame 2D U-net for cine"),
    Subcommand("cine-qc", "search.methods.cine_qc.cli", "train and ship the per-frame QC of a shipped cine model"),
    Subcommand("baselines", "search.baselines.cli", "train and export the handcrafted baselines"),
    Subcommand("finetune", "search.finetune.cli", "fine-tune a shipped model on your labelled data (--data)"),
    Subcommand("retime", "search.export.retime_cli", "re-time a models folder's cards on this machine, together, when quiet"),
    Subcommand("report", "search.report.cli", "the papers' tables and plots, from our own runs"),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(
        "python -m search",
        "Hardware-aware neural architecture search for real-time cardiac segmentation. With no "
        "command, regenerates every shipped model in models/ (default preset, sized for a 2-core CPU).",
        COMMANDS,
    )
    from search.train.precision import PrecisionMismatch  # no torch behind it

    try:
        return dispatch(parser, sys.argv[1:] if argv is None else argv, default="all")
    except PrecisionMismatch as exc:  # from any command's resumed checkpoint: one clear line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
