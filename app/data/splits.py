"""Patient-level splits with a fixed seed (no patient ever appears in two parts).

``segqc_protocol`` is the protocol of the segmentation + QC search: of 100 patients, 40 train the
segmentation network (``s1``), 40 other ones train the QC network on that network's errors
(``s2``), 20 are held out (``test``); other counts are split in the same proportions.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

SEGQC_FRACTIONS: Mapping[str, float] = {"s1": 0.4, "s2": 0.4, "test": 0.2}


def _counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder allocation of ``n`` items to parts in proportion to ``fractions``."""
    total = float(sum(fractions.values()))
    if any(f < 0 for f in fractions.values()) or total <= 0 or total > 1.0 + 1e-9:
        raise ValueError(f"fractions must be >= 0 and sum to (0, 1], got {dict(fractions)}")
    n_used = int(round(n * total)) if total < 1.0 - 1e-9 else n
    exact = {k: n * f for k, f in fractions.items()}
    counts = {k: int(np.floor(v)) for k, v in exact.items()}
    order = sorted(fractions, key=lambda k: (-(exact[k] - counts[k]), list(fractions).index(k)))
    for k in order[: max(0, n_used - sum(counts.values()))]:
        counts[k] += 1
    return counts


def patient_split(case_ids: Iterable[str], fractions: Mapping[str, float], seed: int,
                  strata: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Split patients into named parts, deterministically for a given seed and set of ids.

    The result does not depend on the order of ``case_ids`` (they are sorted first).

    Args:
        case_ids: Unique patient identifiers.
        fractions: Part name -> fraction of patients; the sum may be below 1 (the rest is unused).
        seed: Split seed.
        strata: Optional id -> stratum (e.g. quality bin); each stratum is split in proportion.

    Returns:
        Part name -> sorted list of ids.
    """
    given = [str(c) for c in case_ids]
    ids = sorted(set(given))
    if len(ids) != len(given):
        raise ValueError("case_ids contain duplicates")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5317]))
    groups: dict[str, list[str]] = {}
    for cid in ids:
        groups.setdefault(strata[cid] if strata is not None else "", []).append(cid)
    parts: dict[str, list[str]] = {k: [] for k in fractions}
    for _, members in sorted(groups.items()):
        order = [members[i] for i in rng.permutation(len(members))]
        start = 0
        for name, count in _counts(len(order), fractions).items():
            parts[name].extend(order[start : start + count])
            start += count
    return {k: sorted(v) for k, v in parts.items()}


def segqc_protocol(case_ids: Iterable[str], seed: int, strata: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """The segqc-hw protocol: ``{"s1": 40%, "s2": 40%, "test": 20%}`` of the patients.

    With 100 patients: 40 / 40 / 20.
    """
    return patient_split(case_ids, SEGQC_FRACTIONS, seed, strata)
