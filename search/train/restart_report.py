"""The restart rule and the trainings it started again, as Markdown (``search.train.restarts``).

Torch-free, so reports can render a run's records without loading the training code.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

CLASS_FLOOR = 0.3  # issue 16: no class of a trained segmentation net below this Dice


def rule_text(floor: float, max_restarts: int, samples: str = "frames") -> str:
    """The restart rule in one sentence, as every report states it (``samples``: what a net is scored on,
    ``"frames"`` for echo, ``"clips"`` for cine)."""
    return (f"Collapse rule (`search.train.restarts`): a seg net whose lowest class Dice on its own training "
            f"{samples} ends below {floor:g} collapsed to "
            f"background; it is trained again from a fresh initialisation under another seed, up to {max_restarts} "
            f"times, and the attempt best on its training {samples} is kept (no held-out patient takes part).")


def was_restarted(record: dict | None) -> bool:
    """Whether a recorded training (:meth:`RestartedTraining.record`) collapsed at least once."""
    record = record or {}
    return len(record.get("attempts") or []) > 1 or bool(record.get("collapsed"))


def attempts_text(record: dict) -> str:
    """A recorded training's attempts in one cell: ``attempt 0 (seed 1) 0.151, attempt 1 (seed 7920) 0.722``."""
    return ", ".join(f"attempt {a['attempt']} (seed {a['seed']}) "
                     f"{'n/a' if a.get('train_dice') is None else format(a['train_dice'], '.3f')}"
                     for a in record.get("attempts") or [])


def restart_table(rows: Iterable[tuple[list[str], dict]], header: list[str], floor: float,
                  max_restarts: int, samples: str = "frames") -> list[str]:
    """Markdown lines: the rule, then one row per training that collapsed at least once.

    Args:
        rows: ``(leading cells, recorded training)`` per training; those never restarted are left out.
        header: The leading cells' column names (then: attempts, kept, still collapsed).
        floor, max_restarts: The rule the trainings ran under.
        samples: What the nets were scored on (``rule_text``).
    """
    lines = [f"| {' | '.join(cells)} | {attempts_text(rec)} | {rec.get('kept')} | "
             f"{'yes' if rec.get('collapsed') else 'no'} |" for cells, rec in rows if was_restarted(rec)]
    rule = rule_text(floor, max_restarts, samples)
    if not lines:
        return [rule + (" No training collapsed" + (" (restarts off)." if not max_restarts else "."))]
    cols = [*header, f"attempts: training-{samples[:-1]} Dice", "kept", "still collapsed"]
    return [rule, "", f"| {' | '.join(cols)} |", "|" + "---|" * len(cols), *lines]


def rows_restarts_markdown(results: Mapping[str, Mapping[str, Any] | None], floor: float, max_restarts: int) -> str:
    """A cine run's rows (``key -> result``, as ``search.train.cine_rows.CineRows.train_row`` writes them) whose
    training collapsed and was started again, under the rule's wording; rows trained before the rule (a trained
    result without ``seg_training``) are named as such, rows that copy another row's training are left out."""
    trained = {k: r for k, r in results.items()  # a row that copies another's training is that training
               if r and "train_losses" in r and not r.get("same_as") and not r.get("same_network_as")}
    rows = [([str(r.get("name") or k)], r.get("seg_training") or {}) for k, r in trained.items()]
    lines = restart_table(rows, ["row"], floor, max_restarts, "clips")
    older = [str(r.get("name") or k) for k, r in trained.items() if "seg_training" not in r]
    if older:
        lines += ["", "Trained before the rule (one training each, no verdict recorded): " + ", ".join(older) + "."]
    return "\n".join(lines)
