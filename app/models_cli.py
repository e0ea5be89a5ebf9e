"""``python -m app models [--benchmark]``: the models in ``models/``, each verified against its card.

The table shows each model's latency from this machine's benchmark figures where there are some
(``--benchmark`` measures them: ``app.engine.benchmark``), else from its card, and says which; the
starred rows are the app's default per modality, chosen from the same figures. A model whose file
fails its check is never starred.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models-dir", type=Path, metavar="DIR", help="folder of model cards (default: the shipped models/)")
    parser.add_argument("--modality", choices=("echo", "cine"), help="only this modality")
    parser.add_argument("--benchmark", action="store_true",
                        help="time every verified model (and seg + QC pair) on this machine first; the app then "
                             "chooses its defaults from these figures")
    # default: app.engine.benchmark.DEFAULT_ROUNDS, not imported here (onnxruntime stays out of start-up)
    parser.add_argument("--rounds", type=int, metavar="N",
                        help="timed runs per model with --benchmark (default 30, after warm-up runs)")


def _fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(float(value), spec)


def run(args: argparse.Namespace) -> int:
    from app.cards import ModelCardError, default_models_dir, load_card
    from app.engine.models import mark_reported

    folder = Path(args.models_dir or default_models_dir())
    if not folder.is_dir():
        print(f"error: models folder {folder} does not exist", file=sys.stderr)
        return 1
    paths = sorted(folder.glob("*.json"))
    if not paths:
        print(f"no model cards in {folder}")
        return 1
    if args.benchmark and args.rounds is not None and args.rounds < 1:
        print(f"error: --rounds must be at least 1, got {args.rounds}", file=sys.stderr)
        return 2
    cards, problems = [], {}
    for path in paths:
        try:
            card = load_card(path)
        except ModelCardError as exc:
            problems[path.stem] = f"card error: {exc.problem}"
            mark_reported(path)  # said in the table: the default choice does not warn about it again
            continue
        try:
            card.verify()
        except ModelCardError as exc:
            problems[card.id] = f"BAD: {exc.problem}"
            mark_reported(path)
        cards.append(card)
    if args.benchmark:
        _benchmark([c for c in cards if c.id not in problems], args.rounds)
    return _table(folder, paths, cards, problems, args.modality)


def _benchmark(cards, rounds: int | None) -> None:
    from app.engine.benchmark import DEFAULT_ROUNDS, benchmark, default_cache_file, machine_state

    rounds = rounds or DEFAULT_ROUNDS

    state = machine_state()
    load = f", load {state['load_avg'][0]:.2f}" if state["load_avg"] else ""
    print(f"timing {len(cards)} model(s) on this machine ({rounds} runs each after warm-up{load}) ...", flush=True)

    def report(label: str, entry: dict) -> None:
        lat = entry["latency_ms"]
        print(f"  {label}: p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, {entry['fps']:.1f} FPS", flush=True)

    benchmark(cards, rounds=rounds, report=report)
    print(f"figures saved to {default_cache_file()}\n")


def _table(folder: Path, paths: list[Path], cards, problems: dict[str, str], modality: str | None) -> int:
    from app.engine.benchmark import LocalFigures
    from app.realtime import REALTIME

    local = LocalFigures.load()
    defaults = _default_ids(folder, local)
    by_id = {c.id: c for c in cards}
    w = max(28, *(len(p.stem) for p in paths))
    used: list[dict] = []  # benchmark entries shown
    carded = []  # cards whose own figures are shown
    print(f"  {'id':<{w}} {'mod':<5} {'role':<4} {'method':<18} {'Dice':>6} {'QC MAE':>7} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'FPS':>7} {'RT':<3} {'latency':<7}  status")
    for path in paths:
        card = next((c for c in cards if c.card_path == path), None)
        if card is None:
            print(f"  {path.stem:<{w}} {problems[path.stem]}")
            continue
        if modality and card.modality != modality:
            continue
        row, entry = _row(card, by_id, local)
        if entry is None:
            carded.append(card)
        else:
            used.append(entry)
        status = problems.get(card.id, "ok")
        mark = "*" if card.id in defaults and status == "ok" else " "
        print(f"{mark} {card.id:<{w}} {card.modality:<5} {card.role:<4} {card.method:<18} {row}  "
              f"{'card' if entry is None else 'here':<7}  {status}")
    newest = [c for c in cards if c.newest_frame_dice is not None and (not modality or c.modality == modality)]
    _footnotes(defaults, used, carded, REALTIME.describe(), newest)
    if problems:
        print(f"{len(problems)} model(s) with problems", file=sys.stderr)
    return 1 if problems else 0


def _row(card, by_id, local) -> tuple[str, dict | None]:
    """The figures columns of one card (a seg card with a QC partner: RT judged on the pair) and their entry.

    Dice is ``ModelCard.app_dice``: a clip model's Dice of the newest frame (marked ``NEWEST_FRAME_MARK``)
    where its card has it, else the card's mean Dice.
    """
    from app.cards import NEWEST_FRAME_MARK
    from app.engine.models import timing_of

    metrics = card.metrics
    dice = card.app_dice
    mark = NEWEST_FRAME_MARK if card.newest_frame_dice is not None else ""
    timing, entry = timing_of(card, None, local)
    pair = by_id.get(card.pairs_with) if card.role == "seg" and card.pairs_with else None
    judged = timing_of(card, pair, local)[0] if pair is not None else timing
    rt = "-" if judged is None else ("yes" if judged.meets() else "no")
    p50, p95, fps = (None, None, None) if timing is None else (timing.p50_ms, timing.p95_ms, timing.fps)
    return (f"{_fmt(dice):>6}{mark or ' '}{_fmt(metrics.get('qc_mae')):>7} {_fmt(p50, '.1f'):>7} {_fmt(p95, '.1f'):>7} "
            f"{_fmt(fps, '.1f'):>7} {rt:<3}"), entry


def _footnotes(defaults: set[str], used: list[dict], carded, rule: str, newest=()) -> None:
    from app.cards import NEWEST_FRAME_MARK, NEWEST_FRAME_NOTE, metric_mean

    if defaults:
        print(f"* the app's default for its modality (echo: one per echo mode, contrast and B-mode): the best Dice that meets {rule} (with its QC partner) "
              "among models whose file matches the card")
    if newest:
        every = ", ".join(f"{c.id} {_fmt(metric_mean(c.metrics.get('dice')))}" for c in newest)
        print(f"Dice {NEWEST_FRAME_MARK}: {NEWEST_FRAME_NOTE} (card metrics.dice_newest_frame; averaged over every "
              f"clip position, metrics.dice, the card says {every}); other rows: the card's metrics.dice")
    print(f"RT: meets {rule} (seg rows: with their QC partner), by the figures of the latency column")
    if used:
        print(f"latency here: {_here(used)}")
    hardware = {c.metrics.get("hardware") for c in carded} - {None}
    if hardware:
        print(f"latency card: the card's figures, measured on {'; '.join(sorted(map(str, hardware)))}")
    if not used:
        print("(`python -m app models --benchmark` times the models on this machine)")


def _here(entries: list[dict]) -> str:
    """``this machine (benchmarked <latest date>, load <min>-<max>)`` over the benchmark entries shown."""
    from app.engine.benchmark import describe_entry

    latest = max(entries, key=lambda e: str(e.get("measured", "")))
    loads = [e["load_avg"][0] for e in entries if e.get("load_avg")]
    text = describe_entry(latest)
    if loads and min(loads) != max(loads):
        text = text.replace(f"load {latest['load_avg'][0]:.2f}", f"load {min(loads):.2f}-{max(loads):.2f}")
    return text


def _default_ids(folder: Path, local) -> set[str]:
    """Ids of the default seg model (and its QC pair) of each modality present in ``folder``."""
    from app.cards import ModelCardError
    from app.engine.models import default_models, list_models

    ids: set[str] = set()
    cards = list_models(None, folder)
    wanted = [(m, None) for m in sorted({c.modality for c in cards})]
    wanted += [("echo", mode) for mode in sorted({c.echo_mode for c in cards if c.modality == "echo" and c.role == "seg"})]
    for modality, mode in wanted:  # echo: the default of each echo mode with models (contrast, B-mode)
        try:
            seg, qc = default_models(modality, folder, local, echo_mode=mode)
        except ModelCardError:
            continue
        ids |= {seg.id} | ({qc.id} if qc else set())
    return ids
