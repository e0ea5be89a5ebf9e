"""The frame of a cine row table shared by msnas-hw and rtdnas: patients, split, retraining, evaluation.

A run folder holds ``config.json`` (a run refuses a folder made with another configuration),
``cases/`` (the phantom patients), ``split.json`` and ``rows/<key>/`` (``train.pt`` checkpoint,
``weights.pt``, ``result.json``). Each step is skipped when its result is there, so an interrupted
run resumes; training resumes from its own checkpoint mid-way. The methods subclass or wrap
:class:`CineRows` and add their searches, measurements, reports and shipping.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from app.data.case import ACDC_LABELS, Case
from search import distributed
from search.core.genotypes import MultiscaleGenotype
from search.train.cine_config import CineRowsConfig, RowSpec, predates_restarts
from search.train.clips import PatientSplit, clip_dataset, load_cases
from search.train.evaluate import evaluate_segmentation, torch_seg_predictor
from search.train.loop import TrainConfig, seed_everything
from search.train.losses import segmentation_loss
from search.train.restarts import CLIPS_SCORED, RestartPolicy, fit_with_restarts
from search.train.row_networks import build_row_network, row_widths
from search.train.stages import Stopwatch

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
FOREGROUND = {c: ACDC_LABELS[c] for c in (1, 2, 3)}  # 1 RV, 2 MYO, 3 LV


def write_json(path: Path, doc: Any) -> None:
    """Write ``doc`` as JSON atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=True))
    tmp.replace(path)


def read_json(path: Path) -> Any:
    """The JSON document at ``path``."""
    return json.loads(path.read_text())


#: What a pick candidate's entry records of its short training (``candidate_scores``).
CANDIDATE_SCORES = ("val_dice", "val_per_class", "params", "train_seconds", "final_loss")


def candidate_scores(result: dict[str, Any]) -> dict[str, Any]:
    """A pick candidate's short-training figures for its ``pick.json`` entry, from its row ``result.json``
    (``CANDIDATE_SCORES``; rtdnas and msnas-hw)."""
    losses = result["train_losses"]
    return {"val_dice": result["dice"]["mean"], "val_per_class": result["dice"]["per_class"],
            "params": result["params"], "train_seconds": result["train_seconds"],
            "final_loss": losses[-1] if losses else None}


