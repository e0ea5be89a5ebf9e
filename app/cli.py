"""``python -m app``: the viewer (default), headless replay, and phantom datasets."""

from __future__ import annotations

import sys
from typing import Sequence

from app.subcommands import Subcommand, build_parser, dispatch

COMMANDS = (
    Subcommand("view", "app.viewer.cli", "open the scanner viewer (the default with no command)"),
    Subcommand("replay", "app.engine.replay_cli", "replay a recording headless and write a JSON report"),
    Subcommand("validate", "app.validate_cli", "validate a model on labelled recordings: Dice, HD95, QC, latency"),
    Subcommand("phantom", "app.data.phantom_cli", "write a phantom dataset in real formats (echo: DICOM, CAMUS or EchoNet layout; cine: ACDC)"),
    Subcommand("models", "app.models_cli", "list the models in models/ with their cards and verify them"),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(
        "python -m app",
        "Real-time cardiac segmentation with live quality control. With no command, opens the viewer "
        "on the shipped demo recording and models.",
        COMMANDS,
    )
    return dispatch(parser, sys.argv[1:] if argv is None else argv, default="view")
