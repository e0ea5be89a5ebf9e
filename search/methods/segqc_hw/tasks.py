"""The two echo tasks of ``segqc-hw``: contrast echo (the paper's) and standard B-mode apical four-chamber echo.

``--task contrast`` (default): contrast echocardiography, binary myocardium segmentation, as in the
segqc-hw paper (Zeng et al. 2021, arXiv:2109.06909). ``--task bmode``: plain B-mode apical
four-chamber echo with the CAMUS classes (1 LV cavity, 2 myocardium, 3 left atrium), four output
classes; the QC target is then the mean Dice over the three foreground classes (``dice_of_prediction``).
Everything else (search spaces, protocol, loss, schedule, Table II harness) is the same.

A task fixes the phantom variant, the label map the networks train with (and the ``--data`` need that
checks a dataset gives it), the shipped model ids, the run and docs folders, and the cards'
``echo_mode``. The contrast task keeps every name it had before B-mode existed (ids, folders, config
hashes), so earlier runs and shipped models stay valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from app.data.case import CAMUS_LABELS, ECHO_MYO_LABELS

TASKS = ("contrast", "bmode")
DEFAULT_TASK = "contrast"
#: ``--data`` kinds that hold plain B-mode echo only, never contrast echo (kind -> dataset name). The
#: contrast task does not train on them (a contrast model taught on B-mode would still say
#: ``echo_mode: contrast``); a ``dicom:`` or ``nifti:`` folder may hold contrast recordings and is allowed.
BMODE_DATASETS: Mapping[str, str] = {"camus": "CAMUS", "echonet": "EchoNet-Dynamic"}


@dataclass(frozen=True)
class EchoTask:
    """What one ``--task`` trains on and where its results go.

    Attributes:
        name: ``"contrast"`` or ``"bmode"`` (the cards' ``echo_mode``).
        variant: The phantom's echo variant (``app.data.phantom.echo``).
        classes: Label value -> class name the networks output (the app's names for them).
        words: The task in words (reports, notes, help).
        id_prefix: First part of the shipped model ids (``<prefix>-segqc-hw-seg``).
        run_method: Name of the default run folder under ``runs/`` (``runs/<run_method>/<preset>``).
        docs_name: Folder under ``docs/`` the default preset's report is copied to.
        label_words: How a dataset's labels map onto ``classes`` (the card's ``data.labels``).
    """

    name: str
    variant: str
    classes: Mapping[int, str]
    words: str
    id_prefix: str
    run_method: str
    docs_name: str
    label_words: str

    @property
    def num_classes(self) -> int:
        """Output channels of the segmentation net (background included)."""
        return len(self.classes)

    @property
    def method_label(self) -> str:
        """The command as errors name it."""
        return "segqc-hw" if self.name == DEFAULT_TASK else f"segqc-hw --task {self.name}"

    @property
    def need(self):
        """What a ``--data`` dataset must give (``search.data.Need``)."""
        from search.data import ECHO_CAMUS, ECHO_MYOCARDIUM

        return ECHO_MYOCARDIUM if self.name == "contrast" else ECHO_CAMUS

    def model_ids(self, preset: str) -> tuple[str, str]:
        """Ids of the shipped seg + QC pair (the default preset ships the plain ids; others are suffixed)."""
        seg, qc = f"{self.id_prefix}-segqc-hw-seg", f"{self.id_prefix}-segqc-hw-qc"
        return (seg, qc) if preset == "default" else (f"{seg}-{preset}", f"{qc}-{preset}")


_TASKS = {
    "contrast": EchoTask("contrast", "contrast", dict(ECHO_MYO_LABELS), "contrast echo (myocardium)", "echo",
                         "segqc-hw", "segqc", "MYO -> 1"),
    "bmode": EchoTask("bmode", "bmode", dict(CAMUS_LABELS), "B-mode apical four-chamber echo (LV, MYO, LA)",
                      "echo-bmode", "segqc-hw-bmode", "segqc-bmode", "LV 1, MYO 2, LA 3 (CAMUS)"),
}


def contrast_refusal(kind: str) -> str | None:
    """Why the contrast task cannot train on a ``--data`` dataset of ``kind`` (None: it can)."""
    name = BMODE_DATASETS.get(kind)
    return None if name is None else f"{name} is B-mode echo, not contrast echo"


def data_refusal(task: str, kind: str) -> str | None:
    """The one line ``segqc-hw --task <task> --data <kind>:DIR`` stops with before any work (None: go on).

    The contrast task (the default) refuses the B-mode datasets and says to add ``--task bmode``, or,
    for EchoNet-Dynamic (LV tracings only), that neither task can train on it.
    """
    if task != "contrast":
        return None
    why = contrast_refusal(kind)
    if why is None:
        return None
    if kind == "echonet":
        return (f"{why}, so the contrast task (myocardium) cannot train on it; --task bmode needs LV, MYO and LA "
                "labels, which its LV tracings do not give")
    return f"{why}: add --task bmode to train the B-mode task (LV, MYO, LA) on it"


def echo_task(name: str) -> EchoTask:
    """The task called ``name``.

    Raises:
        ValueError: an unknown task.
    """
    if name not in _TASKS:
        raise ValueError(f"unknown segqc-hw task {name!r}; choose one of {', '.join(TASKS)}")
    return _TASKS[name]
