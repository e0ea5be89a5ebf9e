"""Validation of a model on labelled recordings: accuracy, QC calibration and latency in one report.

Each source runs through the real pipeline exactly as ``python -m app replay`` runs it
(``app.engine.replay.replay``); a hook on each frame's result scores the mask against the
source's ground truth: Dice and HD95 (95th percentile of the symmetric boundary distance, in
pixels and, when the source gives its spacing, in mm) per class. Classes are matched by name
(``app.metrics.match_classes``: the model card's classes against the source's label map, e.g. a
contrast model's myocardium against CAMUS label 2 MYO); a model class the ground truth lacks is
listed under ``classes_not_scored``, never scored as Dice 0. The report adds the QC
calibration (MAE, Pearson r of predicted vs true Dice), how often the viewer's traffic light is
right, and latency percentiles and fps per case and over all cases. ``write_html`` draws a single
self-contained page (PNG plots embedded as base64, drawn with Pillow).

Sources are recordings and folders (as ``replay`` opens them) or labelled datasets given as
``KIND:DIR`` (``camus``, ``acdc``, ``echonet``, ``dicom``, ``nifti``: the specs ``python -m search
--data`` trains on, indexed by ``app.data.dataset_index`` with the same official splits). Each
dataset case is read once (its loader gives the frames, the ground truth, the labelled frames and
the dataset's label map) and replayed as a ``case_source``; ``part="test"`` keeps only the
dataset's official test part. EchoNet is scored on its traced (ED and ES) frames only: frames
without ground truth are run and timed, never scored.

Cases are named as replay names sources (kind and a hash of the path; a dataset case by its
anonymous id, the dataset kind and a hash of its file name, as training cards count them), never
by file name.
"""

from __future__ import annotations

import base64
import html
import io
import math
import queue
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from app.data.case import DataError
from app.data.data_spec import DataSpecError, case_list_sha256, looks_like_data_spec, parse_data_spec
from app.data.dataset_index import PARTS, CaseRef, cases_of_part, open_dataset
from app.engine.models import default_models, find_model
from app.engine.replay import StopRequest, machine_description, replay
from app.engine.replay_output import (REPORT_SUFFIXES, OutputError, check_distinct, check_output_path,
                                      write_json_atomic)
from app.engine.sources import echo_mode_of, open_source
from app.engine.stats import trim_warmup
from app.engine.types import FrameResult
from app.metrics import NOT_SCORED_REASON, ClassMatch, dice_per_class, match_classes, qc_calibration
from app.realtime import REALTIME

HTML_SUFFIXES = (".html", ".htm")
GOOD, FAIR = 0.80, 0.70  # the viewer's traffic-light defaults (app.viewer.quality.QualityThresholds)
_RECORDING_SUFFIXES = (".dcm", ".dicom", ".npz", ".nii", ".nii.gz", ".avi", ".mp4")
_SCHEMES = ("phantom:", "camera:", "igtl://")


class ValidateInputError(ValueError):
    """A source validate cannot use (missing, or without ground truth)."""


@dataclass(frozen=True)
class DatasetCase:
    """One labelled case of a ``KIND:DIR`` dataset, not read yet.

    Attributes:
        ref: The case in the dataset's index (anonymous id, official part, its reader).
        kind: The dataset kind (``camus``, ...), the case's kind in the report.
        root: The dataset folder (left out of the report's messages).
    """

    ref: CaseRef
    kind: str
    root: Path

    @property
    def name(self) -> str:
        return self.ref.case_id


# -- sources ----------------------------------------------------------------------------------------
def _is_patient_folder(path: Path) -> bool:
    """An ACDC (``Info.cfg``) or CAMUS (``Info_4CH.cfg`` / ``*_4CH_ED.*``) patient folder: one recording."""
    from app.data.loaders.camus import is_camus_patient

    return path.is_dir() and ((path / "Info.cfg").is_file() or is_camus_patient(path))


