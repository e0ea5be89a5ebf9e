"""The three papers the search methods reproduce: one place for their titles, authors and arXiv ids.

Code, reports and docs name a paper by its method (``segqc-hw``, ``msnas-hw``, ``rtdnas``) and cite
it with :attr:`Paper.cite` (e.g. "Lu et al., MICCAI 2022, arXiv:2206.04682"); the full references
are in ``docs/references.md``. This module imports nothing, so any layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    """One paper a method reproduces.

    Attributes:
        key: The method's CLI name (``python -m search <key>``).
        short: The short name used beside the citation in prose.
        title: The paper's title.
        authors: Every author, in the paper's order.
        year: Year of the publication cited.
        venue: Short name of where it was published ("" for an arXiv preprint).
        arxiv: The arXiv identifier (``YYMM.NNNNN``).
        doi: The publisher's DOI, or "" when there is none to cite.
    """

    key: str
    short: str
    title: str
    authors: tuple[str, ...]
    year: int
    venue: str
    arxiv: str
    doi: str = ""

    @property
    def first_author(self) -> str:
        """The first author's family name."""
        return self.authors[0].split()[-1]

    @property
    def cite(self) -> str:
        """A short inline citation: ``Lu et al., MICCAI 2022, arXiv:2206.04682``."""
        where = f", {self.venue} {self.year}" if self.venue else f" {self.year}"
        return f"{self.first_author} et al.{where}, arXiv:{self.arxiv}"

    @property
    def url(self) -> str:
        """The paper's arXiv abstract page."""
        return f"https://arxiv.org/abs/{self.arxiv}"

    def reference(self) -> str:
        """The full reference, one line of Markdown."""
        venue = f"{self.venue} {self.year}" if self.venue else f"arXiv preprint, {self.year}"
        doi = f", doi:[{self.doi}](https://doi.org/{self.doi})" if self.doi else ""
        return f"{', '.join(self.authors)}. *{self.title}*. {venue}. [arXiv:{self.arxiv}]({self.url}){doi}."


SEGQC_HW = Paper(
    key="segqc-hw",
    short="the joint segmentation + QC search paper",
    title="Hardware-aware Real-time Myocardial Segmentation Quality Control in Contrast Echocardiography",
    authors=("Dewen Zeng", "Yukun Ding", "Haiyun Yuan", "Meiping Huang", "Xiaowei Xu", "Jian Zhuang",
             "Jingtong Hu", "Yiyu Shi"),
    year=2021,
    venue="",
    arxiv="2109.06909",
)

MSNAS_HW = Paper(
    key="msnas-hw",
    short="the hardware-aware multi-scale NAS paper",
    title="Towards Cardiac Intervention Assistance: Hardware-aware Neural Architecture Exploration for "
          "Real-Time 3D Cardiac Cine MRI Segmentation",
    authors=("Dewen Zeng", "Weiwen Jiang", "Tianchen Wang", "Xiaowei Xu", "Haiyun Yuan", "Meiping Huang",
             "Jian Zhuang", "Jingtong Hu", "Yiyu Shi"),
    year=2020,
    venue="ICCAD",
    arxiv="2008.07071",
    doi="10.1145/3400302.3415789",
)

RTDNAS = Paper(
    key="rtdnas",
    short="the RT-DNAS paper",
    title="RT-DNAS: Real-Time Constrained Differentiable Neural Architecture Search for 3D Cardiac Cine "
          "MRI Segmentation",
    authors=("Qing Lu", "Xiaowei Xu", "Shunjie Dong", "Cong Hao", "Lei Yang", "Cheng Zhuo", "Yiyu Shi"),
    year=2022,
    venue="MICCAI",
    arxiv="2206.04682",
    doi="10.1007/978-3-031-16443-9_58",
)

#: Every paper, by its method's CLI name.
PAPERS: dict[str, Paper] = {p.key: p for p in (SEGQC_HW, MSNAS_HW, RTDNAS)}
