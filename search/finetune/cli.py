"""``python -m search finetune --model ID --data SPEC``: adapt a shipped model to your labelled data.

Reads ``<--from>/<ID>.json`` (default ``models/``), fine-tunes it (``search.finetune.run``) and exports
``<id>.onnx``, ``.json`` and ``.pt`` into ``--models-dir`` (default ``<out>/models``, with ``--out``
defaulting to ``runs/finetune/<ID>``): pass ``--models-dir models`` to put it beside the shipped
models. Exit status 0 on success, 1 when the model or the data cannot be used (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the finetune flags (cheap imports only)."""
    from search.data import SPEC_HELP, argparse_data_spec, parse_data_spec

    parser.add_argument("--model", required=True, metavar="ID", help="shipped float segmentation model to start from (echo; cine clip, streaming or per-frame)")
    parser.add_argument("--data", type=argparse_data_spec, default=parse_data_spec("phantom"), metavar="SPEC",
                        help=SPEC_HELP)
    parser.add_argument("--epochs", type=int, default=5, help="most epochs (default 5; early stopping on validation)")
    parser.add_argument("--patience", type=int, default=3, help="epochs without a better validation Dice (default 3)")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=None,
                        help="samples per step (default 8 echo frames, 2 cine clips)")
    parser.add_argument("--seed", type=int, default=0, help="split and training seed (default 0)")
    from search.train import precision

    precision.add_argument(parser)
    parser.add_argument("--id", dest="new_id", default=None, help="new model id (default <ID>-ft-<data hash>)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default runs/finetune/<ID>)")
    parser.add_argument("--models-dir", dest="models_dir", type=Path, default=None,
                        help="export folder (default <out>/models; models/ to ship beside the others)")
    parser.add_argument("--from", dest="source_dir", type=Path, default=REPO / "models",
                        help="where the shipped model is read (default models/)")
    parser.add_argument("--phantom-cases", dest="phantom_cases", type=int, default=20,
                        help="phantom patients rendered with --data phantom (default 20)")
    parser.add_argument("--frames-per-case", dest="frames_per_case", type=int, default=4,
                        help="echo: labelled frames kept per patient (default 4)")


def run(args: argparse.Namespace) -> int:
    """Fine-tune and export; one line on stderr and status 1 for a model or data that cannot be used."""
    import logging

    from app.data.case import DataError
    from search.finetune import FinetuneConfig, FinetuneError, finetune
    from search.finetune.data import DataOptions

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):  # the ONNX exporter's chatter
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if args.epochs < 1 or args.patience < 1:
        print("finetune: --epochs and --patience must be at least 1", file=sys.stderr)
        return 1
    from search.train import precision

    precision.use_args(args, None)
    out = args.out or REPO / "runs" / "finetune" / args.model
    models_dir = args.models_dir or out / "models"
    cfg = FinetuneConfig(epochs=args.epochs, patience=args.patience, lr=args.lr, batch_size=args.batch_size,
                         new_id=args.new_id, data=DataOptions(phantom_cases=args.phantom_cases,
                                                              frames_per_case=args.frames_per_case, seed=args.seed))
    try:
        result = finetune(args.model, args.data, models_dir, cfg, models_dir=args.source_dir,
                          say=lambda line: print(f"finetune: {line}", flush=True))
    except (FinetuneError, DataError) as exc:
        print(f"finetune: {exc}", file=sys.stderr)
        return 1
    print(f"finetune: {result.card.id}: Dice {result.dice_before:.3f} -> {result.dice_after:.3f} on the held-out "
          f"patients; {result.card.onnx_path}")
    return 0
