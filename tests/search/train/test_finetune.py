"""``python -m search finetune``: starts from the shipped weights, exports a valid card, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cards import load_card, sha256_of
from app.data.case import DataError
from app.engine.runtime import create_session
from search.data import parse_data_spec
from search.finetune import FinetuneConfig, FinetuneError, finetune, load_target
from search.finetune.data import DataOptions, split_cases
from search.finetune.run import _datasets, _FrozenBatchNorm, _train

REPO = Path(__file__).resolve().parents[3]
MODELS = REPO / "models"
ECHO = "echo-segqc-hw-seg"
TINY = DataOptions(phantom_cases=6, frames_per_case=2, seed=0)


def _phantom_frame(target) -> np.ndarray:
    parts = split_cases(parse_data_spec("phantom"), target, TINY)
    _, _, test = _datasets(target, parts, seed=0)
    return test[0][0].numpy()[None]


def test_rebuilt_network_starts_exactly_from_the_shipped_onnx():
    target = load_target(ECHO, MODELS)
    x = _phantom_frame(target)
    shipped = create_session(MODELS / f"{ECHO}.onnx").run(["probs"], {"image": x})[0]
    model = _FrozenBatchNorm(target.net).train()  # what the training loop runs, before any step
    assert not any(m.training for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(probs, shipped, atol=1e-4)


@pytest.mark.parametrize("model", ["baseline-unet8-resnet18-seg", "cine-msnas-hw-ours-n1", "cine-rtdnas-ga-n7"])
def test_every_supported_model_starts_from_its_onnx(model):
    target = load_target(model, MODELS)
    name = target.raw["inputs"][0]["name"]
    x = np.random.default_rng(0).random(target.input_shape).astype(np.float32)
    shipped = create_session(target.onnx_path).run(["probs"], {name: x})[0]
    with torch.no_grad():
        probs = torch.softmax(_FrozenBatchNorm(target.net).train()(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(probs, shipped, atol=1e-4)


def _assert_clips_zscored_per_frame(target, clip_length: int) -> None:
    """The model's training clips are ``clip_length`` frames of its grid, every frame z-scored on its own (what the
    app feeds a streaming or per-frame model)."""
    h, w = target.input_shape[-2:]
    train, _, test = _datasets(target, split_cases(parse_data_spec("phantom"), target,
                                                   DataOptions(phantom_cases=5, seed=0)), seed=0)
    clip = test[0][0].numpy()
    assert clip.shape == (1, clip_length, h, w) and train.per_frame_norm
    np.testing.assert_allclose(clip.mean(axis=(2, 3)), 0.0, atol=1e-4)


@pytest.mark.parametrize("model", ["cine-rtdnas-ga-n7-stream"])
def test_a_streaming_model_trains_as_its_causal_clip_network(model):
    """A streaming card is fine-tunable: what trains is its causal clip network, on clips of its clip
    card's length z-scored per frame, and before any step it computes what the streaming ONNX file
    computes, every clip streamed from the initial state."""
    from search.export.streaming import onnx_stream_predictor
    from search.finetune.target import STREAMING_INTERFACE

    target = load_target(model, MODELS)
    assert target.streaming and target.raw["architecture"]["interface"] == STREAMING_INTERFACE
    assert target.train_clip_length == json.loads((MODELS / "cine-rtdnas-ga-n7.json").read_text())["clip_length"]
    h, w = target.input_shape[-2:]
    x = np.random.default_rng(0).standard_normal((1, 1, 4, h, w)).astype(np.float32)
    streamed, _ = onnx_stream_predictor(target.onnx_path, target.streaming)(x)
    with torch.no_grad():
        probs = torch.softmax(_FrozenBatchNorm(target.net).train()(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(probs, streamed, atol=1e-4)
    _assert_clips_zscored_per_frame(target, target.train_clip_length)


@pytest.mark.parametrize("model", ["cine-skeleton-hw", "baseline-unet2d-d3-if16"])
def test_a_per_frame_model_trains_frame_by_frame_on_clips(model):
    """A per-frame cine card (one frame per call) is fine-tunable: what trains is its 2D network applied to
    every frame of a clip, each frame z-scored on its own, and before any step it computes what its ONNX file
    computes frame by frame."""
    from search.export.predictors import onnx_framewise_seg_predictor
    from search.finetune.target import PER_FRAME_CLIP_LENGTH

    target = load_target(model, MODELS)
    assert target.per_frame and len(target.input_shape) == 4 and target.train_clip_length == PER_FRAME_CLIP_LENGTH
    h, w = target.input_shape[-2:]
    x = np.random.default_rng(0).standard_normal((1, 1, 3, h, w)).astype(np.float32)
    framewise, _ = onnx_framewise_seg_predictor(target.onnx_path)(x)
    with torch.no_grad():
        probs = torch.softmax(_FrozenBatchNorm(target.trainable).train()(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(probs, framewise, atol=1e-4)
    _assert_clips_zscored_per_frame(target, PER_FRAME_CLIP_LENGTH)


def test_a_contrast_model_fine_tuned_on_a_bmode_dataset_is_for_bmode(tmp_path):
    from search.finetune.run import echo_mode_after

    target = load_target(ECHO, MODELS)
    assert target.raw["echo_mode"] == "contrast"
    assert echo_mode_after(target, parse_data_spec(f"camus:{tmp_path}")) == "bmode"
    assert echo_mode_after(target, parse_data_spec("phantom")) == "contrast"
    assert echo_mode_after(target, parse_data_spec(f"dicom:{tmp_path}")) == "contrast"  # may be contrast recordings


def test_no_better_validation_keeps_the_starting_weights():
    target = load_target(ECHO, MODELS)
    parts = split_cases(parse_data_spec("phantom"), target, TINY)
    train, val, _ = _datasets(target, parts, seed=0)
    start = {k: v.clone() for k, v in target.net.state_dict().items()}
    record = _train(target, train, val, FinetuneConfig(epochs=2, patience=1, lr=0.5), say=lambda _: None)
    assert record["best_epoch"] == 0 and record["epochs_run"] == 1  # lr 0.5 ruins it; patience 1 stops
    for k, v in target.net.state_dict().items():
        torch.testing.assert_close(v, start[k])


@pytest.mark.parametrize(("model", "message"), [
    ("no-such-model", "no model 'no-such-model'"),
    ("baseline-unet8-resnet18-seg-int8", "fine-tune its float model baseline-unet8-resnet18-seg instead"),
    ("echo-segqc-hw-qc", "fine-tune echo-segqc-hw-seg"),
    ("cine-skeleton-hw-qc", "fine-tune cine-skeleton-hw"),
])
def test_models_that_cannot_be_fine_tuned_say_what_to_do(model, message):
    with pytest.raises(FinetuneError, match=message):
        load_target(model, MODELS)


def test_data_without_the_models_classes_stops(tmp_path):
    from app.data.phantom_cli import write_phantom_dataset

    write_phantom_dataset("echo", 3, tmp_path / "echonet", n_frames=4, fmt="echonet", size=112)
    with pytest.raises(DataError, match="no MYO"):
        finetune(ECHO, parse_data_spec(f"echonet:{tmp_path / 'echonet'}"), tmp_path / "out", models_dir=MODELS)
    with pytest.raises(DataError, match="cine MR"):
        finetune("cine-rtdnas-ga-n7", parse_data_spec(f"echonet:{tmp_path / 'echonet'}"), tmp_path / "out",
                 models_dir=MODELS)


@pytest.mark.slow
def test_one_epoch_on_phantoms_exports_a_card_the_app_loads(tmp_path):
    out = tmp_path / "models"
    result = finetune(ECHO, parse_data_spec("phantom"), out, FinetuneConfig(epochs=1, data=TINY),
                      models_dir=MODELS, say=lambda _: None)
    card = load_card(result.card.card_path).verify()
    raw = card.raw
    assert card.id.startswith(f"{ECHO}-ft-") and card.role == "seg"
    assert raw["finetuned_from"] == {"id": ECHO, "sha256": sha256_of(MODELS / f"{ECHO}.onnx")}
    assert raw["architecture"] == json.loads((MODELS / f"{ECHO}.json").read_text())["architecture"]
    assert 0.0 <= raw["metrics"]["dice_before"]["mean"] <= 1.0 and 0.0 <= raw["metrics"]["dice"]["mean"] <= 1.0
    assert raw["metrics"]["dice"]["mean"] == pytest.approx(result.dice_after, abs=1e-4)
    assert raw["data"]["dataset"] == "phantom" and sum(raw["data"]["counts"].values()) == TINY.phantom_cases
    assert raw["echo_mode"] == "contrast"  # contrast phantoms for the contrast model: still for contrast echo
    assert "phantom-echo" not in json.dumps(raw["data"])  # hashes and counts, no case ids
    assert raw["export"]["parity"]["max_abs_diff"] <= 1e-4 and (out / f"{card.id}.pt").is_file()
    # the QC partner sits beside it, unchanged, so the pair loads from the export folder
    assert raw["pairs_with"] == "echo-segqc-hw-qc" and load_card(out / "echo-segqc-hw-qc.json").verify()
    assert {"mae_before", "mae_after"} <= set(raw["metrics"]["qc_partner"])
    x = np.zeros(card.input_shape, np.float32)
    probs, unc = create_session(card.onnx_path).run(["probs", "uncertainty"], {"image": x})
    assert probs.shape == tuple(raw["outputs"][0]["shape"]) and unc.shape == tuple(raw["outputs"][1]["shape"])


@pytest.mark.slow
def test_cli_fine_tunes_on_a_camus_layout_folder(tmp_path, capsys):
    from app.data.phantom_cli import write_phantom_dataset
    from search.cli import main

    write_phantom_dataset("echo", 5, tmp_path / "camus", n_frames=6, fmt="camus", size=128)
    rc = main(["finetune", "--model", ECHO, "--data", f"camus:{tmp_path / 'camus'}", "--epochs", "1",
               "--frames-per-case", "2", "--id", "echo-camus-ft", "--models-dir", str(tmp_path / "models")])
    assert rc == 0, capsys.readouterr().err
    raw = json.loads((tmp_path / "models" / "echo-camus-ft.json").read_text())
    assert raw["data"]["dataset"] == "CAMUS" and raw["finetuned_from"]["id"] == ECHO
    assert raw["echo_mode"] == "bmode"  # the contrast model, now trained on B-mode CAMUS
    assert str(tmp_path) not in json.dumps(raw)  # no folder or file name in the card


def _one_cine_epoch(model: str, out: Path):
    """One fine-tuning epoch of a shipped cine model on 5 phantom patients into ``out``, with the checks every
    fine-tuned cine card passes (provenance, same architecture, parity, its Dice, the QC partner beside it);
    returns ``(card, its JSON, the shipped card's JSON)``."""
    result = finetune(model, parse_data_spec("phantom"), out,
                      FinetuneConfig(epochs=1, data=DataOptions(phantom_cases=5, seed=0)), models_dir=MODELS,
                      say=lambda _: None)
    card = load_card(result.card.card_path).verify()
    raw, base = card.raw, json.loads((MODELS / f"{model}.json").read_text())
    assert raw["finetuned_from"] == {"id": model, "sha256": sha256_of(MODELS / f"{model}.onnx")}
    assert raw["architecture"] == base["architecture"]
    assert raw["export"]["parity"]["max_abs_diff"] <= 1e-4 and (out / f"{card.id}.pt").is_file()
    assert raw["metrics"]["dice"]["mean"] == pytest.approx(result.dice_after, abs=1e-4)
    assert raw["pairs_with"] == base["pairs_with"] and (out / f"{base['pairs_with']}.json").is_file()
    return card, raw, base


@pytest.mark.slow
def test_one_epoch_of_a_streaming_model_exports_a_streaming_card(tmp_path):
    """Fine-tuned streaming models go out through the streaming export path (parity on streamed frames)."""
    _, raw, base = _one_cine_epoch("cine-rtdnas-ga-n7-stream", tmp_path / "models")
    assert raw["streaming"] == base["streaming"]
    assert raw["retrained_from"] == base["retrained_from"] and raw["clip_length"] == 1
    assert "streamed" in raw["metrics"]["evaluated_on"]


@pytest.mark.slow
def test_one_epoch_of_a_per_frame_model_exports_a_card_the_app_runs(tmp_path):
    """The cine default (per frame) fine-tunes and goes out as the same one-frame network, with its QC partner."""
    from app.engine.models import load_model

    card, raw, base = _one_cine_epoch("cine-skeleton-hw", tmp_path / "models")
    assert raw["inputs"] == base["inputs"] and raw["clip_length"] == 1 and "streaming" not in raw
    assert "Per frame" in raw["notes"]
    x = np.zeros(card.input_shape, np.float32)
    probs, unc = create_session(card.onnx_path).run(["probs", "uncertainty"], {"image": x})
    assert probs.shape == tuple(raw["outputs"][0]["shape"])
    assert load_model(card) is not None  # the app loads and warms it


def test_cli_errors_are_one_line(capsys):
    from search.cli import main

    assert main(["finetune", "--model", "baseline-unet8-resnet18-seg-int8"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "INT8" in err[0]
