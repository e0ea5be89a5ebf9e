"""``KIND:DIR``: which labelled dataset folder is meant, parsed once where it is typed.

A spec is ``phantom`` (the torch-free phantom generator) or ``KIND:DIR`` with ``KIND`` one of
``camus``, ``acdc``, ``echonet``, ``dicom``, ``nifti`` and ``DIR`` an existing folder. It is what
``python -m search ... --data SPEC`` trains on and what ``python -m app validate KIND:DIR`` scores
a model on: both sides parse it here (``search.data.spec`` adds the ``argparse`` and config helpers
of the training side) and index its folder with ``app.data.dataset_index``.

``parse_data_spec`` raises one :class:`DataSpecError` naming the unknown kind or the missing
folder. ``DataSpec.card_info`` is the ``data`` field of a model card trained on the spec: the
dataset, the split, the sha256 of the sorted (anonymous) case-id list and the counts per part. No
folder, file name or patient identifier goes into it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

PHANTOM = "phantom"
#: Dataset kind -> what it is (``--help`` and the docs read this).
KINDS: Mapping[str, str] = {
    "camus": "CAMUS echo, 2019 MetaImage or 2023 NIfTI release (labels 1 LV, 2 MYO, 3 LA)",
    "acdc": "ACDC cine MR, training/ and testing/ (labels 1 RV, 2 MYO, 3 LV)",
    "echonet": "EchoNet-Dynamic: Videos/, FileList.csv, VolumeTracings.csv (LV tracings)",
    "dicom": "multi-frame DICOM files with <stem>_mask.npz or a DICOM SEG beside them",
    "nifti": "image + <stem>_gt NIfTI pairs (3D: 2D+t echo, CAMUS labels; 4D: cine, ACDC labels; "
             "labels.json overrides)",
}
#: Dataset kind -> the name written into cards and reports.
DATASET_NAMES: Mapping[str, str] = {"camus": "CAMUS", "acdc": "ACDC", "echonet": "EchoNet-Dynamic",
                                    "dicom": "DICOM folder", "nifti": "NIfTI folder", PHANTOM: "phantom"}
_KIND_PREFIX = re.compile(r"^\s*(" + "|".join(KINDS) + r")\s*:", re.IGNORECASE)


class DataSpecError(ValueError):
    """A ``KIND:DIR`` value that names no known dataset kind or no existing folder."""


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``KIND:DIR`` (or ``phantom``) value.

    Attributes:
        kind: ``"phantom"`` or one of ``KINDS``.
        root: The dataset folder (absolute), None for the phantom.
    """

    kind: str = PHANTOM
    root: Path | None = None

    @property
    def is_phantom(self) -> bool:
        return self.kind == PHANTOM

    @property
    def text(self) -> str:
        """The canonical spec string (``phantom`` or ``kind:/absolute/dir``), as configs store it."""
        return PHANTOM if self.is_phantom else f"{self.kind}:{self.root}"

    @property
    def dataset_name(self) -> str:
        return DATASET_NAMES[self.kind]

    def card_info(self, parts: Mapping[str, Sequence[str]], *, split: str, seed: int | None = None,
                  **extra: Any) -> dict[str, Any]:
        """The card's ``data`` field for a model trained on this spec.

        Args:
            parts: Part name (``"s1"``, ``"test"``, ...) -> anonymous case ids in it.
            split: How the parts were made, in words (``"official test + segqc-hw S1/S2, seed 0"``).
            seed: The split seed, when one was used.
            **extra: More plain-JSON entries (``preset``, ``frames_per_patient``, ...).

        Returns:
            ``{"source", "dataset", "split", "seed", "case_list_sha256", "counts", "part_sha256", ...}``:
            hashes and counts only, never a case id, file name or folder.
        """
        all_ids = [i for ids in parts.values() for i in ids]
        return {
            "source": self.kind, "dataset": self.dataset_name, "split": split, "seed": seed,
            "case_list_sha256": case_list_sha256(all_ids),
            "counts": {name: len(ids) for name, ids in parts.items()},
            "part_sha256": {name: case_list_sha256(ids) for name, ids in parts.items()},
            **extra,
        }


def case_list_sha256(case_ids: Sequence[str]) -> str:
    """sha256 (hex) of the sorted case ids joined by newlines: the same list gives the same hash."""
    return hashlib.sha256("\n".join(sorted(str(i) for i in case_ids)).encode()).hexdigest()


def looks_like_data_spec(text: str) -> bool:
    """Whether ``text`` starts with a dataset kind and a colon (``camus:...``): a spec, not a path."""
    return bool(_KIND_PREFIX.match(str(text)))


def parse_data_spec(text: str | None, *, option: str = "--data") -> DataSpec:
    """``"phantom"`` / ``"KIND:DIR"`` -> :class:`DataSpec` (the folder made absolute).

    Args:
        text: The value as typed.
        option: How the value was given, named at the start of an error (``--data``, ``SOURCE``).

    Raises:
        DataSpecError: an unknown kind, a kind without a folder, or a folder that does not exist.
    """
    raw = (text or PHANTOM).strip()
    if raw == PHANTOM:
        return DataSpec()
    kind, sep, folder = raw.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        known = ", ".join([PHANTOM, *(f"{k}:DIR" for k in KINDS)])
        raise DataSpecError(f"{option} {raw}: unknown dataset kind {kind!r}; use one of {known}")
    if not sep or not folder.strip():
        raise DataSpecError(f"{option} {raw}: {kind} needs a folder: {option} {kind}:DIR")
    root = Path(folder.strip()).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataSpecError(f"{option} {raw}: {root} {what}")
    return DataSpec(kind, root.resolve())


__all__ = ["DATASET_NAMES", "KINDS", "PHANTOM", "DataSpec", "DataSpecError", "case_list_sha256",
           "looks_like_data_spec", "parse_data_spec"]
