"""Retrain a shipped rtdnas cine model's genotype with causal time and ship it as a streaming model.

Issue 17, item 1: the app's clip models recompute the 20-frame window for every new frame. A causal
network (frame t sees frames <= t) can run one frame at a time with its past as explicit state
(``search.export.streaming``), for about 1/T of the clip's cost. The symmetric network's weights
cannot simply be reused (every temporal kernel would see its taps shifted by one frame), so the
genotype is retrained with ``causal=True``::

    python -m search.methods.rtdnas.streaming --preset default --seed 1 \\
        --base models/cine-rtdnas-ga-n7.json --out runs/rtdnas-stream/default --models-dir models

ships ``models/cine-rtdnas-ga-n7-stream.{onnx,json,pt}``. What is the same as the base card's run:
the network (the card's genotype and width, ``architecture.args``), the data (the rtdnas preset's
phantom patients, clip geometry and split; for the base card's own preset the split is checked
against the card's) and the retraining schedule (the preset's ``retrain``: 250 steps of 2 clips,
Adam 3e-3, cosine, for ``default``), through the shared row training
(``search.train.cine_rows.CineRows.train_row`` with ``causal=True``). What differs, on purpose:
causal time, and every frame z-scored on its own (the app feeds a streaming model one frame, so it
cannot z-score over a clip; ``per_frame_norm``). The smoke preset trains the same network for 2
steps on the smoke data (< 1 min) and ships into ``<out>/models`` unless ``--models-dir`` is given.

The card's Dice is measured on the exported streaming file, every test clip streamed from the
initial state (a conservative figure: in the app the state runs on through the cycle, so a clip's
first frames have their past), and its latency is per new frame. ``streaming_vs_clip`` records the
same network timed as a 20-frame clip and per streamed frame, interleaved in one process.
``per_frame_latency_table`` records, beside that measured per-frame median, what this machine's
per-frame lookup table (``python -m search profile --per-frame``, ``search.export.stream_latency``)
predicts for the network's streaming step, or why it cannot (no table, or keys it lacks, e.g. at a
``--size`` the table was not profiled at).

In ``python -m search`` this is the ``rtdnas-stream`` stage, after ``cine-qc``: the base is the
models folder's rtdnas clip model (``--base`` unset: the one marked default, else the best Dice),
and the card is paired with the base's QC network (its ``pairs_with``, trained on the clip model's
newest-frame outputs; through ``python -m app validate`` on 6 fresh patients the pair's QC MAE was
0.038, r 0.851) and marked ``"default": true`` when its held-out Dice is at least the base's: the
app then ranks the two defaults by Dice.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from search.methods.common_cli import frame_size_type, positive_int

REPO = Path(__file__).resolve().parents[3]
DEFAULT_BASE = REPO / "models" / "cine-rtdnas-ga-n7.json"
ROW_KEY = "stream"


def _genotype_and_args(base: dict[str, Any]):
    from search.core.genotypes import MultiscaleGenotype

    arch = base.get("architecture") or {}
    if arch.get("kind") != "multiscale":
        raise ValueError(f"{base.get('id')}: not a multiscale cine card (architecture kind {arch.get('kind')!r})")
    return MultiscaleGenotype.from_dict(base["genotype"]), dict(arch["args"]), dict(arch.get("about") or {})


def run_config(preset_name: str, seed: int | None, args: dict[str, Any], size: tuple[int, int] | None = None):
    """The rtdnas preset (data, schedule) with the base card's grid and width (and ``size`` = (H, W) per frame)."""
    from search.methods.rtdnas.config import preset

    cfg = preset(preset_name, seed=seed)
    if size is not None:  # e.g. the papers' 128x112: the phantom's own render size, no downsizing
        cfg = replace(cfg, data=replace(cfg.data, height=int(size[0]), width=int(size[1])))
    sn = replace(cfg.supernet, layers=int(args["n_layers"]), scales=int(args["n_scales"]), nodes=int(args["n_nodes"]),
                 channels=int(args["base_channels"]) * cfg.width_divisor)
    cfg = replace(cfg, supernet=sn)
    if cfg.trained_channels != int(args["base_channels"]):
        raise ValueError(f"cannot train at the card's width {args['base_channels']} (preset gives {cfg.trained_channels})")
    return cfg


