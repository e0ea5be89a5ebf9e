"""U-net skeletons (issue 16): spec strings, U-net(8) as a skeleton, separable and half-resolution levels, ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from search.baselines.unet import UNet, UNetConfig
from search.core.derived.unet_skeleton import Level, SkeletonUNet, UNetSkeleton, unet_spec


@pytest.mark.parametrize("spec", ["8c2-16c2-32c2-64c2-128c2", "/2:16c2-32c2-64s2-128s2", "8s1", "/2:4c3-12s1-24c2",
                                  "/2:16c2-32c2-64c2-128c2+r8", "/2:16c2-32c2-64c2-128c2+ps"])
def test_a_spec_reads_back_as_itself(spec: str) -> None:
    assert UNetSkeleton.parse(spec).spec == spec


def test_unet_spec_and_what_the_input_size_must_divide_by() -> None:
    assert unet_spec(8) == "8c2-16c2-32c2-64c2-128c2"
    assert unet_spec(16, depth=3) == "16c2-32c2-64c2"
    plain = UNetSkeleton.parse(unet_spec(8))
    assert plain.levels[0] == Level(8, "c", 2) and plain.input_stride == 1
    assert plain.divisor == 16  # 5 levels: 4 poolings
    half = UNetSkeleton.parse("/2:16c2-32c2-64s2-128s2")
    assert half.input_stride == 2 and half.levels[2] == Level(64, "s", 2)
    assert half.divisor == 16  # the stride-2 entry, then 3 poolings
    assert UNetSkeleton.parse("8c2").divisor == 1


@pytest.mark.parametrize("spec", ["8x2-16c2", "8c0-16c2", "0c2-16c2", "/3:8c2-16c2", "/2 8c2-16c2", "/28c2", "",
                                  "8c2-16c2+r8", "/2:8c2-16c2+8", "/2:8c2-16c2+rx", "/2:8c2-16c2+r",
                                  "8c2-16c2+ps", "/2:8c2-16c2+r8+ps", "/2:8c2-16c2+pz"])
def test_a_bad_spec_is_a_value_error_that_quotes_it(spec: str) -> None:
    """Unknown op letter, no conv, width 0, stride 3, no ':' after the stride, nothing at all, a refinement
    behind a full-resolution U, a refinement without 'r' or channels, a sub-pixel head behind a full-resolution
    U or beside a refinement, an unknown tail."""
    with pytest.raises(ValueError) as refused:
        UNetSkeleton.parse(spec)
    assert repr(spec) in str(refused.value)


def test_the_plain_skeleton_is_the_baseline_unet_weight_for_weight() -> None:
    """Same seed, same parameters created in the same order: the same network, output for output."""
    torch.manual_seed(0)
    skeleton = SkeletonUNet(UNetSkeleton.parse(unet_spec(8))).eval()
    torch.manual_seed(0)
    unet = UNet(UNetConfig(initial_filters=8)).eval()
    assert sum(p.numel() for p in skeleton.parameters()) == sum(p.numel() for p in unet.parameters())
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(skeleton(x), unet(x), rtol=0, atol=1e-6)


def test_separable_levels_use_depthwise_convs_and_keep_the_output_shape() -> None:
    net = SkeletonUNet(UNetSkeleton.parse("8c2-16s2-32s1"), n_classes=3).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, 3, 32, 32)
    depthwise = [m for m in net.encoders[1].modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels == m.out_channels for m in depthwise)
    assert not [m for m in net.encoders[0].modules() if isinstance(m, nn.Conv2d) and m.groups > 1]  # "c": dense


def test_a_half_resolution_skeleton_runs_its_levels_at_half_size_and_returns_full_size_logits() -> None:
    net = SkeletonUNet(UNetSkeleton.parse("/2:8c2-16c1-32s1"), n_classes=4).eval()
    seen = []

    def record(module, args, out) -> None:  # a hook that returns something replaces the output
        seen.append(tuple(out.shape))

    net.encoders[0].register_forward_hook(record)
    with torch.no_grad():
        assert net(torch.rand(1, 3, 32, 32)).shape == (1, 4, 32, 32)
    assert seen == [(1, 8, 16, 16)]


def test_a_half_resolution_separable_skeleton_exports_to_onnx_and_runs_as_in_torch() -> None:
    import onnxruntime as ort

    from search.latency.onnx_bytes import export_onnx_bytes

    torch.manual_seed(0)
    net = SkeletonUNet(UNetSkeleton.parse("/2:8c2-16s2-32s1")).eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    model = export_onnx_bytes(net, x)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input0": x.numpy()})
    with torch.no_grad():
        ref = net(x).numpy()
    assert got.shape == ref.shape == (1, 2, 32, 32)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_a_refinement_fuses_full_resolution_detail_with_the_half_resolution_u() -> None:
    """``+r8``: the U runs at half size; the head reads 8 channels at full size, and the only new parameters are
    the detail conv of the input and the fuse conv."""
    plain = SkeletonUNet(UNetSkeleton.parse("/2:8c2-16c2"), n_classes=3)
    net = SkeletonUNet(UNetSkeleton.parse("/2:8c2-16c2+r8"), n_classes=3).eval()
    head_in = []
    net.head.register_forward_hook(lambda m, args, out: head_in.append(tuple(args[0].shape)))
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = net(x)
    assert y.shape == (1, 3, 32, 32) and head_in == [(1, 8, 32, 32)]
    extra = sum(p.numel() for p in net.parameters()) - sum(p.numel() for p in plain.parameters())
    # detail 3->8 conv + BN, fuse (8+8)->8 conv + BN; the head reads 8 channels either way
    assert extra == (3 * 9 * 8 + 2 * 8) + (16 * 9 * 8 + 2 * 8)


@pytest.mark.parametrize(("spec", "named", "seed"), [("/2:8c2-16c2+r4", "refinement", 4),
                                                      ("/2:8c2-16c2+ps", "sub-pixel", 6)])
def test_a_refined_or_sub_pixel_skeleton_exports_to_onnx_and_is_outside_the_searched_space(spec: str, named: str,
                                                                                             seed: int) -> None:
    """Both heads run in onnxruntime as in torch; the latency table has no keys for them (a ValueError naming
    the head) and the searched space does not contain them, though it contains the same U without them."""
    import onnxruntime as ort

    from search.core.supernets.unet_skeleton import SkeletonChoices, skeleton_keys
    from search.latency.onnx_bytes import export_onnx_bytes

    torch.manual_seed(0)
    skeleton = UNetSkeleton.parse(spec)
    net = SkeletonUNet(skeleton).eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    session = ort.InferenceSession(export_onnx_bytes(net, x), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input0": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, net(x).numpy(), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match=named):
        skeleton_keys(skeleton, 32)
    space = SkeletonChoices(((8,), (16,)), ("c2",), input_stride=2)
    assert space.contains(UNetSkeleton.parse("/2:8c2-16c2")) and not space.contains(skeleton)


def test_a_sub_pixel_head_draws_each_full_resolution_logit_from_its_own_half_resolution_channel() -> None:
    """``+ps``: the head predicts 4 logits per class at half size and the pixel shuffle lays them out as the
    2x2 block each half-size pixel covers: output pixel (2i+a, 2j+b) of class c is head channel 4c + 2a + b at
    (i, j). The only new parameters are the head's 3 extra outputs per class."""
    plain = SkeletonUNet(UNetSkeleton.parse("/2:8c2-16c2"), n_classes=3)
    net = SkeletonUNet(UNetSkeleton.parse("/2:8c2-16c2+ps"), n_classes=3).eval()
    head_out = []
    net.head.register_forward_hook(lambda m, args, out: head_out.append(out))
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        y = net(x)
    (h,) = head_out
    assert h.shape == (1, 12, 16, 16) and y.shape == (1, 3, 32, 32)
    for c, a, b in ((0, 0, 0), (1, 0, 1), (2, 1, 0), (2, 1, 1)):
        torch.testing.assert_close(y[0, c, a::2, b::2], h[0, 4 * c + 2 * a + b], rtol=0, atol=0)
    extra = sum(p.numel() for p in net.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 3 * 3 * (8 + 1)  # 3 classes x 3 more outputs, each 8 weights + a bias
