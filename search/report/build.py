"""Gather every method's stored results and the model cards, then write the report.

Where each method's results are looked for (``runs`` = the runs folder, ``P`` = the preset):

    segqc-hw  <runs>/segqc-hw/P/report/results.json, else docs/segqc/results.json of preset P
    msnas-hw  <runs>/msnas-hw/P/{config.json, rows/*/result.json, report/*.png}
    rtdnas    <runs>/rtdnas/P/{config.json, rows/, latency.json, derivation.json, rounds/, report/*.png}
              (Table 2's baselines: the msnas-hw folder above)

Runs of the same preset with another seed (``<runs>/<method>/P-seed<k>``, e.g. the rtdnas run the
shipped model comes from) get a section each after the preset's own run. A folder given in
``overrides`` replaces the default one of its method (and its other seeds are not looked for).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable, Mapping

from search.report import msnas, rtdnas, segqc
from search.report.document import cards_table, write_document
from search.report.sections import MethodSection, shown

log = logging.getLogger(__name__)
DOCS_COPY = {"segqc-hw": "segqc", "msnas-hw": "msnas", "rtdnas": "rtdnas"}
OWN_REPORT = ("report.md", "README.md")  # the methods' report file names in their docs copy
TITLES = {"segqc-hw": segqc.TITLE, "msnas-hw": msnas.TITLE, "rtdnas": rtdnas.TITLE}


@dataclass
class Report:
    """What was written: the Markdown path, one status line per method, methods that failed to read."""

    path: Path
    status: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def _guarded(method: str, folder: Path, load: Callable[[], MethodSection]) -> tuple[MethodSection, bool]:
    """Run a loader; stored results it cannot read become a section saying so (and which file)."""
    try:
        return load(), True
    except (KeyError, TypeError, ValueError, IndexError, json.JSONDecodeError) as exc:
        log.exception("%s: could not read the stored results in %s", method, folder)
        line = (f"stored results for {method} in `{shown(folder)}` could not be read ({type(exc).__name__}: {exc}); "
                f"rerun `python -m search {method}`")
        return MethodSection(method, TITLES[method], None, line), False


def build_report(preset: str, runs: Path, out: Path, models: Path, *, overrides: Mapping[str, Path] | None = None,
                 docs: Path | None = None, command: str = "python -m search report") -> Report:
    """Write ``out`` (Markdown) and its own PNGs (``out`` without suffix, e.g. ``docs/results/``).

    A method's figure is linked where the method's docs copy (``docs/<method>/``) holds the same
    PNG, and copied into the PNG folder only where it does not.

    Args:
        preset: Which runs (``runs/<method>/<preset>``).
        runs: The runs folder.
        out: The Markdown file.
        models: The models folder whose cards are summarised.
        overrides: method -> run folder to read instead of the default one.
        docs: The docs folder holding the methods' report copies (their reports and figures are
            linked; segqc-hw's fallback results), or None.
        command: The command line quoted in the report's header.
    """
    overrides = dict(overrides or {})
    folders = {m: Path(overrides.get(m, Path(runs) / m / preset)) for m in TITLES}
    loaders = {
        "segqc-hw": lambda folder: segqc.load_section(
            [folder] + ([Path(docs) / DOCS_COPY["segqc-hw"]] if docs is not None and folder == folders["segqc-hw"]
                        and "segqc-hw" not in overrides else []), preset),
        "msnas-hw": lambda folder: msnas.load_section(folder),
        "rtdnas": lambda folder: rtdnas.load_section(folder, folders["msnas-hw"]),
    }
    report = Report(Path(out))
    sections = []
    for method, load in loaders.items():
        runs_of_method = [(None, folders[method])]
        if method not in overrides:  # other seeds of the same preset (e.g. the run a shipped model comes from)
            runs_of_method += [(int(p.name.rsplit("-seed", 1)[1]), p)
                               for p in sorted((Path(runs) / method).glob(f"{preset}-seed*"))
                               if p.is_dir() and p.name.rsplit("-seed", 1)[1].isdigit()]
        for seed, folder in runs_of_method:
            section, ok = _guarded(method, folder, partial(load, folder))
            docs_copy = None if docs is None else Path(docs) / DOCS_COPY[method] / ("" if seed is None else f"seed{seed}")
            if seed is not None:
                section.title += f", replicate run with seed {seed}"
                section.slug = f"{method}-seed{seed}"
                section.points = [replace(p, source=f"{p.source[:-1]}, seed {seed})" if p.source.endswith(")")
                                          else f"{p.source} (seed {seed})") for p in section.points]
            if docs_copy is not None and section.folder is not None:
                section.own_report = next((p for name in OWN_REPORT if (p := docs_copy / name).is_file()), None)
                section.docs_copy = docs_copy
            sections.append(section)
            if not ok:
                report.unreadable.append(section.slug)
            report.status.append(f"{section.slug}: " + (shown(section.folder) if section.folder else section.missing))
    cards = cards_table(models)
    report.status.append(f"models: {len(cards.points)} seg models summarised from {shown(models)}"
                         + (f", {len(cards.rejected)} card(s) REJECTED" if cards.rejected else ""))
    out = Path(out)
    write_document(sections, cards, out, out.with_suffix(""), command)
    return report