def retrain_and_ship(*, preset_name: str, seed: int | None, base_path: Path, out: Path, models_dir: Path | None,
                     model_id: str | None = None, pairs_with: str | None = None, size: tuple[int, int] | None = None,
                     retrain_steps: int | None = None, threads: int | None = None, say=print) -> Path:
    """Train the base card's genotype causally on its preset's data and schedule (``retrain_steps``: another number
    of steps, e.g. to match a baseline's budget; ``threads``: torch threads, default the preset's); ship it
    streaming."""
    import numpy as np
    import torch

    from app.data.case import ACDC_LABELS
    from search.export.architecture import Architecture, parse_args
    from search.export.streaming import StreamingNetwork, card_field, export_streaming_model, onnx_stream_predictor
    from search.export.stream_latency import per_frame_record
    from search.methods.rtdnas import latency_space, space
    from search.train.cine_rows import CineRows, write_json
    from search.train.clips import ClipProbabilities, card_data, clip_dataset
    from search.train.evaluate import evaluate_segmentation
    from search.train.row_networks import build_row_network

    base = json.loads(Path(base_path).read_text())
    genotype, args, about = _genotype_and_args(base)
    cfg = run_config(preset_name, seed, args, size)
    if retrain_steps is not None:
        cfg = dataclasses.replace(cfg, retrain=cfg.retrain.with_steps(retrain_steps))
    if threads is not None:
        cfg = dataclasses.replace(cfg, threads=threads)
    torch.set_num_threads(cfg.threads)
    row = space.row(ROW_KEY, f"{about.get('row', base['id'])} causal (streaming)", len(genotype.paths))
    rows_cfg = space.rows_view(cfg, (row,))
    helper = CineRows(rows_cfg, out, progress=say, causal=True)
    helper._check_config()
    split = helper.split
    card_split = (base.get("data") or {}).get("split") or {}
    if (base.get("data") or {}).get("preset") == cfg.preset and card_split and (
            sorted(card_split.get("test", [])) != sorted(split.test)):
        raise ValueError(f"the {cfg.preset} preset's test patients {list(split.test)} are not the base card's "
                         f"{card_split.get('test')}: not the same data")
    say(f"retrain {base['id']}'s genotype causally: preset {cfg.preset}, {cfg.retrain.steps} steps of "
        f"{cfg.retrain.batch_size} clips {cfg.data.clip_length}x{cfg.data.height}x{cfg.data.width}, per-frame z-score")
    result = helper.train_row(row, genotype)
    say(f"causal row: mean Dice {result['dice']['mean']:.3f} on {len(split.test)} test patients (clips)")

    net = build_row_network(rows_cfg, row, genotype=genotype, causal=True)
    net.load_state_dict(torch.load(out / "rows" / ROW_KEY / "weights.pt", map_location="cpu"))
    clip_net = ClipProbabilities(net).eval()
    test_cases = helper.subset(split.test)
    datasets = [clip_dataset([c], cfg.data, train=False, seed=0, per_frame_norm=True) for c in test_cases]
    clips = [ds[0][0].numpy()[None] for ds in datasets[:2] if len(ds)]
    h, w = cfg.data.height, cfg.data.width
    streaming = card_field(StreamingNetwork(clip_net).state_specs((1, 1, 1, h, w)))

    def evaluate(path: Path) -> dict[str, Any]:
        predict = onnx_stream_predictor(path, streaming)
        per = [evaluate_segmentation(predict, ds, n_classes=len(ACDC_LABELS)) for ds in datasets]
        per_class = {ACDC_LABELS[c]: float(np.nanmean([e.per_class[c] for e in per])) for c in (1, 2, 3)}
        return {"dice": {"per_class": per_class, "mean": float(np.mean(list(per_class.values()))),
                         "evaluated_on": f"{len(test_cases)} held-out phantom patients, every frame of every "
                                         f"{cfg.data.clip_length}-frame clip streamed from the initial state"}}

    arch_args = {**args, "causal": True}
    arch = Architecture(parse_args("multiscale", arch_args), genotype.to_dict(), "probs",
                        {**about, "causal_retrain_of": base["id"]})
    model_id = model_id or f"{base['id']}-stream"
    models_dir = Path(models_dir) if models_dir is not None else out / "models"
    cmd = (f"python -m search.methods.rtdnas.streaming --preset {cfg.preset} --seed {cfg.seed} "
           f"--base {Path(base_path).name}")
    notes = (f"{base['id']}'s genotype (RT-DNAS, {about.get('row', '')}) retrained with causal time "
             f"(`{cmd}`): frame t sees frames <= t only, so the network runs one frame at a time with its "
             f"past as {len(streaming['states'])} state tensors (search.export.streaming). Same network, "
             f"data and schedule as {base['id']} ({cfg.retrain.steps} steps of {cfg.retrain.batch_size} clips at "
             f"{h}x{w}) except causal time and a per-frame z-score. Latency is per new frame.")
    ratio = _clip_vs_stream(clip_net, cfg.data.clip_length, h, w, streaming, repeats=max(10, cfg.measure.repeats))
    say(f"per new frame: streaming {ratio['stream_p50_ms']:.2f} ms vs clip {ratio['clip_p50_ms']:.2f} ms "
        f"({ratio['ratio_p50']:.3f}x)")
    predicted = per_frame_record(clip_net, (1, 1, 1, h, w), space=latency_space.NAME,
                                 measured_ms=ratio["stream_p50_ms"])
    if predicted["predicted_ms"] is not None:
        say(f"per new frame: predicted {predicted['predicted_ms']:.2f} ms by the per-frame table {predicted['table']} "
            f"(calibration {predicted['calibration']}), measured {ratio['stream_p50_ms']:.2f} ms")
    else:
        say(f"per new frame: no table prediction ({predicted['note']})")
    card = export_streaming_model(
        clip_net, model_id=model_id, architecture=arch, classes=dict(ACDC_LABELS),
        data=card_data(cfg.data, split, cfg.preset, test_cases), clips=clips, out_dir=models_dir,
        genotype=genotype.to_dict(), notes=notes, pairs_with=pairs_with, evaluate=evaluate,
        latency_repeats=max(10, cfg.measure.repeats),
        extra={"streaming_vs_clip": ratio, "per_frame_latency_table": predicted,
               "retrained_from": {"card": base["id"], "causal": True, "normalisation": "zscore per frame"}})
    write_json(out / "stream.json", {"model": str(card.onnx_path), "card": card.id, "row": result["dice"],
                                     "streaming_vs_clip": ratio, "per_frame_latency_table": predicted,
                                     "dice": card.metrics.get("dice")})
    say(f"shipped {card.onnx_path} (Dice {card.metrics['dice']['mean']:.3f}, "
        f"{card.metrics['latency_ms']['p50']:.2f} ms per frame)")
    return card.onnx_path


