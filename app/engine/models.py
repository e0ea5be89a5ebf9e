"""Which models the app runs, and loading them safely (card verified, outputs checked, warmed up).

Model I/O contract (what ``search.export`` must produce):
    echo seg: input ``image`` ``(1, 3, H, W)`` float32 RGB -> ``probs`` ``(1, C, H, W)`` and
        ``uncertainty`` ``(1, 1, H, W)``;
    cine seg: input ``clip`` ``(1, 1, T, H, W)`` -> ``probs`` ``(1, C, T, H, W)`` (+ optional
        ``uncertainty`` ``(1, 1, T, H, W)``), card ``clip_length`` T; per-frame 2D cine models have
        ``clip_length`` 1 and input ``image`` ``(1, 1, H, W)``;
    QC: inputs ``image`` (the seg model's preprocessed input), ``probs``, ``uncertainty`` ->
        ``dice`` ``(1, 1)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.cards import ECHO_MODES, ModelCard, ModelCardError, Timing, default_models_dir, load_card
from app.data.echo_mode import MODE_NAMES
from app.engine.benchmark import LocalFigures
from app.engine.runtime import create_session, warm_up

log = logging.getLogger(__name__)

# Preferred methods for the default model, best first (the papers' own methods before baselines).
METHOD_PREFERENCE = ("segqc-hw", "msnas-hw", "rtdnas", "cine-skeleton")  # searched methods, before handcrafted ones
SEG_OUTPUTS = ("probs",)
QC_INPUTS = ("image", "probs", "uncertainty")
QC_OUTPUTS = ("dice",)


# Card files already warned about in this process (resolved path): each bad card is said once.
_REPORTED: set[str] = set()


def _warn_once(path: Path, message: str) -> None:
    key = str(Path(path).resolve())
    if key not in _REPORTED:
        _REPORTED.add(key)
        log.warning("%s", message)


def mark_reported(path: Path | str) -> None:
    """The caller has told the user about this card file itself: the library does not warn about it again."""
    _REPORTED.add(str(Path(path).resolve()))


def _cards(models_dir) -> list[ModelCard]:
    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    if not folder.is_dir():
        return []
    cards = []
    for path in sorted(folder.glob("*.json")):
        try:
            cards.append(load_card(path))
        except ModelCardError as exc:
            _warn_once(path, f"skipping model card {exc}")
    return sorted(cards, key=lambda c: c.id)


def list_models(modality: str | None = None, models_dir=None) -> list[ModelCard]:
    """Cards in ``models_dir`` (default: the shipped ``models/``), optionally of one modality.

    Malformed cards are skipped with a warning (``python -m app models`` reports them). Cards are
    not verified here: ``load_model`` verifies before loading.
    """
    return [c for c in _cards(models_dir) if modality is None or c.modality == modality]


def find_model(model_id: str, models_dir=None) -> ModelCard:
    """The card with this id, or ``ModelCardError`` listing the ids there are."""
    cards = _cards(models_dir)
    for card in cards:
        if card.id == model_id:
            return card
    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    raise ModelCardError(folder / f"{model_id}.json",
                         f"no model {model_id!r} (available: {', '.join(c.id for c in cards) or 'none'})")


def timing_of(seg: ModelCard, qc: ModelCard | None = None, local: LocalFigures | None = None
              ) -> tuple[Timing | None, dict | None]:
    """A model's (or a seg + QC pair's) latency and throughput, and the benchmark entry they come from.

    This machine's benchmark figures (``local``, from ``python -m app models --benchmark``) when they
    cover exactly these files, this runtime and thread count; else the cards' own figures (a pair:
    latencies add, throughputs combine as back-to-back runs).

    Returns:
        ``(timing, entry)``: timing None when a card has no latency figures; entry the benchmark
        entry used (``app.engine.benchmark.describe_entry`` says it in words), None for the cards' figures.
    """
    entry = local.lookup(seg, qc) if local is not None else None
    if entry is not None:
        return Timing.from_metrics(entry), entry
    timing = seg.timing
    if qc is not None:
        qc_timing = qc.timing
        timing = timing.then(qc_timing) if timing is not None and qc_timing is not None else None
    return timing, None


def meets_budget(seg: ModelCard, qc: ModelCard | None = None, local: LocalFigures | None = None) -> bool:
    """Whether a seg model (plus its QC partner) meets the real-time rule (``app.realtime.REALTIME``).

    By this machine's benchmark figures when ``local`` has them, else by the cards (see ``timing_of``).
    A model without latency figures does not count as meeting the budget.
    """
    timing, _ = timing_of(seg, qc, local)
    return timing is not None and timing.meets()


def _rank(card: ModelCard, by_id: dict[str, ModelCard], local: LocalFigures | None = None) -> tuple:
    method = card.method
    preference = METHOD_PREFERENCE.index(method) if method in METHOD_PREFERENCE else len(METHOD_PREFERENCE)
    mean = card.app_dice  # a clip model: the Dice of the newest frame, the one the app shows
    qc = by_id.get(card.pairs_with) if card.pairs_with else None
    fits = meets_budget(card, qc, local)
    searched = method in METHOD_PREFERENCE
    # Meeting the rule comes before the card's own "default": true, so a model that this machine's
    # figures say is too slow here gives way to one that is fast enough.
    return (qc is not None and _file_problem(qc) is not None, not fits, not bool(card.raw.get("default", False)),
            not searched, -(mean if mean is not None else -1.0), preference, card.id)


def _file_problem(card: ModelCard) -> str | None:
    """What is wrong with the card's ONNX file (missing, sha256 mismatch), or None when it matches."""
    try:
        card.check_file()
        return None
    except ModelCardError as exc:
        return str(exc)


