"""Every card in ``models/`` rebuilds its network: hash, schema, preprocessing contract, parity.

* hash and input shape (``app.cards``), the typed ``architecture`` and the ``preprocessing``
  contract (which must say what the card's ``input`` makes ``app.engine.preprocess`` do, and does);
* the rebuilt network has the card's parameter count and, with its weights (``<id>.pt``, or
  recovered from the BN-folded ONNX initializers), computes what the ONNX file computes (1e-4);
* re-exported through the project's export path it is the same graph as the shipped file: input and
  output names and shapes, the multiset of op types and of initializer shapes (INT8 cards: after the
  project's quantization of the rebuilt float graph).
"""

from __future__ import annotations

import collections
import json
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import search
from app.cards import load_card, sha256_of
from app.engine.preprocess import preprocess
from search.build import BUILDERS, build_from_card, card_architecture, recover_state_dict
from search.export.architecture import ARGS_TYPES, Architecture, ArchitectureError, from_legacy
from search.export.card_writer import CardContent, TensorSpec
from search.export.flops import count_params
from search.export.onnx_export import export_model, onnx_bytes
from search.export.preprocessing import PreprocessingError, check_card, contract_of_card
from search.export.quantize import quantize_model

MODELS = Path(__file__).resolve().parents[3] / "models"
CARDS = sorted(MODELS.glob("*.json"))
FLOAT = [p for p in CARDS if not json.loads(p.read_text()).get("quantization")]
INT8 = [p for p in CARDS if json.loads(p.read_text()).get("quantization")]
ATOL = 1e-4


def _raw(path: Path) -> dict:
    return json.loads(path.read_text())