def ranked_candidates(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scored candidates of a pick, best first: highest ``val_dice``, ties to the lower index."""
    return sorted((c for c in entries if "val_dice" in c), key=lambda c: (-c["val_dice"], c["index"]))


def scored_on_test(result: dict[str, Any]) -> bool:
    """Whether a ``rows/<key>/result.json`` is a table row (Dice on the test patients), not a pick candidate's short
    training scored on other patients (``train_row(eval_ids=...)``), which no table or report may list."""
    return bool((result.get("patients") or {}).get("scored_on_test", True))


def check_run_config(path: Path, config: dict[str, Any], say: Progress) -> None:
    """Write a cine run's ``config.json`` (``config``, as recorded), or refuse a folder made with another
    configuration. Accepted as the same: a folder written before dataset folders were hashed, or before the
    collapse restarts (``predates_restarts``: its finished rows keep their one training); either is rewritten."""
    from search.privacy import same_config

    doc = json.loads(json.dumps(config))
    if path.is_file():
        old = read_json(path)
        if predates_restarts(old, doc):
            say(f"{path}: made before the collapse restarts; its finished rows keep their one training, "
                "rows trained from now on restart a collapse")
        elif not same_config(old, doc):
            raise ValueError(f"{path}: this run folder was made with another configuration; "
                             "use a new --out or delete the folder")
        if old == doc:
            return
    write_json(path, doc)


class CineRows:
    """Patients, split, retraining and evaluation of the rows of one cine run folder.

    Args:
        cfg: The run configuration.
        out: Run folder (created; reused to resume).
        docs_dir: Where the report and figures are copied (None: only under ``out``).
        models_dir: Where the shipped model goes (None: not shipped).
        progress: Called with one-line status messages (the CLI prints them).
        causal: Retrain the searched rows with causal time, every clip z-scored per frame (what a
            streaming model sees at deployment, ``search.export.streaming``), and evaluate them so.
    """

    def __init__(self, cfg: CineRowsConfig, out: Path, *, docs_dir: Path | None = None,
                 models_dir: Path | None = None, progress: Progress | None = None, causal: bool = False):
        self.causal = causal
        self.cfg = cfg
        self.out = Path(out)
        self.docs_dir = docs_dir
        self.models_dir = models_dir
        self.say = progress or (lambda msg: log.info("%s", msg))
        self._cases = None
        self._split: PatientSplit | None = None

    def _check_config(self) -> None:
        """Write ``config.json``, or refuse a run folder made with another configuration."""
        from search.train import precision

        check_run_config(self.out / "config.json", precision.tag(self.cfg.to_dict()), self.say)

    @property
    def cases(self) -> list[Case]:
        """The run's phantom patients (rendered once, cached under ``<out>/cases``)."""
        if self._cases is None:
            watch = Stopwatch()
            self._cases = load_cases(self.cfg.data, cache=self.out / "cases")
            self.say(f"data: {len(self._cases)} phantom cine patients ready ({watch.elapsed():.0f} s)")
        return self._cases

    @property
    def split(self) -> PatientSplit:
        """The patient split (``<out>/split.json``, written on first use)."""
        if self._split is None:
            path = self.out / "split.json"
            if path.is_file():
                self._split = PatientSplit.from_dict(read_json(path))
            else:
                self._split = PatientSplit.for_cases(self.cases, self.cfg.data)  # by patient; --data aware
                write_json(path, self._split.to_dict())
        return self._split

    def subset(self, ids: Sequence[str]) -> list[Case]:
        """The cases of ``ids``, in that order."""
        by_id = {c.case_id: c for c in self.cases}
        return [by_id[i] for i in ids]

    _subset = subset  # the historical private name

    def _row_dir(self, row: RowSpec) -> Path:
        """``<out>/rows/<key>``: the row's checkpoint, weights and result."""
        return self.out / "rows" / row.key

    def train_row(self, row: RowSpec, genotype: MultiscaleGenotype | None, *, train_ids: Sequence[str] | None = None,
                  eval_ids: Sequence[str] | None = None, seed_row: RowSpec | None = None) -> dict[str, Any]:
        """Retrain one row from scratch on all training patients and evaluate it on the test patients
        (``train_ids`` / ``eval_ids``: other patients, e.g. rtdnas' pick trains on the weight set and scores on the
        architecture set, never on the test patients). The seed is the row's (its place in ``cfg.rows``), or
        ``seed_row``'s: msnas-hw's picked row trains as the row it picks for, so an argmax pick is that row again.

        The row's ``result.json`` and its checkpoint ``train.pt`` are reused as they are: the schedule
        (``cfg.retrain``) is part of the run's ``config.json``, and a run refuses a folder made with another
        configuration (``_check_config``; rtdnas checks its own), so they were trained with this schedule; the
        one exception is a folder made before the collapse restarts (``predates_restarts``), whose finished rows
        were trained once (their result has no ``seg_training``). A collapsed training is started again
        (``search.train.restarts``; ``train.restart<k>.pt``); ``train_seconds`` counts every attempt.
        """
        folder = self._row_dir(row)
        result_path = folder / "result.json"
        if result_path.is_file():
            return read_json(result_path)
        cfg = self.cfg
        own_patients = train_ids is not None or eval_ids is not None  # not the row table's: the result says which
        on_test = eval_ids is None
        train_ids = self.split.train if train_ids is None else train_ids
        eval_ids = self.split.test if eval_ids is None else eval_ids
        seed_everything(cfg.seed + 1000 + cfg.rows.index(seed_row or row))
        net = build_row_network(cfg, row, genotype=genotype, causal=self.causal)
        train_ds = clip_dataset(self.subset(train_ids), cfg.data, train=True, seed=cfg.seed + 5,
                                per_frame_norm=self.causal)
        tcfg = TrainConfig(epochs=cfg.retrain.epochs, batch_size=cfg.retrain.batch_size,
                           lr=cfg.retrain.lr, weight_decay=cfg.retrain.weight_decay, seed=cfg.seed,
                           steps_per_epoch=cfg.retrain.steps_per_epoch)
        watch = Stopwatch()

        def loss_fn(model, batch):
            clips, labels = batch
            return segmentation_loss(model(clips), labels)

        def progress(epoch: int, epochs: int, loss: float) -> None:
            self.say(f"retrain {row.key}: epoch {epoch}/{epochs} loss {loss:.3f} [{watch.elapsed():.0f} s]")

        policy = RestartPolicy(floor=cfg.retrain.restart_floor, max_restarts=cfg.retrain.seg_restarts,
                               max_frames=CLIPS_SCORED)
        training = fit_with_restarts(net, loss_fn, train_ds, tcfg, checkpoint=folder / "train.pt", policy=policy,
                                     progress=progress, name=f"row {row.key}")
        losses = training.losses
        if not distributed.is_main():  # under torchrun rank 0 evaluates and writes the row; the others get it
            return distributed.share_from_main(None)
        seconds = watch.elapsed()
        dice = self.evaluate(net, eval_ids)
        self.say(f"row {row.key}: mean Dice {dice['mean']:.3f} "
                 + " ".join(f"{k} {v:.3f}" for k, v in dice["per_class"].items()))
        result = {
            "key": row.key, "name": row.name, "kind": row.kind,
            "trained_width": row_widths(cfg, row),
            "genotype": None if genotype is None else json.loads(genotype.to_json()),
            "dice": dice,
            "params": int(sum(p.numel() for p in net.parameters())),
            "train_losses": losses, "train_seconds": seconds,
        }
        result["seg_training"] = training.record()  # the collapse verdict, also when restarts are off
        if self.causal:
            result["causal"] = True
        if own_patients:
            result["patients"] = {"trained_on": len(train_ids), "scored_on": len(eval_ids),
                                  "scored_on_test": on_test}
        torch.save(net.state_dict(), folder / "weights.pt")
        write_json(result_path, result)
        return distributed.share_from_main(result)

    def evaluate(self, net: torch.nn.Module, ids: Sequence[str] | None = None) -> dict[str, Any]:
        """Dice per class (every frame of every clip) on each test patient (or each of ``ids``); mean and std
        over patients (``evaluate_cases``)."""
        return evaluate_cases(net, self.subset(self.split.test if ids is None else ids), self.cfg.data,
                              causal=self.causal)


def evaluate_cases(net: torch.nn.Module, cases: Sequence[Case], data_cfg, *, causal: bool = False) -> dict[str, Any]:
    """Dice per class (every frame of every non-overlapping clip of every slice) on each of ``cases``; mean and std
    over patients, and each patient's figures (``per_patient``, by case id).

    Args:
        net: A cine clip network ``(N, 1, T, H, W) -> (N, 4, T, H, W)``.
        cases: Labelled cine patients (ACDC labels).
        data_cfg: The run's ``DataConfig`` (clip geometry and normalisation).
        causal: Per-frame normalisation (streaming models).
    """
    predict = torch_seg_predictor(net)
    per_patient = {}
    for case in cases:
        ds = clip_dataset([case], data_cfg, train=False, seed=0, per_frame_norm=causal)
        ev = evaluate_segmentation(predict, ds, n_classes=len(ACDC_LABELS))
        per_patient[case.case_id] = {FOREGROUND[c]: v for c, v in ev.per_class.items()}
        per_patient[case.case_id]["mean"] = ev.mean
    names = list(FOREGROUND.values()) + ["mean"]
    table = {n: [p[n] for p in per_patient.values() if not math.isnan(p[n])] for n in names}
    return {
        "per_class": {n: float(np.mean(table[n])) for n in FOREGROUND.values() if table[n]},
        "mean": float(np.mean(table["mean"])) if table["mean"] else float("nan"),
        "std": {n: float(np.std(v)) for n, v in table.items() if v},
        "per_patient": per_patient,
        "frames_scored": "every frame of every non-overlapping clip of every slice",
    }
