"""The cine skeleton search: its space holds the per-frame U-net 2D baseline, its supernet runs frame by
frame, and the smoke preset goes end to end to a card the app loads and runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app.cards import load_card
from app.engine.models import load_model
from app.engine.stages import SegStage
from search.baselines.registry import get_baseline
from search.baselines.unet import UNet
from search.build import build_from_card
from search.core.derived.unet_skeleton import SkeletonUNet, UNetSkeleton
from search.core.mixed import ArchWeighting
from search.core.supernets.unet_skeleton import SkeletonSupernet
from search.methods.cine_skeleton.config import PRESETS, preset
from search.methods.cine_skeleton.run import CLASSES, FrameWiseSupernet, choices, run


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_the_reference_is_the_per_frame_baseline_and_lies_in_the_space(name):
    cfg = PRESETS[name]
    reference = UNetSkeleton.parse(cfg.reference)
    assert choices(cfg).contains(reference)
    if name == "default":  # the U-net 2D (D3, IF16) baseline itself, weight for weight
        spec = get_baseline("unet2d-d3-if16").unet
        assert _params(SkeletonUNet(reference, in_channels=1, n_classes=len(CLASSES))) == _params(UNet(spec))


def test_framewise_supernet_runs_every_frame_and_exposes_only_the_skeleton_logits():
    cfg = preset("smoke")
    net = FrameWiseSupernet(SkeletonSupernet(choices(cfg), seed=0))
    arch = dict(net.named_arch_parameters())
    assert set(arch) == {f"frames.unet.skeleton_arch.{k}" for k in net.net.skeleton_arch}
    assert not {id(p) for p in arch.values()} & {id(p) for p in net.weight_parameters()}
    clips = torch.randn(2, 1, 3, 16, 16)
    out = net(clips, ArchWeighting.gdas(torch.Generator().manual_seed(0), 1.0))
    assert out.shape == (2, len(CLASSES), 3, 16, 16)
    # Frame by frame: the second frame's logits are what the 2D supernet gives that frame alone (eval mode).
    net.eval()
    with torch.no_grad():
        whole = net(clips)
        alone = net.net(clips[:, :, 1])
    assert torch.allclose(whole[:, :, 1], alone, atol=1e-5)


def test_unknown_preset_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown cine-skeleton preset 'nope'"):
        preset("nope")


@pytest.mark.slow
def test_smoke_run_ships_a_per_frame_card_the_app_runs(tmp_path):
    models = tmp_path / "models"
    report = run(preset("smoke"), tmp_path / "run", models_dir=models)
    found = report["search"]
    assert report["shipped"] == ["cine-skeleton-hw"]
    assert choices(preset("smoke")).contains(UNetSkeleton.parse(found["genotype"]))
    assert found["convergence"]["arch_steps"] == preset("smoke").search.search_steps
    assert found["predicted_ms"]["derived"] > 0 and found["predicted_ms"]["reference"] > 0
    card = load_card(models / "cine-skeleton-hw.json")
    assert card.modality == "cine" and card.role == "seg" and card.method == "cine-skeleton"
    assert card.clip_length == 1 and tuple(card.input_shape) == (1, 1, 32, 32)
    assert card.raw["architecture"]["args"]["spec"] == found["genotype"]
    assert card.raw["search"]["convergence"]["converged"] is False  # 3 architecture steps decide nothing
    assert card.raw["notes"].startswith("Search NOT CONVERGED")
    assert len(card.raw["data"]["training"]["loss"]) == card.raw["data"]["training"]["epochs"]
    # The card rebuilds the network, and the app runs it on a frame.
    rebuilt = build_from_card(card, weights=True)
    assert isinstance(rebuilt, torch.nn.Module)
    stage = SegStage(load_model(card))
    frame = np.random.default_rng(0).normal(0, 1, (32, 32)).astype(np.float32)
    probs = load_model(card).run({"image": frame[None, None]})["probs"]
    assert probs.shape == (1, len(CLASSES), 32, 32) and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert stage.clip_length == 1
    # Resumable: a second run reuses the search and the retraining (same genotype, same losses).
    again = run(preset("smoke"), tmp_path / "run", models_dir=tmp_path / "models2", ship=False)
    assert again["search"]["genotype"] == found["genotype"] and again["retrain_loss"] == report["retrain_loss"]
    assert json.loads((tmp_path / "run" / "report.json").read_text())["search"]["genotype"] == found["genotype"]


def test_blocks_are_a_choice_and_a_bad_token_is_one_clear_error():
    assert choices(preset("default", blocks=("c2",))).blocks == ("c2",)
    with pytest.raises(ValueError, match="x9"):
        preset("smoke", blocks=("x9",))


def test_search_only_stops_before_retraining_and_a_folder_keeps_its_settings(tmp_path, capsys):
    """``--search-only`` writes the derived network and its verdict and trains nothing more; a run folder holding a
    search of other settings (here more search steps) is refused in one line instead of being reused."""
    from search.cli import main

    out = tmp_path / "run"
    rc = main(["cine-skeleton", "--preset", "smoke", "--search-only", "--search-steps", "4", "--out", str(out),
               "--models-dir", str(tmp_path / "models")])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["search_only"] and report["retrain_loss"] is None
    assert report["search"]["convergence"]["arch_steps"] == 4 and report["config"]["search"]["search_steps"] == 4
    assert not (out / "retrain.pt").exists() and not (tmp_path / "models").exists()
    capsys.readouterr()
    rc = main(["cine-skeleton", "--preset", "smoke", "--search-only", "--search-steps", "5", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "other settings (search)" in err[0] and "--out" in err[0]
    assert main(["cine-skeleton", "--preset", "smoke", "--search-steps", "0"]) == 2


@pytest.mark.slow
def test_a_dataset_run_trains_on_its_split_and_ships_into_its_run_folder(tmp_path, capsys):
    """``--data acdc:DIR``: the search and the retraining read the dataset (its official test set as test), the
    card names the dataset by kind with hashes only, and the model goes to the run folder, not models/."""
    from app.data.phantom_cli import write_phantom_dataset
    from search.cli import main

    data = tmp_path / "ACDC_DOE_JANE"
    write_phantom_dataset("cine", 6, data, n_frames=4, n_slices=2, size=64, fmt="acdc")
    out = tmp_path / "run"
    rc = main(["cine-skeleton", "--preset", "smoke", "--data", f"acdc:{data}", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    card = load_card(out / "models" / "cine-skeleton-hw.json").verify()
    assert card.raw["data"]["dataset"] == "ACDC" and "DOE" not in json.dumps(card.raw)
    found = json.loads((out / "search.json").read_text())
    assert found["config"]["data"].startswith("acdc:folder-sha256:") and "DOE" not in json.dumps(found)
    capsys.readouterr()
    assert main(["cine-skeleton", "--preset", "smoke", "--out", str(out), "--search-only"]) == 2  # phantom != ACDC
    assert "other settings (data)" in capsys.readouterr().err
    assert main(["cine-skeleton", "--preset", "smoke", "--data", f"camus:{tmp_path}"]) == 2  # no cine there