def _clip_vs_stream(clip_net, t: int, h: int, w: int, streaming: dict[str, Any], *, repeats: int) -> dict[str, Any]:
    """The network as a T-frame clip vs per streamed frame, interleaved in one process (app session settings)."""
    import numpy as np
    import torch

    from search.export.onnx_export import onnx_bytes
    from search.export.streaming import StreamingNetwork, streaming_onnx
    from search.latency.measure import measure_interleaved

    clip_bytes = onnx_bytes(clip_net, [torch.zeros(1, 1, t, h, w)], ["clip"], ["probs"], "clip")
    stream_bytes = streaming_onnx(StreamingNetwork(clip_net), (1, 1, 1, h, w), "stream")
    rng = np.random.default_rng(0)
    feeds = {"clip": {"clip": rng.standard_normal((1, 1, t, h, w)).astype(np.float32)},
             "stream": {"frame": rng.standard_normal((1, 1, 1, h, w)).astype(np.float32),
                        **{s["input"]: rng.standard_normal(s["shape"]).astype(np.float32)
                           for s in streaming["states"]}}}
    stats = measure_interleaved({"clip": clip_bytes, "stream": stream_bytes}, feeds, repeats=repeats, warmup=3)
    c, s = stats["clip"], stats["stream"]
    return {"clip_frames": t, "clip_p50_ms": round(c.p50_ms, 3), "stream_p50_ms": round(s.p50_ms, 3),
            "ratio_p50": round(s.p50_ms / c.p50_ms, 4), "threads": c.threads, "repeats": repeats}


def pick_base(models_dir: Path, preset_name: str, method: str = "rtdnas") -> Path | None:
    """The ``method`` (default rtdnas) clip (not streaming) seg card of ``models_dir`` for ``preset_name``: marked
    default, else best Dice."""
    cards = []
    for path in sorted(Path(models_dir).glob("*.json")):
        try:
            card = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (card.get("method") == method and card.get("role") == "seg" and "streaming" not in card
                and (card.get("data") or {}).get("preset", preset_name) == preset_name):
            cards.append((not card.get("default", False), -((card.get("metrics") or {}).get("dice") or {}).get("mean", 0.0),
                          path))
    return min(cards)[2] if cards else None


