"""segqc-hw's warm-up that lasts until the supernet segments (issue 16): the phase rule, config, CLI, a search."""

from __future__ import annotations

import argparse
import json
import zlib
from dataclasses import replace

import pytest

from search.methods.segqc_hw.config import preset
from search.methods.segqc_hw.joint_search import SearchState, next_phase
from tests.search.methods.synthetic_echo import synthetic_echo_cases


def _cfg(**search):
    cfg = preset("smoke")
    return replace(cfg, search=replace(cfg.search, **search))


def _history(*entries):
    """``("warmup", 0.1), ("alternate", None), ...`` -> history records (None: no ``dice_s1``, an old record)."""
    out = []
    for i, (phase, dice) in enumerate(entries):
        out.append({"epoch": i + 1, "phase": phase, **({} if dice is None else {"dice_s1": dice})})
    return out


def test_a_fixed_warm_up_is_what_it_was():
    s = _cfg(warmup_epochs=2, alternate_epochs=2).search
    phases, history = [], []
    while (phase := next_phase(history, s)) is not None:
        phases.append(phase)
        history.append({"phase": phase, "dice_s1": 0.0})  # Dice 0 all along: no rule, no extra warm-up
    assert phases == ["warmup", "warmup", "alternate", "alternate"]


def test_the_warm_up_goes_on_until_the_dice_is_reached_or_the_cap():
    s = _cfg(warmup_epochs=2, alternate_epochs=3, warmup_min_dice=0.5, warmup_max_epochs=5).search
    assert next_phase(_history(("warmup", 0.0)), s) == "warmup"  # the preset's epochs come first
    assert next_phase(_history(("warmup", 0.0), ("warmup", 0.2)), s) == "warmup"  # Dice too low: one more
    assert next_phase(_history(("warmup", 0.0), ("warmup", 0.2), ("warmup", 0.5)), s) == "alternate"
    capped = _history(*[("warmup", 0.1)] * 5)
    assert next_phase(capped, s) == "alternate"  # the cap: searched anyway
    # once alternating, never back to warming up, whatever the Dice
    assert next_phase(_history(*[("warmup", 0.6)] * 2, ("alternate", 0.0)), s) == "alternate"
    assert next_phase(_history(*[("warmup", 0.6)] * 2, *[("alternate", 0.0)] * 3), s) is None
    # a record from before the rule (no dice_s1) does not hold the search in its warm-up
    assert next_phase(_history(("warmup", None), ("warmup", None)), s) == "alternate"


def test_the_warm_up_record_says_whether_the_dice_was_reached():
    s = _cfg(warmup_epochs=1, alternate_epochs=1, warmup_min_dice=0.5, warmup_max_epochs=3).search
    state = SearchState(epoch=4, history=_history(("warmup", 0.1), ("warmup", 0.3), ("warmup", 0.4), ("alternate", 0.5)))
    assert state.warmup_epochs == 3
    assert state.warmup_record(s) == {"epochs": 3, "min_dice": 0.5, "max_epochs": 3, "dice_s1_last": 0.4,
                                      "reached_dice": False}
    fixed = _cfg(warmup_epochs=1, alternate_epochs=1).search
    assert SearchState(1, _history(("warmup", 0.0))).warmup_record(fixed)["reached_dice"] is None


def test_config_checks_the_rule_and_keeps_old_hashes():
    with pytest.raises(ValueError, match="warmup_min_dice"):
        _cfg(warmup_min_dice=1.0, warmup_max_epochs=5)
    with pytest.raises(ValueError, match="warmup_max_epochs"):
        _cfg(warmup_epochs=4, warmup_min_dice=0.5, warmup_max_epochs=3)
    # without the rule the config names none of it: stage hashes of earlier runs stay valid
    assert not {"warmup_min_dice", "warmup_max_epochs"} & set(preset("default").to_dict()["search"])
    on = _cfg(warmup_min_dice=0.5, warmup_max_epochs=3).to_dict()["search"]
    assert (on["warmup_min_dice"], on["warmup_max_epochs"]) == (0.5, 3)


def _parse(tmp_path, *extra):
    from search.methods.segqc_hw import cli

    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return cli, parser.parse_args(["--preset", "default", "--out", str(tmp_path / "run"), "--no-ship", *extra])