def _feeds(raw: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs in each input's range: a z-scored clip / a [0, 1] image, softmax probs, [0, 1] uncertainty."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in raw["inputs"]:
        shape = spec["shape"]
        if spec["name"] == "probs":
            e = np.exp(rng.standard_normal(shape).astype(np.float32))
            feeds["probs"] = e / e.sum(axis=1, keepdims=True)
        elif raw["input"]["normalisation"].get("kind") == "zscore" and spec["name"] != "uncertainty":
            feeds[spec["name"]] = rng.standard_normal(shape).astype(np.float32)
        else:
            feeds[spec["name"]] = rng.random(shape, dtype=np.float32)
    return feeds


def _signature(model: onnx.ModelProto) -> dict:
    g = model.graph

    def dims(v):
        return [d.dim_value for d in v.type.tensor_type.shape.dim]

    return {"inputs": [(i.name, dims(i)) for i in g.input], "outputs": [(o.name, dims(o)) for o in g.output],
            "ops": collections.Counter(n.op_type for n in g.node),
            "initializers": collections.Counter((t.data_type, tuple(t.dims)) for t in g.initializer)}


@lru_cache(maxsize=None)
def _reexported(card_path: Path) -> bytes:
    """The rebuilt network (with its weights) through the project's export path (export + basic ORT)."""
    raw = _raw(card_path)
    module = build_from_card(card_path, weights=True)
    example = [torch.from_numpy(v) for v in _feeds(raw).values()]
    return onnx_bytes(module, example, [i["name"] for i in raw["inputs"]], [o["name"] for o in raw["outputs"]],
                      raw["id"])


def test_models_folder_has_cards() -> None:
    assert FLOAT and INT8, f"expected float and INT8 cards in {MODELS}"


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_card_hash_and_schema(card_path: Path) -> None:
    card = load_card(card_path).verify()  # hash + input shape
    arch = card_architecture(card)
    assert arch.kind in BUILDERS
    assert arch.genotype == card.raw["genotype"], "architecture.genotype must be the card's genotype"
    assert Architecture.from_json(arch.to_json()) == arch
    assert arch.to_json() == card.raw["architecture"], "the card's architecture is not in canonical form"
    check_card(card.raw, card_path.name)
    weights = (card.raw.get("export") or {}).get("weights")
    if weights:  # exports since the weights file: it is there and unchanged
        assert sha256_of(card_path.with_name(weights["file"])) == weights["sha256"]
    if card.raw.get("quantization"):
        float_card = _raw(card_path.with_name(f"{card.raw['quantization']['float_model']}.json"))
        assert float_card["architecture"] == card.raw["architecture"]


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_preprocess_does_what_the_contract_says(card_path: Path) -> None:
    raw = _raw(card_path)
    contract = raw["preprocessing"]
    size, channels = contract["size"], contract["channels"]
    qc = contract["image_source"] == "segmentation_input"
    if qc:  # the app feeds a QC model its segmentation model's prepared input (newest frame of a clip)
        for p in CARDS:
            seg = _raw(p)["preprocessing"]["size"]
            if _raw(p).get("pairs_with") == raw["id"]:
                assert (seg["height"], seg["width"]) == (size["height"], size["width"])
    rng = np.random.default_rng(1)
    h, w = size["height"] + 37, size["width"] + 21  # a different grid: the frame is resized
    if "frames" in size:
        x = rng.integers(0, 200, (size["frames"], h, w)).astype(np.uint8)
        x[::2] += 50  # frames of different brightness: per-clip, not per-frame, statistics
        expected_shape = (1, channels, size["frames"], size["height"], size["width"])
    else:
        x = rng.integers(0, 256, (h, w, 3) if channels == 3 else (h, w)).astype(np.uint8)
        expected_shape = (1, channels, size["height"], size["width"])
    out = preprocess(x, raw)
    assert out.shape == expected_shape and out.dtype == np.float32
    norm = contract["normalisation"]
    if norm["kind"] == "zscore":
        clip = size.get("frames", 1) > 1  # a streaming card's input is one frame (1, 1, 1, H, W)
        assert norm["over"] == ("segmentation_input" if qc else "clip" if clip else "frame")
        assert abs(float(out.mean())) < 1e-3 and abs(float(out.std()) - 1.0) < 1e-3
        if clip:
            assert abs(float(out[0, 0, 0].mean()) - float(out[0, 0, 1].mean())) > 0.1
    else:
        assert norm["kind"] == "scale"
        raw_max = float(out.max() - norm["offset"]) / norm["scale"]
        assert 200 <= raw_max <= 255.0 + 1e-3
    assert contract["label_map"] == raw["classes"]


@pytest.mark.parametrize("card_path", FLOAT, ids=lambda p: p.stem)
def test_rebuilt_network_computes_what_the_onnx_file_computes(card_path: Path) -> None:
    raw = _raw(card_path)
    module = build_from_card(card_path, weights=True)
    assert count_params(module) == raw["metrics"]["params"]
    session = ort.InferenceSession(str(card_path.with_suffix(".onnx")), providers=["CPUExecutionProvider"])
    feeds = _feeds(raw, seed=3)
    names = [o["name"] for o in raw["outputs"]]
    got = session.run(names, feeds)
    with torch.no_grad():
        ref = module(*[torch.from_numpy(feeds[i["name"]]) for i in raw["inputs"]])
    ref = ref if isinstance(ref, tuple) else (ref,)
    assert len(ref) == len(got)
    for name, r, g in zip(names, ref, got):
        assert r.shape == g.shape, name
        assert float(np.abs(r.numpy() - g).max()) <= ATOL, f"{raw['id']}: output {name!r} differs from ONNX"


@pytest.mark.parametrize("card_path", INT8, ids=lambda p: p.stem)
def test_int8_card_rebuilds_its_float_network(card_path: Path) -> None:
    float_path = card_path.with_name(f"{_raw(card_path)['quantization']['float_model']}.json")
    ours, theirs = build_from_card(card_path, weights=True), build_from_card(float_path, weights=True)
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key


@pytest.mark.slow
@pytest.mark.parametrize("card_path", FLOAT, ids=lambda p: p.stem)
def test_rebuilt_network_exports_the_shipped_graph(card_path: Path) -> None:
    shipped = onnx.load(str(card_path.with_suffix(".onnx")))
    assert _signature(onnx.load_from_string(_reexported(card_path))) == _signature(shipped)


@pytest.mark.slow
@pytest.mark.parametrize("card_path", INT8, ids=lambda p: p.stem)
def test_rebuilt_network_quantizes_to_the_shipped_int8_graph(card_path: Path) -> None:
    raw = _raw(card_path)
    float_path = card_path.with_name(f"{raw['quantization']['float_model']}.json")
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        fp32.write_bytes(_reexported(float_path))
        quantize_model(fp32, int8, [_feeds(raw)])
        ours = _signature(onnx.load(str(int8)))
    assert ours == _signature(onnx.load(str(card_path.with_suffix(".onnx"))))


# ---- the schema, the writer and the weights file ---------------------------------------------------------


def test_unknown_kind_and_bad_args_are_clear_errors() -> None:
    with pytest.raises(ArchitectureError, match="unknown architecture kind 'resnet50'; known: "):
        Architecture.from_json({"kind": "resnet50", "args": {}})
    unet = {"dims": 2, "in_channels": 1, "n_classes": 2, "depth": 2, "initial_filters": 4}
    with pytest.raises(ArchitectureError, match="unknown argument.*width"):
        Architecture.from_json({"kind": "unet", "args": {**unet, "width": 3}})
    with pytest.raises(ArchitectureError, match="missing argument.*depth"):
        Architecture.from_json({"kind": "unet", "args": {k: v for k, v in unet.items() if k != "depth"}})
    with pytest.raises(ArchitectureError, match="positive integer"):
        Architecture.from_json({"kind": "unet", "args": {**unet, "depth": "3"}})
    with pytest.raises(ArchitectureError, match="needs its 'multiscale' genotype"):
        Architecture.from_json({"kind": "multiscale", "args": {"in_channels": 1, "num_classes": 4, "base_channels": 8,
                                                               "n_layers": 8, "n_scales": 4, "n_nodes": 3}})
    with pytest.raises(ArchitectureError, match="untyped architecture"):
        Architecture.from_json({"row": "GA (N_l=7)", "channels_scale0": 8})
    with pytest.raises(ArchitectureError, match="unknown interface"):
        Architecture.from_json({"kind": "unet", "args": unet, "interface": "logits"})


def test_every_kind_has_a_builder() -> None:
    assert set(ARGS_TYPES) == set(BUILDERS)


def test_a_card_that_disagrees_with_its_contract_is_caught() -> None:
    raw = _raw(FLOAT[0])
    raw["input"]["shape"] = [*raw["input"]["shape"][:-1], raw["input"]["shape"][-1] + 16]
    with pytest.raises(PreprocessingError, match="size"):
        check_card(raw, "card")
    assert contract_of_card(raw)["size"]["width"] == raw["input"]["shape"][-1]


def test_search_import_stays_cheap_and_exports_build_from_card() -> None:
    import subprocess
    import sys

    code = "import sys, search; assert callable(search.build_from_card); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_export_writes_weights_and_a_typed_card_that_rebuild_the_network(tmp_path: Path) -> None:
    from search.baselines.unet import UNet, UNetConfig
    from search.train.seg_outputs import SegmentationWithUncertainty

    torch.manual_seed(0)
    cfg = UNetConfig(dims=2, in_channels=1, n_classes=3, depth=2, initial_filters=4)
    net = SegmentationWithUncertainty(UNet(cfg)).eval()
    for m in net.modules():  # trained-looking BatchNorm statistics, so folding matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    content = CardContent(
        model_id="tiny", modality="cine", role="seg", method="baseline-unet2d",
        inputs=[TensorSpec("image", (1, 1, 16, 16))],
        outputs=[TensorSpec("probs", (1, 3, 16, 16)), TensorSpec("uncertainty", (1, 1, 16, 16))],
        classes={0: "background", 1: "a", 2: "b"}, normalisation={"kind": "zscore"}, layout="NCHW",
        data={"source": "test"}, clip_length=1, architecture={"unet": cfg.__dict__})
    feeds = [{"image": np.random.default_rng(0).standard_normal((1, 1, 16, 16)).astype(np.float32)}]
    card = export_model(net, content, tmp_path, feeds, latency_repeats=2)
    assert (tmp_path / "tiny.pt").is_file() and card.raw["export"]["weights"]["file"] == "tiny.pt"
    assert card.raw["architecture"]["kind"] == "unet" and card.raw["architecture"]["interface"] == "probs_uncertainty"
    check_card(card.raw, "tiny")
    rebuilt = search.build_from_card(card, weights=True)
    for k, v in net.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k], v), k
    # the same network recovered from the ONNX file alone (BN folded) computes the same outputs
    recovered = build_from_card(card)
    recovered.load_state_dict(recover_state_dict(recovered, card.onnx_path))
    x = torch.from_numpy(feeds[0]["image"])
    with torch.no_grad():
        for a, b in zip(net(x), recovered(x)):
            assert float((a - b).abs().max()) <= ATOL