def qc_for(seg: ModelCard, models_dir=None) -> ModelCard | None:
    """The QC model paired with ``seg`` (its card's ``pairs_with``), else None."""
    if not seg.pairs_with:
        return None
    return find_model(seg.pairs_with, models_dir)


def echo_mode_note(seg: ModelCard, echo_mode: str | None, models_dir=None, *, cards=None) -> str | None:
    """What to tell the user when ``seg`` was not made for the recording's echo mode (None when it was).

    Two cases: the models (``cards``, else those in ``models_dir``) hold no segmentation model of
    that echo mode at all (the default fell back to the other kind), or they hold some and ``seg``
    was asked for by id.
    """
    if echo_mode is None or seg.modality != "echo" or seg.echo_mode == echo_mode:
        return None
    want, have = MODE_NAMES[echo_mode], MODE_NAMES[seg.echo_mode]
    cards = list_models("echo", models_dir) if cards is None else cards
    fitting = [c.id for c in cards if c.modality == "echo" and c.role == "seg" and c.echo_mode == echo_mode]
    if fitting:
        return f"{seg.id} is a {have} model but this recording is {want} (its models: {', '.join(fitting)})"
    qc = f" + {seg.pairs_with}" if seg.pairs_with else ""
    return (f"no {want} model in models/ yet: running the {have} pair {seg.id}{qc} on this {want} recording "
            f"instead (its masks may be poor)")


