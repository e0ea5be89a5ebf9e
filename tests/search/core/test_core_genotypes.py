"""Genotypes: lossless JSON round trips, validation errors, random samples of every space."""

import numpy as np
import pytest

from search.core.genotypes import (
    CellEdge,
    CellGenotype,
    GenotypeError,
    MultiscaleGenotype,
    NasUnetGenotype,
    PathGenotype,
    QcGenotype,
    SegQcGenotype,
    genotype_from_json,
)
from search.core.sampling import SPACES, sample_random_genotype


def _cell(n_inputs=1, output="sum"):
    edges = (CellEdge(0, n_inputs, "conv"), CellEdge(n_inputs, n_inputs + 1, "identity"),
             CellEdge(0, n_inputs + 2, "sep_conv"), CellEdge(n_inputs + 1, n_inputs + 2, "dil_conv"))
    return CellGenotype(n_inputs, 3, edges, output)


def test_each_kind_round_trips_losslessly():
    seg = NasUnetGenotype(_cell(2), _cell(3))
    qc = QcGenotype(_cell(1), _cell(1))
    ms = MultiscaleGenotype(
        {k: _cell(1, "concat") for k in ("ep", "ns", "ct")},
        (PathGenotype(("ct", "ns", "ep", "skip")), PathGenotype(("skip", "ct", "ct", "ct"))),
        n_layers=4, n_scales=4, relaxation="input_op_pair",
    )
    for g in (seg, qc, ms, SegQcGenotype(seg, qc)):
        text = g.to_json()
        assert type(g).from_json(text) == g
        assert genotype_from_json(text) == g
        assert type(g).from_json(text).to_json() == text


@pytest.mark.parametrize("space", SPACES)
def test_random_genotypes_round_trip_and_are_seeded(space):
    for seed in range(5):
        g = sample_random_genotype(space, np.random.default_rng(seed))
        assert genotype_from_json(g.to_json()) == g
    assert sample_random_genotype(space, np.random.default_rng(3)) == sample_random_genotype(space, np.random.default_rng(3))


def test_edge_order_is_canonical():
    a = CellGenotype(1, 1, (CellEdge(0, 1, "sep_conv"), CellEdge(0, 1, "conv")))
    b = CellGenotype(1, 1, (CellEdge(0, 1, "conv"), CellEdge(0, 1, "sep_conv")))
    assert a == b and a.to_dict() == b.to_dict()


def test_path_scales():
    assert PathGenotype(("ct", "ct", "ns", "ep", "skip")).scales == (0, 1, 2, 2, 1, 1)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: CellGenotype(1, 2, (CellEdge(0, 1, "conv"),)), "no incoming edge"),
        (lambda: CellGenotype(1, 1, (CellEdge(0, 1, "zero"),)), "not a deployable op"),
        (lambda: CellGenotype(1, 1, (CellEdge(1, 1, "conv"),)), "src < dst"),
        (lambda: PathGenotype(("ep",)), "leaves the grid"),
        (lambda: PathGenotype(("up",)), "unknown kind"),
    ],
)
def test_malformed_genotypes_are_rejected(make, message):
    with pytest.raises(GenotypeError, match=message):
        make()


def test_bad_json_is_rejected_with_a_clear_message():
    with pytest.raises(GenotypeError, match="kind"):
        QcGenotype.from_json(NasUnetGenotype(_cell(2), _cell(3)).to_json())
    with pytest.raises(GenotypeError, match="JSON"):
        genotype_from_json("{not json")
    ms = MultiscaleGenotype({k: _cell(1, "concat") for k in ("ep", "ns", "ct")}, (PathGenotype(("ct",)),), 1)
    with pytest.raises(GenotypeError, match="n_scales"):
        MultiscaleGenotype(ms.cells, (PathGenotype(("ct", "ct")),), 2, n_scales=2)
    with pytest.raises(GenotypeError, match="duplicate"):
        MultiscaleGenotype(ms.cells, ms.paths * 2, 1)
