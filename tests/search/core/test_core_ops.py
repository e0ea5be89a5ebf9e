"""Every op x dimensionality on tiny tensors; op table, keys, mixed ops, Gumbel weighting."""

import pytest
import torch

from search.core.mixed import ArchWeighting, MixedOp, channel_shuffle
from search.core.ops import (
    FIXED_OPS,
    MSNAS_OPS,
    OP_NAMES,
    SEGQC_DOWN,
    SEGQC_NORMAL,
    SEGQC_UP,
    build_op,
    example_input,
    op_from_key,
    output_spatial_shape,
)

SPATIAL = {2: (6, 10), 3: (3, 6, 10)}


def _channels(name):
    if name in ("identity", "upsample", "pool2x", "max_pool", "avg_pool"):
        return 4, 4
    if name == "qc_head":
        return 4, 1
    return 4, 6


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("name", OP_NAMES)
def test_op_shape_finite_and_gradients(name, dims):
    c_in, c_out = _channels(name)
    op = build_op(name, dims, c_in, c_out)
    assert (op.op_name, op.dims, op.c_in, op.c_out) == (name, dims, c_in, c_out)
    x = torch.randn((2, c_in, *SPATIAL[dims]), generator=torch.Generator().manual_seed(0), requires_grad=True)
    y = op(x)
    outs = list(y) if isinstance(y, tuple) else [y]
    if name == "qc_head":
        assert outs[0].shape == (2,)
        assert ((outs[0] > 0) & (outs[0] < 1)).all()
    else:
        assert outs[0].shape == (2, c_out, *output_spatial_shape(name, SPATIAL[dims], op.stride))
    if name == "seg_head":
        assert outs[1].shape == (2, 1, *SPATIAL[dims])
        assert (outs[1] >= 0).all() and (outs[1] <= torch.log(torch.tensor(float(c_out))) + 1e-5).all()
    assert all(torch.isfinite(o).all() for o in outs)
    sum(o.square().sum() for o in outs).backward()
    for pname, p in op.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}/{pname} got no gradient"
    if name != "zero":
        assert x.grad is not None and x.grad.abs().sum() > 0


def test_down_and_up_ops_scale_h_w_only_in_3d():
    x = torch.randn(1, 4, 5, 8, 12)
    assert build_op("down_conv", 3, 4, 8)(x).shape == (1, 8, 5, 4, 6)
    assert build_op("up_sep_conv", 3, 4, 2)(x).shape == (1, 2, 5, 16, 24)
    assert build_op("zero", 3, 4, 4, stride=2)(x).shape == (1, 4, 5, 4, 6)


def test_op_sets_match_the_papers():
    assert set(SEGQC_DOWN) == {"down_conv", "down_dil_conv", "down_sep_conv", "down_max_pool", "down_avg_pool"}
    assert set(SEGQC_UP) == {"up_conv", "up_dil_conv", "up_sep_conv"}
    assert set(SEGQC_NORMAL) == {"conv", "dil_conv", "sep_conv", "identity", "zero"}
    assert MSNAS_OPS == ("conv", "dil_conv", "sep_conv", "max_pool", "identity", "zero")
    assert set(FIXED_OPS) <= set(OP_NAMES)


@pytest.mark.parametrize("name", ["down_sep_conv", "conv1x1", "up_dil_conv", "pool2x", "seg_head"])
def test_latency_key_round_trips_through_op_from_key(name):
    c_out = 4 if name == "pool2x" else 3
    op = build_op(name, 2, 4, c_out, stride=2 if name == "conv1x1" else None)
    key = op.latency_key((8, 6))
    assert key.canonical().startswith(f"{name}|2d|cin4|cout{c_out}|in8x6|")
    rebuilt = op_from_key(key)
    assert rebuilt.latency_key((8, 6)) == key
    out = rebuilt(example_input(key))
    assert (out[0] if isinstance(out, tuple) else out).shape[0] == 1


def test_build_op_rejects_bad_requests():
    with pytest.raises(ValueError, match="unknown op"):
        build_op("conv5x5", 2, 4, 4)
    with pytest.raises(ValueError, match="stride"):
        build_op("down_conv", 2, 4, 4, stride=1)
    with pytest.raises(ValueError, match="identity"):
        build_op("identity", 2, 4, 8)
    with pytest.raises(ValueError, match="3-axis"):
        build_op("conv", 3, 4, 4).latency_key((8, 8))


def test_channel_shuffle_is_a_permutation_interleaving_groups():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    y = channel_shuffle(x, 4).flatten().tolist()
    assert y == [0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]


def test_partial_channel_mixed_op_and_deployed_keys():
    mixed = MixedOp(MSNAS_OPS, 3, 8, 8, pc_k=4)
    assert all(op.c_in == 2 for op in mixed.ops)
    x = torch.randn(2, 8, 2, 4, 4)
    w = torch.softmax(torch.zeros(len(MSNAS_OPS), requires_grad=True), 0)
    assert mixed(x, w).shape == x.shape
    keys = mixed.deployed_keys((2, 4, 4))
    assert {(k.c_in, k.c_out) for k in keys} == {(8, 8)}
    with pytest.raises(ValueError, match="partial channels"):
        MixedOp(SEGQC_DOWN, 2, 8, 8, pc_k=4)
    with pytest.raises(ValueError, match="weights of shape"):
        mixed(x, w[:3])


def test_gumbel_weighting_is_seeded_and_normalised():
    logits = torch.tensor([0.5, -1.0, 2.0])
    a = ArchWeighting.gumbel(7)(logits)
    b = ArchWeighting.gumbel(7)(logits)
    c = ArchWeighting.gumbel(8)(logits)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.isclose(a.sum(), torch.tensor(1.0))
    hard = ArchWeighting.gumbel(7, hard=True)(logits.requires_grad_())
    assert sorted(hard.tolist()) == [0.0, 0.0, 1.0]
    hard.max().backward()
    assert logits.grad is not None
    with pytest.raises(ValueError, match="Generator"):
        ArchWeighting("gumbel")
