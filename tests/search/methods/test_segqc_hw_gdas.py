"""segqc-hw with the GDAS sampler (issue 16): config and CLI wiring, a smoke search end to end, resume."""

from __future__ import annotations

import argparse
import json
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from search.methods.segqc_hw.config import preset
from tests.search.methods.synthetic_echo import synthetic_echo_cases


class _Table:
    """Every latency key costs a deterministic 0.1 .. 1.1 ms (hash of its canonical form)."""

    def get(self, key) -> float:
        return 0.1 + (zlib.crc32(key.canonical().encode()) % 1000) / 1000.0


def _gdas_smoke(**search):
    cfg = preset("smoke")
    return replace(cfg, search=replace(cfg.search, sampler="gdas", arch_lr=0.05, **search))


def test_sampler_is_a_typed_choice_and_darts_hashes_stay():
    from search.methods.segqc_hw.experiment import search_config

    # every preset keeps the DARTS mixture its shipped models were searched with (GDAS did not converge either)
    assert {preset(p).search.sampler for p in ("smoke", "default", "paper")} == {"darts"}
    assert preset("default").search.gdas_tau == (10.0, 0.1)
    # DARTS configs do not name the sampler (their stage hashes are those from before it existed) ...
    smoke = preset("smoke")
    assert "sampler" not in smoke.to_dict()["search"] and "gdas_tau" not in smoke.to_dict()["search"]
    # ... GDAS ones do, so a GDAS search never reuses a DARTS search's folder.
    gdas = _gdas_smoke()
    assert gdas.to_dict()["search"]["sampler"] == "gdas"
    assert search_config(gdas, 0.001, 0) != search_config(smoke, 0.001, 0)
    with pytest.raises(ValueError, match="unknown search sampler"):
        replace(smoke.search, sampler="spos")
    with pytest.raises(ValueError):
        replace(smoke.search, gdas_tau=(1.0, 0.0))


def test_cli_sampler_tau_and_search_epochs_reach_the_config(monkeypatch, tmp_path):
    from search.methods.segqc_hw import cli

    seen = {}

    def fake_run(cfg, paths, device, stop_after, only_searches=None, random_controls=True):
        seen["cfg"] = cfg
        return "ok"

    monkeypatch.setattr("search.methods.segqc_hw.experiment.run_segqc_hw", fake_run)
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    args = parser.parse_args(["--preset", "default", "--sampler", "darts", "--gdas-tau", "5", "0.5",
                              "--search-epochs", "1", "12", "--arch-lr", "0.01", "--arch-weight-decay", "0",
                              "--out", str(tmp_path / "run"), "--no-ship"])
    assert cli.run(args) == 0
    s = seen["cfg"].search
    assert (s.sampler, s.gdas_tau, s.warmup_epochs, s.alternate_epochs, s.arch_lr) == ("darts", (5.0, 0.5), 1, 12, 0.01)
    assert s.arch_weight_decay == 0.0
    args = parser.parse_args(["--preset", "default", "--out", str(tmp_path / "run"), "--no-ship"])
    cli.run(args)
    assert seen["cfg"].search.sampler == "darts" and seen["cfg"].search.alternate_epochs == 4
    assert seen["cfg"].search.arch_weight_decay == 1e-3  # the preset's (DARTS')
    with pytest.raises(SystemExit, match="--arch-weight-decay must be >= 0"):
        cli.run(parser.parse_args(["--preset", "default", "--arch-weight-decay", "-1", "--out", str(tmp_path / "r"),
                                   "--no-ship"]))
    assert seen["cfg"].search.latency_budget_ms == 0.0
    cli.run(parser.parse_args(["--preset", "default", "--latency-budget", "45", "--out", str(tmp_path / "run"),
                               "--no-ship"]))
    assert seen["cfg"].search.latency_budget_ms == 45.0
    with pytest.raises(SystemExit, match="--latency-budget must be > 0 ms"):
        cli.run(parser.parse_args(["--preset", "default", "--latency-budget", "0", "--out", str(tmp_path / "r"),
                                   "--no-ship"]))


def _search(cfg, folder: Path):
    from search.methods.segqc_hw.latency_model import FrameworkLatency
    from search.methods.segqc_hw.search import qc_config, search_stage, seg_config

    latency = FrameworkLatency(_Table(), 32, seg_config(cfg), qc_config(cfg))
    return search_stage(cfg, 0.01, 0, synthetic_echo_cases(3, 1, size=32), synthetic_echo_cases(3, 2, size=32),
                        latency, folder)


