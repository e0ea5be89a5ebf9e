"""What the report knows about one method's stored run: its tables, figures and Dice-latency points.

Each method's loader (``search.report.segqc``, ``.msnas``, ``.rtdnas``) reads the files the method
wrote and returns a ``MethodSection``; the document writer only lays sections out. A method with no
stored results gives a section with ``missing`` set instead of raising.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

MACHINE = "2-core x86-64 CPU, onnxruntime CPU EP"
REPO = Path(__file__).resolve().parents[2]


def shown(path: Path) -> str:
    """A path as the report prints it: relative to the repository when inside it (machine-independent)."""
    path = Path(path).resolve()
    try:
        return path.relative_to(REPO).as_posix()
    except ValueError:
        return path.as_posix()


@dataclass(frozen=True)
class ParetoPoint:
    """One evaluated network on the Dice-latency plane.

    Attributes:
        task: ``"echo"`` (seg + QC per frame) or ``"cine"`` (per clip inference).
        label: Short name drawn next to the point.
        source: Where it comes from (``"segqc-hw run"``, ``"models/ card"``, ...): the legend group.
        latency_ms: Median latency of one inference (ms).
        dice: Mean foreground Dice on held-out patients.
    """

    task: str
    label: str
    source: str
    latency_ms: float
    dice: float

    @property
    def valid(self) -> bool:
        return math.isfinite(self.latency_ms) and math.isfinite(self.dice) and self.latency_ms > 0


@dataclass
class MethodSection:
    """One method's part of ``docs/results.md``.

    Attributes:
        method: CLI name (``segqc-hw``, ``msnas-hw``, ``rtdnas``).
        title: Section heading (the paper's tables it reproduces).
        folder: Run folder the results were read from (None when missing).
        missing: Why there is nothing to show (None when results were found).
        blocks: Markdown blocks (headings, tables, target lists), in order.
        figures: ``(caption, PNG written by the method)``: linked where it lies in the report's
            folder tree or ``docs_copy`` holds the same bytes, else copied beside the report.
        drawings: ``(caption, file name, draw(path))`` for figures the method does not draw itself,
            drawn beside the report with the method's own drawing code.
        own_report: The method's full report (e.g. ``docs/msnas/report.md``), linked when it exists.
        docs_copy: The method's docs folder (e.g. ``docs/msnas``) whose PNGs the report links, or None.
        slug: Unique name of the section (figure file prefix); the method's name unless a replicate.
        points: Dice-latency points for the cross-method Pareto plot.
    """

    method: str
    title: str
    folder: Path | None = None
    missing: str | None = None
    blocks: list[str] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)
    drawings: list[tuple[str, str, Callable[[Path], Any]]] = field(default_factory=list)
    own_report: Path | None = None
    docs_copy: Path | None = None
    slug: str = ""
    points: list[ParetoPoint] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.slug = self.slug or self.method


def fmt(x: Any, digits: int = 3) -> str:
    """A number for a table cell; ``-`` for None / NaN / inf."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}"


def missing_section(method: str, title: str, folder: Path | None, detail: str = "") -> MethodSection:
    """The section of a method without stored results: one clear line, how to produce them."""
    line = f"no stored results for {method} (run `python -m search {method}`)"
    return MethodSection(method, title, None, line + (f"; {detail}" if detail else ""))


def read_json(path: Path) -> Any:
    """A JSON file (NaN allowed, as the methods write it)."""
    return json.loads(Path(path).read_text())


def figures_in(folder: Path, captions: dict[str, str]) -> list[tuple[str, Path]]:
    """Every PNG in ``folder`` (sorted by name), captioned from ``captions`` (the file stem, else the first
    matching stem prefix -> text)."""
    out = []
    for png in sorted(Path(folder).glob("*.png")):
        exact = captions.get(png.stem)
        caption = exact or next((text for prefix, text in captions.items() if png.stem.startswith(prefix)), png.stem)
        out.append((f"{caption} (`{png.stem}`)" if caption != png.stem else caption, png))
    return out


def config_from_dict(cls: type, doc: dict[str, Any]) -> Any:
    """Rebuild a (nested, frozen) config dataclass from its ``asdict`` JSON, as a run stored it.

    Lists become tuples, nested dataclasses (also inside ``tuple[X, ...]``) are rebuilt, unknown
    keys are an error (the run was made by another version of the method).

    Raises:
        ValueError: a key the dataclass does not have.
    """
    from search.train import precision

    doc = precision.untag(doc)  # a bf16 run's training precision is recorded beside its fields
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(doc) - names
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    return cls(**{k: _value(hints[k], v) for k, v in doc.items()})


def _value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _value(inner[0], value) if len(inner) == 1 else value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return config_from_dict(hint, value)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v) for v in value)
        if args and len(args) == len(value):
            return tuple(_value(a, v) for a, v in zip(args, value))
        return tuple(value)
    return value