def _is_recording(path: Path) -> bool:
    name = path.name.lower()
    if path.is_dir():
        return _is_patient_folder(path)
    if name.endswith(("_gt.nii", "_gt.nii.gz")):  # the labels of <stem>.nii.gz, not a recording
        return False
    if name.endswith((".dcm", ".dicom")) and _is_dicom_seg_file(path):  # the labels of another DICOM
        return False
    return name.endswith(_RECORDING_SUFFIXES) and not name.endswith("_mask.npz")


def _is_dicom_seg_file(path: Path) -> bool:
    try:
        import pydicom

        from app.data.loaders.dicom_seg import is_dicom_seg

        return is_dicom_seg(pydicom.dcmread(str(path), stop_before_pixels=True))
    except Exception:  # not readable as DICOM here: opening it later says what is wrong
        return False


def expand_sources(specs: list[str]) -> list[str]:
    """A folder that is not itself a recording (an ACDC or CAMUS patient folder is) becomes its recordings."""
    out: list[str] = []
    for spec in specs:
        path = Path(spec)
        if not spec.startswith(_SCHEMES) and path.is_dir() and not _is_patient_folder(path):
            inner = sorted(str(p) for p in path.iterdir() if _is_recording(p))
            out.extend(inner or [spec])
        else:
            out.append(spec)
    return out


def dataset_cases(spec_text: str, part: str = "all") -> tuple[list[DatasetCase], dict]:
    """The cases of a ``KIND:DIR`` dataset in ``part`` and the report's entry on them.

    Returns:
        The cases (in the index's order) and ``{"source", "dataset", "part", "official_split",
        "cases", "case_list_sha256", "unlabelled_left_out"}``: the kind, counts and the hash of the
        sorted anonymous case ids (the hash a card's ``data.part_sha256`` gives for the same
        cases), never a folder or a file name.

    Raises:
        ValidateInputError: a bad spec, a folder with no labelled case of its kind, or ``part="test"``
            of a dataset without a labelled official test part (one line, saying what to do instead).
    """
    try:
        spec = parse_data_spec(spec_text, option="SOURCE")
        index = open_dataset(spec, warn_unlabelled=False)  # the report and the summary count them
    except DataSpecError as exc:
        raise ValidateInputError(str(exc)) from None
    except DataError as exc:
        raise ValidateInputError(f"SOURCE {spec_text.strip()}: {exc.problem}") from None
    try:
        refs = cases_of_part(index, part)
    except DataError as exc:
        raise ValidateInputError(f"SOURCE {spec_text.strip()}: {exc.problem}; use --part all, or move the held-out "
                                 "cases into a folder of their own and validate that folder") from None
    entry = {"source": spec.kind, "dataset": spec.dataset_name, "part": part, "official_split": index.official,
             "cases": len(refs), "case_list_sha256": case_list_sha256([r.case_id for r in refs]),
             "unlabelled_left_out": index.unlabelled}
    return [DatasetCase(r, spec.kind, spec.root) for r in refs], entry


def resolve_inputs(sources: list[str], part: str = "all") -> tuple[list[str | DatasetCase], list[dict]]:
    """Every case to validate: recordings (``expand_sources``) and the cases of ``KIND:DIR`` datasets.

    Returns:
        The cases in the order given (a recording as its spec, a dataset case as a ``DatasetCase``)
        and one report entry per dataset (``dataset_cases``).

    Raises:
        ValidateInputError: an unknown part, ``part="test"`` with a recording or folder (only a
            dataset has an official test part), or a dataset ``dataset_cases`` refuses.
    """
    if part not in PARTS:
        raise ValidateInputError(f"--part must be one of {', '.join(PARTS)}, got {part!r}")
    items: list[str | DatasetCase] = []
    data: list[dict] = []
    for spec in sources:
        if looks_like_data_spec(spec):
            cases, entry = dataset_cases(spec, part)
            items.extend(cases)
            data.append(entry)
        elif part != "all":
            shown = spec if spec.startswith(_SCHEMES) else Path(spec).name
            raise ValidateInputError(f"{shown}: --part {part} picks a dataset's official {part} part; give the dataset "
                                     "as KIND:DIR (camus:, acdc:, echonet:), or validate these recordings with --part all")
        else:
            items.extend(expand_sources([spec]))
    return items, data


