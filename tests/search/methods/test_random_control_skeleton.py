"""segqc-hw's random control in the U-net skeleton space: sampling, cost-only refinement, reading a control back."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from search.core.genotypes import SegQcGenotype, SkeletonQcGenotype
from search.core.sampling import sample_random_genotype
from search.core.supernets.unet_skeleton import block_token
from search.methods.segqc_hw.config import preset
from search.methods.segqc_hw.random_control import (control_record, pair_genotype_from_dict, random_candidates,
                                                    random_genotype, read_control, redraw_one_level,
                                                    refine_to_target, write_control)


def _skeleton_cfg():
    cfg = preset("smoke")
    return replace(cfg, space=replace(cfg.space, seg_space="skeleton"))


class WidthSum:
    """A fake latency model: a pair's ms is the sum of its skeleton's level widths plus its QC edge count."""

    def of_genotype(self, genotype: SkeletonQcGenotype) -> float:
        qc = genotype.qc
        return float(sum(lv.width for lv in genotype.seg.levels)
                     + len(qc.contracting.edges) + len(qc.nonscaling.edges))


def test_skeleton_draws_are_members_of_the_space_deterministic_and_spread() -> None:
    cfg = _skeleton_cfg()
    choices = cfg.space.skeleton_choices(cfg.task.num_classes)
    first = [random_genotype(cfg, rng) for rng in [np.random.default_rng(5)] for _ in range(80)]
    again = [random_genotype(cfg, rng) for rng in [np.random.default_rng(5)] for _ in range(80)]
    other = [random_genotype(cfg, rng) for rng in [np.random.default_rng(6)] for _ in range(80)]
    assert first == again and first != other
    for genotype in first:
        assert isinstance(genotype, SkeletonQcGenotype)
        assert choices.contains(genotype.seg) and genotype.seg.input_stride == cfg.space.input_stride
        assert SkeletonQcGenotype.from_json(genotype.to_json()) == genotype
    for k, widths in enumerate(choices.widths):  # every candidate width and block shows up at every level
        assert {g.seg.levels[k].width for g in first} == set(widths)
        assert {block_token(g.seg.levels[k]) for g in first} == set(choices.blocks)
    assert len({g.qc.to_json() for g in first}) > 20  # the QC net is random too


def test_skeleton_draw_order_is_the_skeleton_then_the_qc_samplers_pair() -> None:
    """Per level its width then its block, then ``sample_random_genotype("segqc")``'s QC net."""
    cfg = _skeleton_cfg()
    choices = cfg.space.skeleton_choices(cfg.task.num_classes)
    genotype = random_genotype(cfg, np.random.default_rng(11))
    rng = np.random.default_rng(11)
    for k, widths in enumerate(choices.widths):
        assert genotype.seg.levels[k].width == widths[int(rng.integers(len(widths)))]
        assert block_token(genotype.seg.levels[k]) == choices.blocks[int(rng.integers(len(choices.blocks)))]
    assert genotype.qc == sample_random_genotype("segqc", rng, n_nodes=cfg.space.nodes).qc


def test_cell_space_draws_are_the_samplers_unchanged() -> None:
    cfg = preset("smoke")
    assert cfg.space.seg_space == "cells"
    ours, theirs = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(20):
        genotype = random_genotype(cfg, ours)
        assert isinstance(genotype, SegQcGenotype)
        assert genotype == sample_random_genotype("segqc", theirs, n_nodes=cfg.space.nodes,
                                                  droppable_inputs=cfg.space.droppable_inputs,
                                                  keep_prev=cfg.space.keep_prev)


def test_refinement_moves_towards_the_target_and_stays_in_the_space() -> None:
    cfg = _skeleton_cfg()
    choices = cfg.space.skeleton_choices(cfg.task.num_classes)
    fake = WidthSum()
    pool = random_candidates(cfg, fake, seed=2, n_candidates=10)
    for start in pool[:3]:
        for target in (start[1] - 60.0, start[1] + 60.0, 0.0):
            refined = refine_to_target(start, cfg, fake, target, seed=2, steps=150)
            assert abs(refined[1] - target) <= abs(start[1] - target)  # never farther than the start
            assert refined[1] == fake.of_genotype(refined[0])
            assert isinstance(refined[0], SkeletonQcGenotype) and choices.contains(refined[0].seg)
            assert refined == refine_to_target(start, cfg, fake, target, seed=2, steps=150)
    start = pool[0]
    assert abs(refine_to_target(start, cfg, fake, 0.0, seed=2, steps=150)[1]) < abs(start[1])  # closer
    assert refine_to_target(start, cfg, fake, start[1], seed=2, steps=150) == start  # on target: unchanged
    rng = np.random.default_rng(0)
    for _ in range(30):  # one level changed at most, only its width or only its block; QC untouched
        redrawn = redraw_one_level(start[0], cfg, rng)
        assert redrawn.qc == start[0].qc and choices.contains(redrawn.seg)
        diff = [(a, b) for a, b in zip(redrawn.seg.levels, start[0].seg.levels) if a != b]
        assert len(diff) <= 1
        assert all((a.width == b.width) != (block_token(a) == block_token(b)) for a, b in diff)


def test_controls_of_both_spaces_read_back(tmp_path: Path) -> None:
    for cfg in (preset("smoke"), _skeleton_cfg()):
        genotype = random_genotype(cfg, np.random.default_rng(4))
        record = control_record("searched_hw", (genotype, 12.0), 12.5, 4, 200)
        path = tmp_path / f"{cfg.space.seg_space}.json"
        write_control(path, record)
        read, back = read_control(path)
        assert read == genotype and type(read) is type(genotype) and back == record
        assert pair_genotype_from_dict(genotype.to_dict()) == genotype
