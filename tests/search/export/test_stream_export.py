"""Causal time and streaming inference (issue 17): a causal clip network fed frame by frame from the
initial state gives its clip output, from the first frame on, in PyTorch and through onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from search.build import build_from_card, card_architecture
from search.core.ops import build_op, make_causal
from search.export.architecture import Architecture, ArchitectureError, interface_for, parse_args
from search.export.streaming import StreamingNetwork, card_field, stepped_feeds, streaming_onnx
from tests.app.engine.stream_models import SIZE, randomise_batchnorm, tiny_clip_net, write_stream_model

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CARD = ROOT / "models" / "cine-rtdnas-ga-n7.json"
ATOL = 1e-4
TIME_OPS = ["stem", "conv", "dil_conv", "sep_conv", "max_pool", "avg_pool",
            "down_conv", "down_dil_conv", "down_sep_conv", "down_max_pool", "down_avg_pool"]


def _clip(t: int = 7, h: int = SIZE[0], w: int = SIZE[1], c: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((1, c, t, h, w)).astype(np.float32))


def _op(name: str, causal: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    c_in = 1 if name == "stem" else 3
    c_out = 3 if name.endswith("pool") else 5  # pools keep C (no projection): the pool alone is compared
    op = randomise_batchnorm(build_op(name, 3, c_in, c_out)).eval()
    return make_causal(op, causal)


@pytest.mark.parametrize("name", TIME_OPS)
def test_causal_op_is_the_symmetric_op_delayed(name: str) -> None:
    """Causal = the symmetric op's output shifted by half its time extent: frame t of the causal op sees
    exactly the window the symmetric op centres on t - extent // 2 (zeros / -inf / uncounted before 0)."""
    sym, causal = _op(name, causal=False), _op(name)
    x = _clip(c=sym.c_in)
    with torch.no_grad():
        a, b = sym(x), causal(x)
    shift = causal.time_context // 2
    assert causal.time_context in (2, 4) and a.shape == b.shape
    assert float((b[:, :, shift:] - a[:, :, : a.shape[2] - shift]).abs().max()) < 1e-5
    x2 = x.clone()
    x2[:, :, 4] += 3.0
    with torch.no_grad():
        b2 = causal(x2)
    assert float((b2[:, :, :4] - b[:, :, :4]).abs().max()) == 0.0, "a causal op must not see the future"


@pytest.mark.parametrize("name", TIME_OPS)
def test_streaming_op_equals_the_causal_op_from_the_first_frame(name: str) -> None:
    op = _op(name)
    x = _clip(c=op.c_in)
    with torch.no_grad():
        ref = op(x)
    got = StreamingNetwork(op).run_clip(x)
    assert float((ref - got).abs().max()) < ATOL


def test_causal_switch_is_reversible_and_off_by_default() -> None:
    x = _clip(c=3)
    for name in ("conv", "dil_conv", "sep_conv", "max_pool", "avg_pool"):
        plain = _op(name, causal=False)
        assert not plain.causal
        with torch.no_grad():
            before = plain(x)
            make_causal(plain)
            make_causal(plain, False)
            after = plain(x)
        assert torch.equal(before, after), name
    assert build_op("conv1x1", 3, 3, 4).time_context == 0 and build_op("conv", 2, 3, 4).time_context == 0
    with pytest.raises(ValueError, match="no causal"):
        make_causal(build_op("up_conv", 3, 4, 4))