def test_cli_warm_up_rule_and_weight_lr_reach_the_config(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("search.methods.segqc_hw.experiment.run_segqc_hw",
                        lambda cfg, paths, device, stop_after, only_searches=None, random_controls=True: seen.setdefault("cfg", cfg) and "ok")
    cli, args = _parse(tmp_path, "--warmup-until-dice", "0.5", "40", "--weight-lr", "0.003")
    assert cli.run(args) == 0
    s = seen["cfg"].search
    assert (s.warmup_min_dice, s.warmup_max_epochs, s.weight_lr) == (0.5, 40, 0.003)
    for bad, words in ((["0.5", "4.5"], "whole number"), (["1.5", "40"], "warmup_min_dice"),
                       (["0.5", "1"], "warmup_max_epochs")):
        cli, args = _parse(tmp_path, "--warmup-until-dice", *bad)
        with pytest.raises(SystemExit, match=words):
            cli.run(args)


class _Table:
    def get(self, key) -> float:
        return 0.1 + (zlib.crc32(key.canonical().encode()) % 1000) / 1000.0


@pytest.mark.parametrize("sampler", ["darts", "gdas"])
def test_a_search_whose_supernet_never_segments_warms_up_to_the_cap_and_says_so(tmp_path, sampler):
    from search.methods.segqc_hw.latency_model import FrameworkLatency
    from search.methods.segqc_hw.search import qc_config, search_stage, seg_config

    cfg = _cfg(warmup_epochs=1, alternate_epochs=1, warmup_min_dice=0.999, warmup_max_epochs=3, sampler=sampler)
    latency = FrameworkLatency(_Table(), 32, seg_config(cfg), qc_config(cfg))
    _, rec = search_stage(cfg, 0.01, 0, synthetic_echo_cases(3, 1, size=32), synthetic_echo_cases(3, 2, size=32),
                          latency, tmp_path / "s")
    assert [h["phase"] for h in rec["history"]] == ["warmup"] * 3 + ["alternate"]
    assert all(0.0 <= h["dice_s1"] <= 1.0 for h in rec["history"])
    assert rec["warmup"]["epochs"] == 3 and rec["warmup"]["reached_dice"] is False
    saved = json.loads((tmp_path / "s" / "genotype.json").read_text())
    assert saved["warmup"] == rec["warmup"]
    assert rec["convergence"]["arch_steps"] > 0  # the architecture steps ran after the capped warm-up


@pytest.mark.slow
def test_searches_differing_only_in_lambda2_share_the_warm_up_exactly(tmp_path):
    import torch

    from search.methods.segqc_hw.data import frame_dataset
    from search.methods.segqc_hw.joint_search import run_joint_search
    from search.methods.segqc_hw.latency_model import FrameworkLatency
    from search.methods.segqc_hw.search import build_supernets, qc_config, seg_config

    cfg = _cfg(warmup_epochs=2, alternate_epochs=1, sampler="gdas", arch_lr=0.05)

    def search(folder, shared, **arch_phase):
        seg, qc = build_supernets(cfg, 0)
        lat = FrameworkLatency(_Table(), 32, seg_config(cfg), qc_config(cfg)).bind(seg.net, qc.net)
        s1 = frame_dataset(synthetic_echo_cases(3, 1, size=32), 32, cfg.data.augment, seed=3)
        s2 = frame_dataset(synthetic_echo_cases(3, 2, size=32), 32, cfg.data.augment, seed=4)
        state = run_joint_search(seg, qc, lat, s1, s2, replace(cfg.search, **arch_phase), seed=0,
                                 checkpoint=folder / "search.pt", warmup_checkpoint=shared)
        return seg, qc, state

    shared = tmp_path / "warmup" / "seed0.pt"
    search(tmp_path / "nohw", shared, lambda2=0.0)  # warms up and leaves the warm-up behind
    assert shared.is_file()
    warm = torch.load(shared, weights_only=False)
    assert [h["phase"] for h in warm["history"]] == ["warmup", "warmup"]
    # another latency weight, a longer and faster architecture phase: the warm-up is the same
    other = dict(lambda2=0.05, arch_lr=0.2, arch_betas=(0.9, 0.99), alternate_epochs=2)
    seg_b, qc_b, state_b = search(tmp_path / "hw", shared, **other)  # starts from it
    seg_c, qc_c, state_c = search(tmp_path / "hw_alone", None, **other)  # warms up itself
    assert [h["phase"] for h in state_b.history] == ["warmup", "warmup", "alternate", "alternate"]
    for b, c in ((seg_b, seg_c), (qc_b, qc_c)):
        for (name, pb), pc in zip(b.state_dict().items(), c.state_dict().values()):
            assert torch.equal(pb, pc), name


def test_the_shared_warm_up_is_named_by_what_the_warm_up_reads():
    from pathlib import Path

    from search.methods.segqc_hw.experiment import RunPaths, SegQcExperiment

    def path(**search):
        return SegQcExperiment(_cfg(**search), RunPaths(Path("run"), None, None)).warmup_checkpoint(0)

    base = path()
    assert base.parent == Path("run") / "search" / "warmup" and base.name.startswith("seed0-")
    for post in (dict(lambda2=0.5), dict(arch_lr=0.3), dict(alternate_epochs=99), dict(arch_betas=(0.9, 0.9)),
                 dict(arch_weight_decay=0.5), dict(gumbel_tau=3.0), dict(latency_budget_ms=45.0)):
        assert path(**post) == base, post  # read only after the warm-up
    for pre in (dict(weight_lr=0.5), dict(warmup_epochs=9), dict(batch_size=3), dict(sampler="gdas")):
        assert path(**pre) != base, pre  # the warm-up depends on them