def check_labelled(spec: str) -> None:
    """Open the source once to see that it carries ground truth.

    Raises:
        ValidateInputError: No ground truth. DataError: It cannot be opened.
    """
    if spec.startswith(("camera:", "igtl://")):
        raise ValidateInputError(f"{spec}: a live source has no labels; validate needs labelled recordings (use replay)")
    source = open_source(spec)
    try:
        labelled = source.info.has_ground_truth
    finally:
        source.close()
    if not labelled:
        shown = spec if spec.startswith(_SCHEMES) else Path(spec).name
        raise ValidateInputError(f"{shown}: this source has no ground truth; validate needs labels "
                                 "(a <stem>_mask.npz beside a DICOM, an ACDC or CAMUS folder, a phantom case), or a "
                                 "dataset as KIND:DIR (a DICOM SEG: dicom:DIR; NIfTI _gt pairs: nifti:DIR; EchoNet: "
                                 "echonet:DIR); use replay")


# -- boundary distance ------------------------------------------------------------------------------
def _boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` (bool) with a 4-neighbour outside it (the image border counts as outside)."""
    m = mask.astype(np.uint8)
    eroded = cv2.erode(np.pad(m, 1), np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8))[1:-1, 1:-1]
    return (m > 0) & (eroded == 0)


def _directed(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Distances (pixels) from each boundary pixel of ``src`` to the nearest boundary pixel of ``dst``."""
    field = cv2.distanceTransform(np.where(dst, 0, 255).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return field[src]


def _directed_mm(src: np.ndarray, dst: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """As ``_directed`` in mm for anisotropic pixels (nearest point, in chunks)."""
    scale = np.asarray(spacing, dtype=np.float64)
    a = np.argwhere(src) * scale
    b = np.argwhere(dst) * scale
    out = np.empty(len(a))
    for i in range(0, len(a), 512):
        d = a[i:i + 512, None, :] - b[None, :, :]
        out[i:i + 512] = np.sqrt((d * d).sum(axis=2)).min(axis=1)
    return out


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float] | None = None) -> tuple[float, float | None]:
    """95th-percentile Hausdorff distance between two binary masks, ``(pixels, mm or None)``.

    The larger of the two directed 95th percentiles (as medpy and the challenges report it). NaN
    when either mask is empty (undefined).
    """
    bp, bg = _boundary(pred), _boundary(gt)
    if not bp.any() or not bg.any():
        return float("nan"), None
    px = max(float(np.percentile(_directed(bp, bg), 95)), float(np.percentile(_directed(bg, bp), 95)))
    if spacing is None:
        return px, None
    if math.isclose(spacing[0], spacing[1], rel_tol=1e-3):
        return px, px * float(spacing[0])
    mm = max(float(np.percentile(_directed_mm(bp, bg, spacing), 95)),
             float(np.percentile(_directed_mm(bg, bp, spacing), 95)))
    return px, mm


def level(dice: float) -> str:
    """The traffic-light colour of a Dice value with the viewer's default thresholds."""
    return "green" if dice >= GOOD else "amber" if dice >= FAIR else "red"


# -- per-frame scoring ------------------------------------------------------------------------------
class FrameScorer:
    """Scores each frame's mask on a worker thread (keeps the pipeline's delivery thread free)."""

    def __init__(self, classes: ClassMatch, spacing: tuple[float, float] | None):
        self.match, self.spacing = classes, spacing
        self.classes = classes.scored
        self.frames: list[dict] = []
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="validate-scorer", daemon=True)
        self._thread.start()

    def __call__(self, result: FrameResult) -> None:
        self._queue.put(result)

    def finish(self) -> list[dict]:
        self._queue.put(None)
        self._thread.join()
        return sorted(self.frames, key=lambda f: f["index"])

    def _work(self) -> None:
        while (result := self._queue.get()) is not None:
            gt = result.frame.ground_truth
            entry = {"index": result.frame.index, "predicted_dice": result.predicted_dice,
                     "true_dice": result.true_dice,
                     "latency_ms": result.latency_ms if result.error is None else None}
            if result.error is None and result.mask is not None and gt is not None:
                entry["classes"] = self._score(result.mask, gt)
            self.frames.append(entry)

    def _score(self, mask: np.ndarray, gt: np.ndarray) -> dict[int, dict]:
        if mask.shape != gt.shape:
            mask = cv2.resize(mask, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
        gt = self.match.remap(gt)  # the model's numbering; classes it lacks are background
        dice = dice_per_class(mask, gt, self.classes)
        out = {}
        for c in self.classes:
            px, mm = hd95(mask == c, gt == c, self.spacing)
            out[c] = {"dice": dice[c], "hd95_px": px, "hd95_mm": mm}
        return out


# -- the report -------------------------------------------------------------------------------------
def _num(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return _num(float(np.mean(finite))) if finite else None


def _percentiles(latency: np.ndarray) -> dict[str, float | None]:
    if latency.size == 0:
        return {"p50": None, "p95": None, "p99": None}
    return {k: _num(float(np.percentile(latency, q)), 3) for k, q in (("p50", 50), ("p95", 95), ("p99", 99))}


def case_summary(replay_report: dict, frames: list[dict], class_names: dict[int, str],
                 match: ClassMatch | None = None) -> dict:
    """One case: per-class Dice and HD95 (means over labelled frames), QC and latency.

    ``class_names``: the model's foreground classes; with ``match`` only those it scores get a
    row (with the ground-truth label each was scored against), the rest go to ``classes_not_scored``.
    """
    scored = [f for f in frames if "classes" in f]
    per_class = {}
    for c, name in class_names.items():
        if match is not None and c not in match.ground_truth_label:
            continue
        rows = [f["classes"][c] for f in scored]
        per_class[name] = {
            "label": c,
            "ground_truth_label": match.ground_truth_label[c] if match is not None else c,
            "dice": _mean([r["dice"] for r in rows]),
            "hd95_px": _mean([r["hd95_px"] for r in rows]),
            "hd95_mm": _mean([r["hd95_mm"] for r in rows if r["hd95_mm"] is not None]),
            "frames_scored": sum(math.isfinite(r["dice"]) for r in rows),
            "frames_hd95_undefined": sum(math.isfinite(r["dice"]) and not math.isfinite(r["hd95_px"]) for r in rows),
        }
    pairs = [(f["predicted_dice"], f["true_dice"]) for f in scored
             if f["predicted_dice"] is not None and f["true_dice"] is not None]
    cal = qc_calibration([p for p, _ in pairs], [t for _, t in pairs])
    out = {
        "name": replay_report["source"]["name"], "kind": replay_report["source"]["kind"],
        "modality": replay_report["source"]["modality"], "frames": replay_report["frames"],
        "processed": replay_report["processed"], "labelled_frames": len(scored), "errors": replay_report["errors"],
        "dice_mean": _mean([f["true_dice"] for f in scored]),
        "classes": per_class,
        **({"classes_not_scored": list(match.not_scored.values())} if match is not None and match.not_scored else {}),
        "qc": {"mae": _num(cal["qc_mae"]), "pearson": _num(cal["qc_pearson"]), "n": cal["n"]},
        "latency_ms": {k: replay_report["latency_ms"].get(k) for k in ("p50", "p95", "p99")},
        "fps": replay_report["fps"],
        "complete": replay_report.get("complete", False),
    }
    for key in ("source_error", "output_error", "first_error"):
        if replay_report.get(key):
            out[key] = replay_report[key]
    return out


def traffic_light(pairs: list[tuple[float, float]]) -> dict:
    """How often the light (from predicted Dice) shows the colour the true Dice deserves."""
    confusion = {t: {p: 0 for p in ("green", "amber", "red")} for t in ("green", "amber", "red")}
    for predicted, true in pairs:
        confusion[level(true)][level(predicted)] += 1
    n = len(pairs)
    right = sum(confusion[c][c] for c in confusion)

    def rate(colour: str) -> float | None:
        total = sum(confusion[colour].values())
        return _num(confusion[colour][colour] / total) if total else None

    return {"thresholds": {"green": GOOD, "red_below": FAIR}, "n": n,
            "accuracy": _num(right / n) if n else None,
            "green_right": rate("green"), "red_right": rate("red"),
            "confusion_true_vs_shown": confusion}


def aggregate(cases: list[dict], frames_by_case: list[list[dict]]) -> dict:
    """QC calibration, traffic light and latency over all frames of all cases."""
    pairs = [(f["predicted_dice"], f["true_dice"]) for frames in frames_by_case for f in frames
             if "classes" in f and f["predicted_dice"] is not None and f["true_dice"] is not None]
    cal = qc_calibration([p for p, _ in pairs], [t for _, t in pairs])
    latency = np.concatenate([trim_warmup(np.asarray([f["latency_ms"] for f in frames if f["latency_ms"] is not None],
                                                     dtype=np.float64))[0] for frames in frames_by_case]
                             or [np.zeros(0)])
    time_s = sum(c["processed"] / c["fps"] for c in cases if c["fps"])
    fps = sum(c["processed"] for c in cases if c["fps"]) / time_s if time_s else 0.0
    lat = _percentiles(latency)
    return {
        "qc_calibration": {"mae": _num(cal["qc_mae"]), "pearson": _num(cal["qc_pearson"]), "n": cal["n"]},
        "traffic_light": traffic_light(pairs),
        "latency_ms": lat,
        "fps": round(fps, 3),
        "meets_realtime": REALTIME.meets(lat["p95"], fps),
        "latency_frames": int(latency.size),
        "dice_mean": _mean([c["dice_mean"] for c in cases]),
    }


# -- the run ----------------------------------------------------------------------------------------
def check_outputs(report: Path, html_out: Path | None, sources: list[str]) -> None:
    """Output paths are checked before any work (and must not overwrite a source)."""
    outputs = {"--report": check_output_path(report, REPORT_SUFFIXES, "--report")}
    if html_out is not None:
        outputs["--html"] = check_output_path(html_out, HTML_SUFFIXES, "--html")
    files = {f"SOURCE {i + 1}": Path(s) for i, s in enumerate(sources)
             if not s.startswith(_SCHEMES) and Path(s).is_file()}
    check_distinct({**files, **outputs})


def validate(sources: list[str], *, report: Path, model_id: str | None = None, html_out: Path | None = None,
             models_dir=None, fast: bool = False, max_frames: int | None = None,
             stop: StopRequest | None = None, echo_mode: str = "auto", part: str = "all") -> dict:
    """Validate a model on labelled sources; writes the JSON report (and the HTML page) and returns it.

    ``sources``: recordings, folders of recordings, and datasets as ``KIND:DIR`` (every labelled case,
    or with ``part="test"`` the dataset's official test part; the report's ``data`` says which).
    ``echo_mode`` (``auto``, ``contrast``, ``bmode``): each echo case runs the default pair of its
    echo mode (detected once per case with ``auto``); each case records its ``echo_mode`` and ``models``.
    A dataset case that cannot be read is reported with its ``source_error`` and the others still run.

    Raises:
        ValidateInputError, OutputError, ReplayArgumentError, DataError, ModelCardError: bad input,
            found before any case runs.
    """
    if not sources:
        raise ValidateInputError("give at least one SOURCE")
    check_outputs(Path(report), html_out, sources)
    specs, data = resolve_inputs([str(s) for s in sources], part)
    for spec in specs:
        if isinstance(spec, str):
            check_labelled(spec)
    stop = stop or StopRequest()
    cases, frames_by_case = [], []
    options = {"model_id": model_id, "models_dir": models_dir, "fast": fast, "max_frames": max_frames, "stop": stop,
               "echo_mode": echo_mode}
    with tempfile.TemporaryDirectory(prefix="validate-") as tmp:
        for i, spec in enumerate(specs):
            if stop.requested:
                break
            tmp_report = Path(tmp) / f"case{i}.json"
            if isinstance(spec, DatasetCase):
                case, frames = _run_dataset_case(spec, tmp_report, **options)
            else:
                case, frames = _run_case(spec, tmp_report, **options)
            cases.append(case)
            frames_by_case.append(frames)
    out = {
        "models": next((c["_models"] for c in cases if c.get("_models")), None),
        "mode": "fast" if fast else "paced",
        "max_frames": max_frames,
        **({"data": data} if data else {}),
        "cases": cases,
        "overall": aggregate(cases, frames_by_case),
        "machine": machine_description(),
        "complete": not stop.requested and len(cases) == len(specs),
    }
    for case in cases:
        case.pop("_models", None)
    not_scored = not_scored_entry(cases)
    if not_scored:
        out["classes_not_scored"] = not_scored
    if stop.requested:
        out["interrupted_by"] = stop.reason
    write_json_atomic(Path(report), out)
    if html_out is not None:
        write_html(Path(html_out), out, frames_by_case)
    return out


def not_scored_entry(cases: list[dict]) -> dict | None:
    """The report's one note on the model classes some case's ground truth lacks (None: all scored)."""
    names = [n for c in cases for n in c.get("classes_not_scored", ())]
    if not names:
        return None
    return {"classes": list(dict.fromkeys(names)),
            "cases": [c["name"] for c in cases if c.get("classes_not_scored")], "reason": NOT_SCORED_REASON}


def _run_dataset_case(item: DatasetCase, tmp_report: Path, **options) -> tuple[dict, list[dict]]:
    """Read one dataset case and replay it as a ``case_source`` (a case that cannot be read: a failed entry)."""
    from app.engine.sources.cases import case_source

    try:
        case = item.ref.load()
    except (DataError, OSError) as exc:
        return _unread_case(item, exc), []
    return _run_case(str(item.ref.path), tmp_report, opener=lambda: case_source(case, name=item.name),
                     name=item.name, kind=item.kind, **options)


def _unread_case(item: DatasetCase, exc: Exception) -> dict:
    """The report entry of a dataset case whose files could not be read (no file or folder named)."""
    from app.engine.replay import _scrubber

    message = _scrubber(str(item.ref.path), item.name)(str(exc)).replace(str(item.root), "<dataset>")
    return {"name": item.name, "kind": item.kind, "modality": item.ref.modality, "frames": 0, "processed": 0,
            "labelled_frames": 0, "errors": 0, "dice_mean": None, "classes": {},
            "qc": {"mae": None, "pearson": None, "n": 0}, "latency_ms": {"p50": None, "p95": None, "p99": None},
            "fps": 0.0, "complete": False, "source_error": f"could not be read: {message}",
            "spacing_mm": None, "models": None, "echo_mode": None}


def _spacing(source) -> tuple[float, float] | None:
    """The source's pixel spacing in mm when it has a real one (EchoNet gives none: NaN)."""
    spacing = source.info.spacing_mm
    if not spacing or not all(math.isfinite(float(v)) and float(v) > 0 for v in spacing):
        return None
    return (float(spacing[0]), float(spacing[1]))


def _run_case(spec: str, tmp_report: Path, *, model_id, models_dir, fast, max_frames, stop,
              echo_mode: str = "auto", opener=None, name: str | None = None,
              kind: str | None = None) -> tuple[dict, list[dict]]:
    source = opener() if opener is not None else open_source(spec)
    try:
        spacing, modality = _spacing(source), source.info.modality
        label_map = dict(source.info.label_map) if source.info.has_ground_truth else {}
        echo = echo_mode_of(source, echo_mode)  # decided once here; replay is told, not asked again
    finally:
        source.close()
    # the model replay will use (replay checks it and picks the QC pair itself)
    seg = find_model(model_id, models_dir) if model_id is not None else default_models(
        modality or "echo", models_dir, echo_mode=echo.mode if echo else None)[0]
    match = match_classes(seg.classes, label_map)  # the pipeline's true Dice matches the same way
    scorer = FrameScorer(match, spacing)
    try:
        rep = replay(spec, report=tmp_report, model_id=model_id, fast=fast, models_dir=models_dir,
                     max_frames=max_frames, stop=stop, on_result=scorer, echo_mode=echo or echo_mode,
                     opener=opener, name=name, kind=kind)
    finally:
        frames = scorer.finish()
    names = {c: n for c, n in seg.classes.items() if c != 0}
    case = case_summary(rep, frames, names, match)
    case["spacing_mm"] = list(spacing) if spacing else None
    case["models"] = rep["models"]
    case["echo_mode"] = rep.get("echo_mode")
    case["_models"] = rep["models"]
    return case, frames


# -- the HTML page ----------------------------------------------------------------------------------
_PALETTE = [(31, 94, 180), (230, 120, 0), (40, 150, 60), (200, 40, 40), (120, 70, 170)]


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _axes(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], ticks: list[float], vertical: bool) -> None:
    left, top, right, bottom = box
    for t in ticks:
        if vertical:
            y = bottom - t * (bottom - top)
            draw.line([(left, y), (right, y)], fill=(225, 225, 225))
            draw.text((left - 34, y - 6), f"{t:.1f}", fill=(20, 20, 20))
        else:
            x = left + t * (right - left)
            draw.line([(x, top), (x, bottom)], fill=(225, 225, 225))
            draw.text((x - 8, bottom + 6), f"{t:.1f}", fill=(20, 20, 20))
    draw.rectangle(box, outline=(20, 20, 20))


def dice_bar_chart(cases: list[dict]) -> Image.Image:
    """Grouped bars: mean Dice per case, one bar per class."""
    names = list(dict.fromkeys(n for case in cases for n in case["classes"]))  # cases may score different classes
    width = max(500, 90 + 40 * max(1, len(names)) * max(1, len(cases)) + 20 * len(cases))
    img = Image.new("RGB", (width, 380), "white")
    draw = ImageDraw.Draw(img)
    box = (60, 40, width - 20, 320)
    _axes(draw, box, [i / 5 for i in range(6)], vertical=True)
    draw.text((60, 12), "Dice per case and class", fill=(20, 20, 20))
    slot = (box[2] - box[0]) / max(1, len(cases))
    bar = min(36.0, (slot - 16) / max(1, len(names)))
    for i, case in enumerate(cases):
        x0 = box[0] + i * slot + 8
        for j, name in enumerate(names):
            dice = case["classes"].get(name, {}).get("dice")
            if dice is not None:
                draw.rectangle((x0 + j * bar, box[3] - dice * (box[3] - box[1]), x0 + (j + 1) * bar - 2, box[3]),
                               fill=_PALETTE[j % len(_PALETTE)])
        draw.text((x0, box[3] + 8), case["name"][:22], fill=(20, 20, 20))
    for j, name in enumerate(names):
        draw.rectangle((box[0] + 10 + 120 * j, 352, box[0] + 22 + 120 * j, 364), fill=_PALETTE[j % len(_PALETTE)])
        draw.text((box[0] + 28 + 120 * j, 352), name[:16], fill=(20, 20, 20))
    return img


def qc_scatter(frames_by_case: list[list[dict]]) -> Image.Image:
    """Predicted vs true Dice per frame, the identity line and the traffic-light thresholds."""
    img = Image.new("RGB", (520, 520), "white")
    draw = ImageDraw.Draw(img)
    box = (60, 40, 500, 480)
    _axes(draw, box, [i / 5 for i in range(6)], vertical=True)
    _axes(draw, box, [i / 5 for i in range(6)], vertical=False)
    draw.text((60, 12), "QC: predicted Dice (y) vs true Dice (x)", fill=(20, 20, 20))
    span = box[2] - box[0]
    for value, colour in ((GOOD, (40, 150, 60)), (FAIR, (200, 40, 40))):
        draw.line([(box[0] + value * span, box[1]), (box[0] + value * span, box[3])], fill=colour)
        draw.line([(box[0], box[3] - value * span), (box[2], box[3] - value * span)], fill=colour)
    draw.line([(box[0], box[3]), (box[2], box[1])], fill=(150, 150, 150))
    for i, frames in enumerate(frames_by_case):
        for f in frames:
            if f["predicted_dice"] is None or f["true_dice"] is None:
                continue
            x = box[0] + min(max(f["true_dice"], 0.0), 1.0) * span
            y = box[3] - min(max(f["predicted_dice"], 0.0), 1.0) * span
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=_PALETTE[i % len(_PALETTE)])
    return img


def _latency_png(frames_by_case: list[list[dict]]) -> str | None:
    from app.engine.latency_plot import plot_latency_cdf

    latency = np.asarray([f["latency_ms"] for frames in frames_by_case for f in frames if f["latency_ms"] is not None],
                         dtype=np.float64)
    if latency.size == 0:
        return None
    with tempfile.TemporaryDirectory(prefix="validate-plot-") as tmp:
        path = plot_latency_cdf(latency, Path(tmp) / "latency.png", title="End-to-end latency, all cases")
        return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _cell(value) -> str:
    if value is None:
        return "-"
    return html.escape(f"{value:.3f}" if isinstance(value, float) else str(value))


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(out: dict, frames_by_case: list[list[dict]]) -> str:
    """The page as a string: tables and the three plots inline."""
    cases, overall = out["cases"], out["overall"]
    rows = [[c["name"], n, k["dice"], k["hd95_px"], k["hd95_mm"], k["frames_scored"]]
            for c in cases for n, k in c["classes"].items()]
    case_rows = [[c["name"], c["labelled_frames"], c["dice_mean"], c["qc"]["mae"], c["qc"]["pearson"],
                  c["latency_ms"]["p50"], c["latency_ms"]["p95"], c["latency_ms"]["p99"], c["fps"]] for c in cases]
    tl, qc, lat = overall["traffic_light"], overall["qc_calibration"], overall["latency_ms"]
    images = [("Dice per case", _png(dice_bar_chart(cases))), ("QC predicted vs true", _png(qc_scatter(frames_by_case)))]
    latency_png = _latency_png(frames_by_case)
    if latency_png:
        images.append(("Latency CDF", latency_png))
    figures = "".join(f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{b}"><figcaption>'
                      f"{html.escape(t)}</figcaption></figure>" for t, b in images)
    models = out.get("models") or {}
    data = "".join(f"<p>Data: {html.escape(d['dataset'])}, part {html.escape(d['part'])}, {d['cases']} labelled cases "
                   f"({html.escape(d['official_split'] or 'no official split')}; case list sha256 "
                   f"{html.escape(d['case_list_sha256'][:16])}...).</p>" for d in out.get("data", ()))
    skipped = out.get("classes_not_scored")
    note = (f"<p>Not scored: {html.escape(', '.join(skipped['classes']))} in {len(skipped['cases'])} case(s): "
            f"{html.escape(skipped['reason'])}.</p>" if skipped else "")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Validation report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}figure{{display:inline-block;margin:1em}}</style>
</head><body>
<h1>Validation report</h1>
<p>Model {_cell(models.get('seg'))}, QC {_cell(models.get('qc'))}; {len(cases)} cases, {_cell(out['mode'])} mode;
{_cell(out['machine'])}.</p>
{data}
<h2>Overall</h2>
{_table(['mean Dice', 'QC MAE', 'QC Pearson r', 'light right', 'green right', 'red right', 'p50 ms', 'p95 ms',
         'p99 ms', 'fps'],
        [[overall['dice_mean'], qc['mae'], qc['pearson'], tl['accuracy'], tl['green_right'], tl['red_right'],
          lat['p50'], lat['p95'], lat['p99'], overall['fps']]])}
<h2>Cases</h2>
{_table(['case', 'labelled frames', 'mean Dice', 'QC MAE', 'QC r', 'p50 ms', 'p95 ms', 'p99 ms', 'fps'], case_rows)}
<h2>Classes</h2>
{_table(['case', 'class', 'Dice', 'HD95 px', 'HD95 mm', 'frames'], rows)}
{note}
<h2>Plots</h2>
{figures}
</body></html>
"""


def write_html(path: Path, out: dict, frames_by_case: list[list[dict]]) -> Path:
    path.write_text(render_html(out, frames_by_case), encoding="utf-8")
    return path


__all__ = ["validate", "hd95", "expand_sources", "resolve_inputs", "dataset_cases", "check_labelled", "DatasetCase",
           "ValidateInputError", "OutputError", "write_html"]
