"""The differentiable search of msnas-hw: the shared first-order bilevel search.

Equations: the msnas-hw paper (Zeng et al., ICCAD 2020, arXiv:2008.07071).

Loss (eq. 6): ``CE + lambda * LAT``, LAT the expected latency in ms of the top-n longest paths. The
loop (warm-up, then alternating weight / architecture steps, resumable checkpoints) lives in
``search.train.bilevel`` because rtdnas runs it too; this module names it for msnas-hw.

Convergence (issue 16): :func:`search_convergence` judges a finished search from its architecture
trace for every decoded n; :func:`convergence_report` renders the verdicts and entropy plots.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

from search.core.convergence import ArchTrace, plot_trace, report_section
from search.core.genotypes import MultiscaleGenotype
from search.train.bilevel import ArchitectureSearch, LatencyTerm, StepRecord, segmentation_ce

__all__ = ["ArchitectureSearch", "LatencyTerm", "StepRecord", "convergence_report", "search_convergence",
           "segmentation_ce"]


def search_convergence(trace: ArchTrace, genotypes: Mapping[int, MultiscaleGenotype],
                       decode: Callable[[int], MultiscaleGenotype]) -> dict[str, dict[str, Any]]:
    """The convergence verdict of one search for every decoded n (issue 16), as plain JSON keyed by ``str(n)``.

    Args:
        trace: The search's architecture trace (``ArchitectureSearch.trace``), at the end of the search.
        genotypes: The derived genotype for every n a row asks of the search.
        decode: ``n -> genotype`` of the supernet as it is now; run on the initial logits for the comparison.
    """
    out = {}
    for n, derived in genotypes.items():
        initial = trace.initial_argmax(partial(decode, n))
        out[str(n)] = trace.verdict(derived, initial).to_json()
    return out


def convergence_report(searches: Mapping[str, Mapping[str, Any]], folder: Path) -> str:
    """Markdown section (and one entropy plot per search under ``folder``) for the report.

    Args:
        searches: Search key -> its ``result.json`` (searches from before issue 16 carry no trace and are skipped).
        folder: The report folder the plots go to.
    """
    verdicts, figures = {}, {}
    for key, doc in searches.items():
        if "convergence" not in doc:
            continue
        figure = plot_trace(doc["arch_trace"], folder / f"entropy_{key}.png", title=f"Architecture entropy, search {key}")
        for n, verdict in doc["convergence"].items():
            name = f"search {key}, n = {n}"
            verdicts[name] = verdict
            if figure is not None and n == str(doc["search"]["n_paths"]):
                figures[name] = figure.name
    return report_section(verdicts, figures) if verdicts else ""