def test_tiny_network_streams_exactly_in_pytorch_and_onnxruntime() -> None:
    net = tiny_clip_net()
    stream = StreamingNetwork(net).eval()
    x = _clip(t=7)
    with torch.no_grad():
        ref = net(x)
    assert float((stream.run_clip(x) - ref).abs().max()) < ATOL
    frame_shape = (1, 1, 1, *SIZE)
    specs = stream.state_specs(frame_shape)
    assert {s.op_name for s in specs} >= {"stem", "conv", "dil_conv", "sep_conv", "max_pool", "avg_pool"}
    assert {s.init for s in specs} == {0.0, float("-inf")}
    assert max(s.shape[2] for s in specs) == 4  # dil_conv: (3 - 1) x 2 past frames
    session = ort.InferenceSession(streaming_onnx(stream, frame_shape), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["frame", *(s.input for s in specs)]
    assert [o.name for o in session.get_outputs()] == ["probs", *(s.output for s in specs)]
    state = {s.input: s.initial() for s in specs}
    outs = []
    for t in range(x.shape[2]):
        probs, *new = session.run(None, {"frame": x[:, :, t:t + 1].numpy(), **state})
        outs.append(probs)
        state = {s.input: v for s, v in zip(specs, new)}
        # from frame 0 on: the zero (-inf) initial state is the causal padding
        assert float(np.abs(probs - ref[:, :, t:t + 1].numpy()).max()) < ATOL, f"frame {t}"
    assert np.concatenate(outs, axis=2).shape == tuple(ref.shape)


def test_default_genotype_streams_exactly() -> None:
    """The shipped default's genotype (stem, sep_conv, conv, max_pool over 4 scales), causal, narrow."""
    card = json.loads(DEFAULT_CARD.read_text())
    args = {**card["architecture"]["args"], "causal": True, "base_channels": 4}
    raw = {**card, "architecture": {**card["architecture"], "args": args}}
    net = randomise_batchnorm(build_from_card(raw)).eval()
    stream = StreamingNetwork(net)
    x = _clip(t=6, h=16, w=24)
    with torch.no_grad():
        ref = net(x)
    assert float((stream.run_clip(x) - ref).abs().max()) < ATOL
    session = ort.InferenceSession(streaming_onnx(stream, (1, 1, 1, 16, 24)), providers=["CPUExecutionProvider"])
    specs = stream.state_specs((1, 1, 1, 16, 24))
    state = {s.input: s.initial() for s in specs}
    for t in range(x.shape[2]):
        probs, *new = session.run(None, {"frame": x[:, :, t:t + 1].numpy(), **state})
        state = {s.input: v for s, v in zip(specs, new)}
        assert float(np.abs(probs - ref[:, :, t:t + 1].numpy()).max()) < ATOL, f"frame {t}"


def test_streaming_refuses_what_it_cannot_stream() -> None:
    with pytest.raises(ValueError, match="not a causal network"):
        StreamingNetwork(tiny_clip_net(causal=False))
    with pytest.raises(ValueError, match="nothing to stream"):
        StreamingNetwork(build_op("conv1x1", 3, 2, 2))
    stream = StreamingNetwork(tiny_clip_net())
    with pytest.raises(ValueError, match=r"\(N, C, 1, H, W\)"):
        stream.state_specs((1, 1, 4, *SIZE))
    with pytest.raises(ValueError, match="state tensors"):
        stream(torch.zeros(1, 1, 1, *SIZE))


def test_stepped_feeds_have_finite_states() -> None:
    stream = StreamingNetwork(tiny_clip_net())
    feeds = stepped_feeds(stream, _clip(t=6).numpy())
    assert len(feeds) == 2  # the first 4 frames (the dil_conv's state) are skipped
    assert all(np.isfinite(v).all() for f in feeds for v in f.values())
    field = card_field(stream.state_specs((1, 1, 1, *SIZE)))
    assert json.loads(json.dumps(field, allow_nan=False)) == field  # plain JSON: "-inf" as a string
    assert {s["init"] for s in field["states"]} == {0.0, "-inf"}


def test_causal_flag_in_the_card_architecture() -> None:
    args = dict(card_architecture(DEFAULT_CARD).to_json()["args"])
    assert "causal" not in args  # omitted when false: the shipped cards stay canonical
    arch = Architecture(parse_args("multiscale", {**args, "causal": True}), json.loads(DEFAULT_CARD.read_text())["genotype"],
                        "probs")
    assert arch.to_json()["args"]["causal"] is True and Architecture.from_json(arch.to_json()) == arch
    with pytest.raises(ArchitectureError, match="true or false"):
        parse_args("multiscale", {**args, "causal": 1})
    net = build_from_card({"id": "x", "architecture": arch.to_json()})
    assert net.net.config.causal and all(op.causal for op in StreamingNetwork(net)._ops)
    assert interface_for(["probs", "state_out_0", "state_out_1"]) == "streaming_probs"
    assert interface_for(["probs"]) == "probs"


def test_streaming_card_through_the_export_path_rebuilds(tmp_path: Path) -> None:
    from app.cards import load_card
    from search.export.preprocessing import check_card

    card_path, net = write_stream_model(tmp_path)
    card = load_card(card_path).verify()
    spec = card.streaming
    assert spec is not None and spec.frame_input == card.input_name == "frame"
    assert card.input_shape == (1, 1, 1, *SIZE) and card.clip_length == 1
    assert [s.input for s in spec.states] == [i["name"] for i in card.raw["inputs"][1:]]
    assert card.raw["architecture"]["interface"] == "streaming_probs"
    assert card.raw["preprocessing"]["normalisation"]["over"] == "frame"
    check_card(card.raw, card_path.name)
    rebuilt = build_from_card(card_path, weights=True)
    assert isinstance(rebuilt, StreamingNetwork)
    rng = np.random.default_rng(3)
    feeds = {i["name"]: rng.standard_normal(i["shape"]).astype(np.float32) for i in card.raw["inputs"]}
    session = ort.InferenceSession(str(card.onnx_path), providers=["CPUExecutionProvider"])
    names = [o["name"] for o in card.raw["outputs"]]
    with torch.no_grad():
        ref = rebuilt(*[torch.from_numpy(feeds[i["name"]]) for i in card.raw["inputs"]])
    for name, r, g in zip(names, ref, session.run(names, feeds)):
        assert float(np.abs(r.numpy() - g).max()) < ATOL, name


def test_a_clip_shorter_than_the_longest_state_is_looped_for_the_parity_inputs(tmp_path: Path) -> None:
    from app.cards import load_card
    from tests.app.engine.stream_models import write_stream_model

    card_path, _ = write_stream_model(tmp_path, frames=2)  # a smoke-sized clip: fewer frames than the states hold
    card = load_card(card_path).verify()
    assert card.streaming is not None and max(s.shape[2] for s in card.streaming.states) >= 2