def configure(parser: argparse.ArgumentParser) -> None:
    """The flags of ``python -m search.methods.rtdnas.streaming`` (also the ``rtdnas-stream`` chain stage)."""
    parser.add_argument("--preset", default="default", choices=("smoke", "default", "paper"))
    parser.add_argument("--seed", type=int, default=None, help="master seed (the base card's run: 1)")
    parser.add_argument("--base", type=Path, default=None,
                        help="the clip model card whose genotype is retrained (default: the models folder's rtdnas clip model)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (resumable; default runs/rtdnas-stream/<preset>)")
    parser.add_argument("--docs-dir", type=Path, default=None, help="also copy the run's stream.json there")
    parser.add_argument("--models-dir", type=Path, default=None, help="where to ship (default <out>/models)")
    parser.add_argument("--id", default=None, help="card id (default <base id>-stream)")
    parser.add_argument("--pairs-with", default=None, help="QC model id to pair the card with (default: the base card's QC partner)")
    parser.add_argument("--size", type=frame_size_type(16), default=None, metavar="HxW",
                        help="frame size the network is trained and shipped at (default: the preset's, 64x48)")
    parser.add_argument("--retrain-steps", type=int, default=None, metavar="N",
                        help="optimiser steps (default: the preset's retrain steps); use another --out")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="torch intra-op threads for training (default: the preset's)")
    from search.train import precision

    precision.add_argument(parser, default="fp32", why=", as rtdnas: its cell-based network trains no faster in bf16")


def run(args: argparse.Namespace) -> int:
    """Retrain and ship; 0 also when the models folder has no rtdnas clip model to stream (said in one line)."""
    import shutil

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from search.train import precision

    precision.use_args(args, args.preset)
    models = Path(args.models_dir) if args.models_dir is not None else REPO / "models"
    if args.base is None:
        base = pick_base(models, args.preset)
        if base is None:
            print(f"[rtdnas-stream] no rtdnas clip model of preset {args.preset} in {models}: nothing to stream", flush=True)
            return 0
    else:
        base = args.base if args.base.is_file() else models / args.base
    base_card = json.loads(base.read_text()) if base.is_file() else {}
    pairs_with = args.pairs_with
    base_size = tuple((base_card.get("input") or {}).get("shape", [])[-2:])
    resized = args.size is not None and tuple(args.size) != base_size
    if pairs_with is None and not resized:  # the base's QC partner (cine-qc trains it on the clip model's outputs);
        pairs_with = base_card.get("pairs_with")  # a QC of another frame size cannot score this one
    model_id = args.id or (f"{base_card['id']}-stream-{args.size[0]}x{args.size[1]}" if resized and base_card.get("id")
                           else None)
    seed = args.seed
    if seed is None and args.preset == "default":  # the shipped rtdnas default comes from seed 1 (search.chain)
        seed = 1
    out = args.out or Path("runs") / "rtdnas-stream" / args.preset
    try:
        card_path = retrain_and_ship(preset_name=args.preset, seed=seed, base_path=base, out=out,
                                     models_dir=args.models_dir, model_id=model_id, pairs_with=pairs_with,
                                     size=args.size, retrain_steps=getattr(args, "retrain_steps", None),
                                     threads=getattr(args, "threads", None), say=lambda m: print(f"[rtdnas-stream] {m}", flush=True))
    except (ValueError, FileNotFoundError) as exc:
        print(f"rtdnas-stream: {exc}", file=sys.stderr)
        return 1
    card_json = Path(card_path).with_suffix(".json")
    card = json.loads(card_json.read_text())
    ours, theirs = card["metrics"]["dice"]["mean"], ((base_card.get("metrics") or {}).get("dice") or {}).get("mean")
    if pairs_with and card.get("meets_realtime") and theirs is not None and ours >= theirs:
        card["default"] = True  # beside the base's own "default": the app ranks the two by Dice
        card_json.write_text(json.dumps(card, indent=2) + "\n")
    if args.docs_dir is not None and (out / "stream.json").is_file():
        Path(args.docs_dir).mkdir(parents=True, exist_ok=True)
        shutil.copy2(out / "stream.json", Path(args.docs_dir) / "stream.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