def default_models(modality: str, models_dir=None, local: LocalFigures | None = None, echo_mode: str | None = None
                   ) -> tuple[ModelCard, ModelCard | None]:
    """The default segmentation model for a modality and its QC pair (None when it has none).

    ``echo_mode`` (echo only, ``"contrast"`` or ``"bmode"``, see ``app.data.echo_mode``): only cards
    made for that kind of echo (card ``echo_mode``, contrast when absent) are candidates; when the
    folder has none, every echo card is, and one warning says so (``echo_mode_note``). None (no
    recording to judge): contrast cards where there are some, silently.

    Candidates: segmentation cards whose ONNX file is present and matches its hash (a broken one is
    warned about once and not chosen; when every one is broken, the best of them is returned and
    loading it says what is wrong). Unreadable cards are skipped with one warning (``list_models``).
    Preference: a model whose QC partner's file is intact; then models that meet the real-time rule
    (``meets_budget``, the QC partner's time included) by this machine's benchmark figures where
    there are some (``local``, default: this machine's cache file), else by their cards; then a card
    marked ``"default": true``; then the papers' searched methods before handcrafted baselines; then
    the higher mean Dice on its card (``ModelCard.app_dice``: for a clip model the Dice of the newest
    frame, the one the app shows, where its card has it).

    Raises:
        ModelCardError: When there is no segmentation model for ``modality`` (or no such folder).
    """
    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    if not folder.is_dir():
        raise ModelCardError(folder, f"no {modality} segmentation model: the folder does not exist")
    cards = _cards(folder)
    segs = [c for c in cards if c.modality == modality and c.role == "seg"]
    if not segs:
        raise ModelCardError(folder, f"no {modality} segmentation model in this folder (run `python -m search` to build them)")
    fallback = False
    if modality == "echo" and echo_mode is None:  # no recording to look at (model lists, live sources): contrast
        segs = [c for c in segs if c.echo_mode == "contrast"] or segs
    elif modality == "echo":
        if echo_mode not in ECHO_MODES:
            raise ValueError(f"unknown echo mode {echo_mode!r} (use {' or '.join(ECHO_MODES)})")
        fitting = [c for c in segs if c.echo_mode == echo_mode]
        segs, fallback = fitting or segs, not fitting
    problems = {c.id: _file_problem(c) for c in segs}
    usable = [c for c in segs if problems[c.id] is None]
    for card in segs if usable else ():  # none usable: the best is returned and its load says what is wrong
        if problems[card.id] is not None:
            _warn_once(card.card_path, f"not choosing {card.id} as the default {modality} model: {problems[card.id]}")
    local = local if local is not None else LocalFigures.load()
    by_id = {c.id: c for c in cards}
    seg = sorted(usable or segs, key=lambda c: _rank(c, by_id, local))[0]
    if fallback:  # said once per folder and mode
        _warn_once(folder / f".echo-mode-{echo_mode}", echo_mode_note(seg, echo_mode, folder) or "")
    return seg, qc_for(seg, folder)


@dataclass
class LoadedModel:
    """A verified card with its warmed-up onnxruntime session."""

    card: ModelCard
    session: ort.InferenceSession
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; returns output name -> array."""
        return dict(zip(self.output_names, self.session.run(list(self.output_names), feeds)))


def load_model(card: ModelCard, *, intra_op_threads: int | None = None, warm_up_runs: int = 3) -> LoadedModel:
    """Verify a card (hash, input shape), open its session, check the I/O contract, warm it up.

    Raises:
        ModelCardError: File missing, hash mismatch, wrong input shape, or outputs the role needs absent.
    """
    card.verify()
    try:
        session = create_session(card.onnx_path, intra_op_threads=intra_op_threads, allow_spinning=False)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelCardError(card.onnx_path, f"onnxruntime cannot load it: {exc}") from None
    inputs = tuple(i.name for i in session.get_inputs())
    outputs = tuple(o.name for o in session.get_outputs())
    if card.role == "seg":
        needed_in, needed_out = (card.input_name,), SEG_OUTPUTS
    else:
        needed_in, needed_out = QC_INPUTS, QC_OUTPUTS
    missing = [n for n in needed_in if n not in inputs] + [n for n in needed_out if n not in outputs]
    if missing:
        raise ModelCardError(card.onnx_path, f"{card.role} model lacks {missing} (inputs {list(inputs)}, outputs {list(outputs)})")
    if card.role == "seg":
        n_classes = len(card.classes)
        probs_shape = next(o.shape for o in session.get_outputs() if o.name == "probs")
        if isinstance(probs_shape[1], int) and probs_shape[1] != n_classes:
            raise ModelCardError(card.onnx_path, f"outputs {probs_shape[1]} classes but its card lists {n_classes}")
    if warm_up_runs:
        warm_up(session, warm_up_runs)
    return LoadedModel(card=card, session=session, input_names=inputs, output_names=outputs)
