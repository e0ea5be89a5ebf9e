"""The papers are cited from one place: ``search/citations.py``, and ``docs/references.md`` agrees with it."""

from __future__ import annotations

import re
from pathlib import Path

from search.citations import PAPERS

ROOT = Path(__file__).resolve().parents[2]


def test_every_method_has_one_paper_with_an_arxiv_id() -> None:
    assert set(PAPERS) == {"segqc-hw", "msnas-hw", "rtdnas"}
    for key, paper in PAPERS.items():
        assert paper.key == key and paper.title and paper.authors
        assert re.fullmatch(r"\d{4}\.\d{5}", paper.arxiv), paper.arxiv
        assert paper.cite.endswith(f"arXiv:{paper.arxiv}") and paper.first_author in paper.cite


def test_the_two_zeng_et_al_papers_are_told_apart() -> None:
    cites = [p.cite for p in PAPERS.values()]
    assert len(set(cites)) == len(cites)


def test_references_page_matches_the_code() -> None:
    page = (ROOT / "docs" / "references.md").read_text()
    for paper in PAPERS.values():
        assert paper.reference() in page, f"docs/references.md lacks or differs on {paper.key}"
        assert paper.cite in page


def test_papers_are_named_by_method_and_citation_not_by_seed_number() -> None:
    """The papers were once named by the numbers of their files in a notes folder that is not in the repo."""
    pattern = re.compile(r"\bseed[ -]?00[012]\b", re.IGNORECASE)
    files = [p for top in ("app", "search", "tests", "bench") for p in (ROOT / top).rglob("*.py")]
    files += [*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"]
    found = [f"{p.relative_to(ROOT)}:{i}" for p in files
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert not found, f"name the paper by its method and cite it (search/citations.py), not by seed number: {found}"
