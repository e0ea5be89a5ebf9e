"""``msnas-hw --rows``: the summary of rows retrained on their own (``<out>/rows.md`` and ``rows.json``).

Per row: Dice per class (mean ± std over the test patients) and its mean, the schedule it was trained
with, its training time, its learning curve (the mean training loss of each checkpoint interval, as
``result.json`` records it) and whether every class reached the issue's floor for a baseline trained
to convergence: Dice >= 0.3 on held-out patients. No latency: Table 2's timings, the report and the
shipped model need every row (run without ``--rows``).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

from search.methods.msnas_hw.config import MsnasHwConfig, RowSpec
from search.methods.msnas_hw.report import CLASS_ORDER, _dice_cell, _f
from search.train.cine_rows import write_json

#: The issue's floor: no class of a converged baseline below this Dice on held-out patients.
DICE_FLOOR = 0.3


def below_floor(dice: Mapping[str, Any]) -> list[str]:
    """The classes whose mean Dice over the test patients is below ``DICE_FLOOR`` (or was not scored)."""
    per_class = dice.get("per_class", {})
    return [c for c in CLASS_ORDER if per_class.get(c) is None or math.isnan(per_class[c]) or per_class[c] < DICE_FLOOR]


def row_summary(cfg: MsnasHwConfig, row: RowSpec, result: Mapping[str, Any]) -> dict[str, Any]:
    """One row's entry of ``rows.json``."""
    retrain = cfg.retrain
    dice = result["dice"]
    below = below_floor(dice)
    losses = [float(v) for v in result.get("train_losses", [])]
    return {
        "key": row.key, "name": row.name, "kind": row.kind, "params": result.get("params"),
        "dice": {"per_class": {c: dice.get("per_class", {}).get(c) for c in CLASS_ORDER}, "mean": dice.get("mean"),
                 "std": dice.get("std", {}), "per_patient": dice.get("per_patient", {})},
        "floor": {"dice": DICE_FLOOR, "every_class_met": not below, "below": below},
        "schedule": {**asdict(retrain), "trained_steps": retrain.epochs * retrain.steps_per_epoch},
        "train_seconds": result.get("train_seconds"),
        "learning_curve": {"loss_every_steps": retrain.steps_per_epoch, "mean_loss": losses},
    }


def rows_summary(cfg: MsnasHwConfig, rows: Sequence[RowSpec], results: Mapping[str, Mapping[str, Any]],
                 test_patients: Sequence[str]) -> dict[str, Any]:
    """``rows.json``: the run's identity, the test patients and one entry per row."""
    return {
        "method": "msnas-hw", "preset": cfg.preset, "seed": cfg.seed, "test_patients": list(test_patients),
        "dice_floor": DICE_FLOOR,
        "not_run": "Table 2 latency, the report and shipping (they need every row: run without --rows)",
        "rows": {row.key: row_summary(cfg, row, results[row.key]) for row in rows},
    }


def rows_markdown(doc: Mapping[str, Any]) -> str:
    """``rows.md`` from ``rows.json``'s document."""
    rows = list(doc["rows"].values())
    lines = [
        "# msnas-hw: rows retrained on their own (`--rows`)", "",
        f"Preset `{doc['preset']}`, seed {doc['seed']}. Each row retrained from scratch on the training patients; "
        f"Dice on the held-out patients ({len(doc['test_patients'])}: {', '.join(doc['test_patients'])}), every frame of "
        "every clip, mean ± std over patients. Floor (issue): every class Dice >= "
        f"{doc['dice_floor']:g}. Not run here: {doc['not_run']}.", "",
        "| Row | LV | RV | MYO | Average | steps | batch | lr | train s | every class >= "
        f"{doc['dice_floor']:g} |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        dice, sched = r["dice"], r["schedule"]
        mean_s = dice["std"].get("mean")
        lines.append(
            f"| {r['name']} | {_dice_cell(dice, 'LV')} | {_dice_cell(dice, 'RV')} | {_dice_cell(dice, 'MYO')} | "
            f"{_f(dice['mean'])}{'' if mean_s is None else f'±{mean_s:.3f}'} | {sched['trained_steps']} | "
            f"{sched['batch_size']} | {sched['lr']:g} | {_f(r['train_seconds'], 0)} | "
            f"{'yes' if r['floor']['every_class_met'] else 'no'} |")
    lines += ["", "## Learning curves", ""]
    for r in rows:
        curve = r["learning_curve"]
        losses = " ".join(f"{v:.3f}" for v in curve["mean_loss"]) or "-"
        lines.append(f"- {r['name']}: mean training loss per {curve['loss_every_steps']} steps: {losses}")
    lines += ["", "## Floor", ""]
    for r in rows:
        below = r["floor"]["below"]
        verdict = (f"every class reached Dice >= {doc['dice_floor']:g}" if not below else
                   "below the floor: " + ", ".join(f"{c} {_f(r['dice']['per_class'].get(c))}" for c in below))
        lines.append(f"- {r['name']}: {verdict}")
    return "\n".join(lines) + "\n"


def write_rows_summary(out: Path, cfg: MsnasHwConfig, rows: Sequence[RowSpec], results: Mapping[str, Mapping[str, Any]],
                       *, test_patients: Sequence[str], pick: Mapping[str, Any] | None = None) -> Path:
    """Write ``<out>/rows.json`` and ``<out>/rows.md`` (with ``pick``, the run's ``pick.json``: its candidates too);
    returns the markdown's path."""
    from search.methods.msnas_hw.report_text import pick_section

    doc = rows_summary(cfg, rows, results, test_patients)
    if pick:
        doc["pick"] = dict(pick)
    write_json(Path(out) / "rows.json", doc)
    path = Path(out) / "rows.md"
    path.write_text(rows_markdown(doc) + pick_section(pick))
    return path