@pytest.mark.slow
def test_gdas_smoke_search_end_to_end_writes_trace_verdict_and_argmax_genotype(tmp_path):
    """The real seg + QC supernets at the smoke size, one warm-up and two alternating epochs with GDAS."""
    from search.core.decode import decode_nasunet, decode_qc
    from search.core.mixed import MixedOp
    from search.methods.segqc_hw import search as search_module

    cfg = _gdas_smoke(warmup_epochs=1, alternate_epochs=2)
    built = {}
    real_build = search_module.build_supernets

    def build(cfg_, seed):
        seg, qc = real_build(cfg_, seed)
        built["nets"] = (seg, qc)
        built["calls"] = calls = {"ops": 0, "mixed": 0}
        for m in list(seg.modules()) + list(qc.modules()):
            if isinstance(m, MixedOp):
                m.register_forward_pre_hook(lambda *_: calls.__setitem__("mixed", calls["mixed"] + 1))
                for op in m.ops:
                    op.register_forward_pre_hook(lambda *_: calls.__setitem__("ops", calls["ops"] + 1))
        return seg, qc

    real_search = search_module.run_joint_search

    def joint_search(*args, **kwargs):  # count from here: tracing the latency sites ran the whole supernets once
        built["calls"].update(ops=0, mixed=0)
        return real_search(*args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(search_module, "build_supernets", build)
    mp.setattr(search_module, "run_joint_search", joint_search)
    try:
        genotype, rec = _search(cfg, tmp_path / "s")
    finally:
        mp.undo()
    seg, qc = built["nets"]
    calls = built["calls"]
    assert calls["mixed"] > 0 and calls["ops"] == calls["mixed"], "GDAS ran more than one candidate on an edge"
    assert seg.weighting is None and qc.weighting is None, "the wrappers are back to the softmax mixture"
    # The derived genotype is the argmax of the alphas, as with DARTS.
    assert genotype.to_json() == type(genotype)(decode_nasunet(seg.net), decode_qc(qc.net)).to_json()
    saved = json.loads((tmp_path / "s" / "genotype.json").read_text())
    assert saved["sampler"] == "gdas" and isinstance(saved["convergence"]["converged"], bool)
    assert saved["convergence"]["arch_steps"] == saved["arch_trace"]["arch_steps"] > 0
    trace = json.loads((tmp_path / "s" / "arch_trace.json").read_text())
    assert trace["steps"][0] == 0 and trace["steps"][-1] == trace["arch_steps"] and len(trace["groups"]) > 0
    taus = [h["gdas_tau"] for h in rec["history"]]
    assert taus[0] == pytest.approx(10.0) and taus[-1] == pytest.approx(0.1) and taus[1] > taus[2]
    assert [h["phase"] for h in rec["history"]] == ["warmup", "alternate", "alternate"]


@pytest.mark.slow
def test_gdas_search_resumes_to_the_same_alphas(tmp_path):
    from search.methods.segqc_hw.joint_search import run_joint_search
    from search.methods.segqc_hw.data import frame_dataset
    from search.methods.segqc_hw.latency_model import FrameworkLatency
    from search.methods.segqc_hw.search import build_supernets, qc_config, seg_config

    cfg = _gdas_smoke(warmup_epochs=1, alternate_epochs=1)

    def fresh():
        seg, qc = build_supernets(cfg, 0)
        lat = FrameworkLatency(_Table(), 32, seg_config(cfg), qc_config(cfg)).bind(seg.net, qc.net)
        s1 = frame_dataset(synthetic_echo_cases(3, 1, size=32), 32, cfg.data.augment, seed=3)
        s2 = frame_dataset(synthetic_echo_cases(3, 2, size=32), 32, cfg.data.augment, seed=4)
        return seg, qc, lat, s1, s2

    seg_a, qc_a, lat, s1, s2 = fresh()
    run_joint_search(seg_a, qc_a, lat, s1, s2, cfg.search, seed=0, checkpoint=tmp_path / "a.pt")
    seg_b, qc_b, lat, s1, s2 = fresh()
    run_joint_search(seg_b, qc_b, lat, s1, s2, replace(cfg.search, alternate_epochs=0), seed=0,
                     checkpoint=tmp_path / "b.pt")
    seg_c, qc_c, lat, s1, s2 = fresh()
    run_joint_search(seg_c, qc_c, lat, s1, s2, cfg.search, seed=0, checkpoint=tmp_path / "b.pt")
    for a, c in ((seg_a, seg_c), (qc_a, qc_c)):
        for pa, pc in zip(a.arch_parameters(), c.arch_parameters()):
            assert torch.allclose(pa, pc, atol=1e-6)
        assert any(float(p.detach().abs().max()) > 1e-2 for p in a.arch_parameters()), "the alphas moved"


def test_report_says_which_sampler_searched(tmp_path):
    from tests.search.report import stored_runs

    stored_runs.segqc_run(tmp_path / "gdas", preset="default", sampler="gdas")
    text = (tmp_path / "gdas" / "report" / "README.md").read_text()
    assert "GDAS: one candidate per edge" in text and "tau 10 -> 0.1" in text
    stored_runs.segqc_run(tmp_path / "darts", preset="smoke")
    assert "GDAS" not in (tmp_path / "darts" / "report" / "README.md").read_text()