def test_legacy_architecture_of_a_multiscale_row() -> None:
    rows = [_raw(p) for p in CARDS if _raw(p)["architecture"]["kind"] == "multiscale"]
    if not rows:
        pytest.skip("no multiscale card in models/")
    raw = rows[0]
    arch = from_legacy({"row": "GA (N_l=7)", "channels_scale0": 8, "n_paths": 7, "layers": 10, "scales": 4},
                       genotype=raw["genotype"], input_shape=raw["input"]["shape"], n_classes=4,
                       output_names=["probs"])
    assert arch.kind == "multiscale" and arch.interface == "probs" and arch.args.base_channels == 8
    assert arch.about == {"row": "GA (N_l=7)", "n_paths": 7}


def test_a_nasunet_card_carries_its_stem_only_when_it_is_not_the_papers() -> None:
    from search.build import build_architecture
    from search.core.supernets.nasunet import unet_like_genotype

    genotype = {"kind": "nasunet", **unet_like_genotype(keep_prev=True).to_dict()}
    args = {"in_channels": 3, "num_classes": 2, "init_filters": 4, "depth": 2, "n_nodes": 2, "dims": 2}
    one = Architecture.from_json({"kind": "nasunet", "args": args, "genotype": genotype})
    assert "stem_convs" not in one.to_json()["args"]  # the cards shipped before the option stay canonical
    two = Architecture.from_json({"kind": "nasunet", "args": {**args, "stem_convs": 2}, "genotype": genotype})
    assert two.to_json()["args"]["stem_convs"] == 2 and Architecture.from_json(two.to_json()) == two
    stems = [build_architecture(a).net.stem for a in (one, two)]
    assert not isinstance(stems[0], nn.Sequential) and [m.op_name for m in stems[1]] == ["stem", "conv"]
