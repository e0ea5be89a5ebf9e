"""The official split the phantom writers give a dataset, as the real releases ship one.

CAMUS 2023 ships ``database_split/subgroup_{training,validation,testing}.txt`` (one patient folder
name per line) and ACDC ``training/`` and ``testing/`` folders; the phantom writers do the same, so a
walkthrough on phantoms meets an official split where the real dataset has one. The split is fixed
by the patient numbers: the last ``TEST_FRACTION`` of the patients (at least one, when there are two
or more) are the test set, as ACDC numbers its test patients after its training ones; for CAMUS the
``VAL_FRACTION`` just before them are the validation set (none when that would leave no training
patient).
"""

from __future__ import annotations

TEST_FRACTION = 0.2
VAL_FRACTION = 0.1
PARTS = ("train", "val", "test")


def _share(n: int, fraction: float) -> int:
    return int(n * fraction + 0.5)  # round half up (Python's round() is to even)


def part_sizes(n: int, *, with_val: bool) -> dict[str, int]:
    """``{"train", "val", "test"}`` -> patients, for ``n`` patients (``val`` 0 unless ``with_val``)."""
    if n < 1:
        raise ValueError(f"a dataset needs at least one patient, got {n}")
    test = 0 if n < 2 else max(1, _share(n, TEST_FRACTION))
    val = _share(n, VAL_FRACTION) if with_val else 0
    if n - test - val < 1:
        val = 0
    return {"train": n - test - val, "val": val, "test": test}


def official_part(patient_number: int, n: int, *, with_val: bool = False) -> str:
    """The part (``"train"``, ``"val"``, ``"test"``) of patient ``patient_number`` (1-based) of ``n``."""
    if not 1 <= patient_number <= n:
        raise ValueError(f"patient number {patient_number} is not in 1..{n}")
    sizes = part_sizes(n, with_val=with_val)
    if patient_number > n - sizes["test"]:
        return "test"
    return "val" if patient_number > sizes["train"] else "train"


__all__ = ["PARTS", "TEST_FRACTION", "VAL_FRACTION", "official_part", "part_sizes"]
