"""The causal retrain of a shipped rtdnas genotype, shipped as a streaming model (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cards import load_card
from search.methods.rtdnas import space
from search.methods.rtdnas.streaming import DEFAULT_BASE, main, run_config
from search.train.cine_config import RowSpec
from search.train.clips import clip_dataset
from search.train.row_networks import build_row_network


def test_run_config_keeps_the_cards_network_at_every_preset():
    args = json.loads(DEFAULT_BASE.read_text())["architecture"]["args"]
    for name in ("smoke", "default"):
        cfg = run_config(name, None, args)
        assert cfg.trained_channels == args["base_channels"]
        assert (cfg.supernet.layers, cfg.supernet.scales, cfg.supernet.nodes) == (
            args["n_layers"], args["n_scales"], args["n_nodes"])
    assert run_config("default", 1, args).retrain.steps == 250  # the shipped model's schedule


def test_causal_rows_build_causal_networks_and_per_frame_clips():
    from search.core.genotypes import MultiscaleGenotype

    base = json.loads(DEFAULT_BASE.read_text())
    cfg = run_config("smoke", None, base["architecture"]["args"])
    g = MultiscaleGenotype.from_dict(base["genotype"])
    row = space.row("stream", "stream", len(g.paths))
    view = space.rows_view(cfg, (row,))
    causal = build_row_network(view, row, genotype=g, causal=True)
    plain = build_row_network(view, row, genotype=g)
    assert causal.config.causal and not plain.config.causal
    assert sum(p.numel() for p in causal.parameters()) == sum(p.numel() for p in plain.parameters())
    unet = RowSpec("U-net 3D (D3, IF16)", "unet3d_d3_if16", "unet3d", depth=3, initial_filters=16)
    with pytest.raises(ValueError, match="causal form"):
        build_row_network(view, unet, causal=True)
    from app.data.phantom.cine import render_cine_case

    case = render_cine_case(0, 0, n_frames=4, n_slices=1, shape=(64, 64))
    clip = clip_dataset([case], cfg.data, train=False, seed=0, per_frame_norm=True)[0][0].numpy()
    for t in range(clip.shape[1]):
        assert abs(float(clip[:, t].mean())) < 1e-4 and abs(float(clip[:, t].std()) - 1.0) < 1e-3
    x = torch.from_numpy(clip[None])
    with torch.no_grad():
        assert torch.isfinite(causal.eval()(x)).all()


@pytest.mark.slow
def test_smoke_retrain_ships_a_streaming_card(tmp_path: Path):
    out = tmp_path / "run"
    assert main(["--preset", "smoke", "--base", str(DEFAULT_BASE), "--out", str(out), "--retrain-steps", "4"]) == 0
    card = load_card(out / "models" / "cine-rtdnas-ga-n7-stream.json").verify()
    assert card.streaming is not None and card.input_shape == (1, 1, 1, 32, 32)
    assert card.raw["architecture"]["args"]["causal"] is True
    assert card.raw["architecture"]["interface"] == "streaming_probs"
    # paired with the base clip model's QC partner; not the default: its smoke Dice is below the base's
    assert not card.raw.get("default") and card.pairs_with == json.loads(DEFAULT_BASE.read_text())["pairs_with"]
    row = json.loads((out / "rows" / "stream" / "result.json").read_text())
    assert row["causal"] is True
    assert len(row["train_losses"]) == 2  # --retrain-steps 4: the smoke schedule's 2 steps per loss point, twice
    # the exported streaming file, fed each test clip from the initial state, is the causal clip model
    assert np.isclose(card.metrics["dice"]["mean"], row["dice"]["mean"], atol=1e-3)
    assert card.raw["streaming_vs_clip"]["ratio_p50"] > 0
    # beside the measured per-frame time, the per-frame table's prediction (or why there is none)
    table = card.raw["per_frame_latency_table"]
    assert table["space"] == "rtdnas" and table["measured_p50_ms"] == card.raw["streaming_vs_clip"]["stream_p50_ms"]
    assert table["predicted_ms"] is not None or table["note"]
