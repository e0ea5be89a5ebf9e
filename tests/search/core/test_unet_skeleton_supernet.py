"""The U-net skeleton supernet: choices, wiring, GDAS single path, width masks, decode, latency keys and expectation."""

from __future__ import annotations

import random
import re

import pytest
import torch

from search.core.convergence import ArchTrace, group_entropies, softmax_groups
from search.core.derived.unet_skeleton import SkeletonUNet, UNetSkeleton
from search.core.keys import OpKey
from search.core.mixed import ArchWeighting
from search.core.supernets.unet_skeleton import (
    MaskedBlock,
    SkeletonChoices,
    SkeletonMixedBlock,
    SkeletonSupernet,
    block_token,
    build_block_for_key,
    derived_latency,
    skeleton_keys,
)

WIDTHS = ((4, 8), (4, 8, 16), (8, 16))
SIZE = 32


def choices(stride: int = 1, **kw) -> SkeletonChoices:
    return SkeletonChoices(WIDTHS, input_stride=stride, **kw)


def set_arch(net: SkeletonSupernet, skeleton: UNetSkeleton, strength: float = 1e4) -> None:
    """Logits that select ``skeleton`` (softmax exactly one-hot at the default strength)."""
    ch = net.choices
    with torch.no_grad():
        for name, p in net.skeleton_arch.items():
            k = int(re.sub(r"\D", "", name))
            level = skeleton.levels[k]
            hot = ch.widths[k].index(level.width) if name.startswith("width") else ch.blocks.index(block_token(level))
            p.zero_()
            p[hot] = strength


def table_of(net: SkeletonSupernet, size: int = SIZE) -> dict[str, float]:
    """A synthetic table: ms grows with channels and pixels (+ a distinct, deterministic offset per key)."""
    out = {}
    for i, key in enumerate(net.latency_keys(size)):
        pixels = key.shape[0] * key.shape[1]
        out[key.canonical()] = 1e-5 * (key.c_in + 1) * (key.c_out + 1) * pixels + 0.001 * (i % 7) + 0.01
    return out


# ------------------------------------------------------------------------------------ choices
@pytest.mark.parametrize("kw", [
    {"widths": ()}, {"widths": ((4, 8), ())}, {"widths": ((8, 4),)}, {"widths": ((4, 4),)}, {"widths": ((0, 4),)},
    {"widths": ((4,),), "blocks": ()}, {"widths": ((4,),), "blocks": ("x2",)}, {"widths": ((4,),), "blocks": ("c0",)},
    {"widths": ((4,),), "blocks": ("c",)}, {"widths": ((4,),), "blocks": ("c2", "c2")},
    {"widths": ((4,),), "input_stride": 3}, {"widths": ((4,),), "in_channels": 0}, {"widths": ((4,),), "n_classes": 0},
])
def test_bad_choices_are_value_errors(kw) -> None:
    with pytest.raises(ValueError):
        SkeletonChoices(**kw)


def test_choices_normalise_lists_and_know_their_space() -> None:
    ch = SkeletonChoices([[4, 8], [16]], blocks=["c2", "s1"], input_stride=2)
    assert ch.widths == ((4, 8), (16,)) and ch.blocks == ("c2", "s1")
    assert ch.max_widths == (8, 16) and ch.depth == 2 and ch.divisor == 4
    assert ch.contains(UNetSkeleton.parse("/2:4s1-16c2"))
    assert not ch.contains(UNetSkeleton.parse("4s1-16c2"))  # stride
    assert not ch.contains(UNetSkeleton.parse("/2:4c1-16c2"))  # block
    assert not ch.contains(UNetSkeleton.parse("/2:4c2-8c2"))  # width
    rng = random.Random(0)
    assert all(ch.contains(ch.sample(rng)) for _ in range(10))


# ---------------------------------------------------------------------------------- forward
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("gdas", [False, True])
def test_forward_gives_logits_at_the_input_size(stride: int, gdas: bool) -> None:
    net = SkeletonSupernet(choices(stride))
    weighting = ArchWeighting.gdas(torch.Generator().manual_seed(1), tau=1.0) if gdas else ArchWeighting()
    assert net(torch.randn(2, 3, SIZE, SIZE), weighting).shape == (2, 2, SIZE, SIZE)
    with pytest.raises(ValueError, match="divisible"):
        net(torch.randn(1, 3, 30, 30))


def test_parameters_split_into_arch_and_weights() -> None:
    net = SkeletonSupernet(choices())
    names = [n for n, _ in net.named_arch_parameters()]
    assert names == ["skeleton_arch.enc0", "skeleton_arch.dec0", "skeleton_arch.width0",
                     "skeleton_arch.enc1", "skeleton_arch.dec1", "skeleton_arch.width1",
                     "skeleton_arch.enc2", "skeleton_arch.width2"]
    assert len(net.arch_parameters()) + len(net.weight_parameters()) == len(list(net.parameters()))
    assert all(float(p.detach().abs().max()) < 0.01 for p in net.arch_parameters())  # small normal init
    again = SkeletonSupernet(choices())
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), again.parameters()))  # seeded
    before = torch.random.get_rng_state()
    SkeletonSupernet(choices(), seed=3)
    assert torch.equal(before, torch.random.get_rng_state())  # the global RNG is left alone


def _count_candidate_calls(net: SkeletonSupernet) -> dict[str, int]:
    calls = {name: 0 for name, m in net.named_modules() if isinstance(m, SkeletonMixedBlock)}
    for name, mixed in net.named_modules():
        if isinstance(mixed, SkeletonMixedBlock):
            for cand in mixed.candidates:
                cand.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    return calls


def test_gdas_runs_one_candidate_per_block_and_softmax_runs_all() -> None:
    net = SkeletonSupernet(choices())
    calls = _count_candidate_calls(net)
    net(torch.randn(1, 3, SIZE, SIZE), ArchWeighting.gdas(torch.Generator().manual_seed(0), tau=1.0))
    assert len(calls) == 5 and set(calls.values()) == {1}
    calls.update(dict.fromkeys(calls, 0))
    net(torch.randn(1, 3, SIZE, SIZE))
    assert set(calls.values()) == {len(net.choices.blocks)}


def test_gradients_reach_every_group_soft_and_the_sampled_entries_under_gdas() -> None:
    net = SkeletonSupernet(choices(2))
    x = torch.randn(2, 3, SIZE, SIZE)
    net(x).square().mean().backward()
    for name, p in net.named_arch_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    net.zero_grad(set_to_none=True)
    weighting = ArchWeighting.gdas(torch.Generator().manual_seed(2), tau=1.0)
    weights = net.arch_weights(weighting)
    net(x, weighting, weights=weights).square().mean().backward()
    for name, p in net.skeleton_arch.items():
        sampled = int(weights[name].detach().argmax())
        assert float(p.grad[sampled].abs()) > 0, name


# ------------------------------------------------------------------------------------ masks
@pytest.mark.parametrize("stride", [1, 2])
def test_channels_beyond_the_chosen_width_are_zero_after_every_block(stride: int) -> None:
    net = SkeletonSupernet(choices(stride))
    skeleton = UNetSkeleton.parse(("/2:" if stride == 2 else "") + "4s2-8c1-8s1")
    set_arch(net, skeleton)
    seen: list[tuple[int, torch.Tensor]] = []
    width_of = {}
    for k, enc in enumerate(net.encoders):
        width_of[id(enc)] = skeleton.levels[k].width
    for j, k in enumerate(reversed(range(2))):
        width_of[id(net.decoders[j])] = skeleton.levels[k].width
    for mixed in [*net.encoders, *net.decoders]:
        mixed.register_forward_hook(lambda m, _, out: seen.append((width_of[id(m)], out.detach())))
    net(torch.randn(2, 3, SIZE, SIZE))
    assert len(seen) == 5
    for width, out in seen:
        assert out[:, width:].abs().max() == 0 and out[:, :width].abs().max() > 0


@pytest.mark.parametrize("spec", ["4s2-16c1-8s1", "/2:8c2-4s1-16s2"])
def test_one_hot_supernet_is_its_derived_network_with_sliced_weights(spec: str) -> None:
    """Under one-hot weights the masks make the supernet exactly ``subnet()`` (random BN shifts and statistics,
    so a channel that the masks failed to zero would show)."""
    skeleton = UNetSkeleton.parse(spec)
    net = SkeletonSupernet(choices(skeleton.input_stride))
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                for t in (m.weight, m.bias, m.running_mean):
                    t.copy_(torch.randn(t.shape, generator=gen))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    set_arch(net, skeleton)
    x = torch.randn(2, 3, SIZE, SIZE, generator=gen)
    for train in (False, True):
        net.train(train)
        derived = net.subnet()
        assert isinstance(derived, SkeletonUNet) and derived.skeleton == skeleton and derived.training == train
        torch.testing.assert_close(net(x), derived(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="not a network"):
        net.subnet(UNetSkeleton.parse("32c2-16c1-8s1"))


# ----------------------------------------------------------------------------------- decode
def test_decode_reads_the_hand_set_logits_and_sums_encoder_and_decoder() -> None:
    net = SkeletonSupernet(choices(2))
    initial = net.decode()
    assert net.choices.contains(initial)
    assert ArchTrace(net).initial_argmax(net.decode) == initial
    skeleton = UNetSkeleton.parse("/2:8c1-16s2-8s1")
    set_arch(net, skeleton, strength=3.0)
    assert net.decode() == skeleton
    with torch.no_grad():  # level 0: the encoder mildly prefers c2, the decoder strongly s1 -> s1
        net.skeleton_arch["enc0"].copy_(torch.tensor([2.0, 0.0, 0.0, 0.0]))
        net.skeleton_arch["dec0"].copy_(torch.tensor([0.0, 0.0, 0.0, 5.0]))
    assert net.decode().levels[0].token == "8s1"


def test_softmax_groups_are_one_per_logit_vector() -> None:
    net = SkeletonSupernet(SkeletonChoices(((4, 8), (16,)), blocks=("c2", "s1")))
    groups = softmax_groups(net)
    # width1 has a single candidate: no group
    assert list(groups) == ["skeleton_arch.enc0", "skeleton_arch.dec0", "skeleton_arch.width0", "skeleton_arch.enc1"]
    assert all(g.shape == (2,) for g in groups.values())
    entropies = group_entropies({"seg": net})
    assert set(entropies) == {f"seg/{n}" for n in groups} and all(h > 0.99 for h in entropies.values())


# ---------------------------------------------------------------------------------- latency
@pytest.mark.parametrize("stride", [1, 2])
def test_every_derived_key_is_in_the_spaces_keys(stride: int) -> None:
    net = SkeletonSupernet(choices(stride))
    keys = set(net.latency_keys(SIZE))
    assert len(keys) == len(net.latency_keys(SIZE))
    rng = random.Random(stride)
    used = set()
    for _ in range(30):
        derived = skeleton_keys(net.choices.sample(rng), SIZE)
        assert set(derived) <= keys
        used |= set(derived)
    assert {k.op for k in keys} == {k.op for k in used}


@pytest.mark.parametrize("spec", ["4c2-16s1-8c1", "8s2-4c2-16s2", "/2:4s1-8c1-8c2", "/2:8c2-16s2-16s1"])
def test_expected_latency_of_one_hot_weights_is_the_derived_networks(spec: str) -> None:
    skeleton = UNetSkeleton.parse(spec)
    net = SkeletonSupernet(choices(skeleton.input_stride))
    table = table_of(net)
    set_arch(net, skeleton)
    expected = float(net.expected_latency(table, SIZE).detach())
    assert expected == pytest.approx(derived_latency(skeleton, table, SIZE), rel=1e-5)


def test_expected_latency_reads_a_latency_lookup(synthetic_table) -> None:
    net = SkeletonSupernet(choices(2))
    skeleton = net.decode()
    set_arch(net, skeleton)
    assert float(net.expected_latency(synthetic_table, SIZE).detach()) == pytest.approx(
        derived_latency(skeleton, synthetic_table, SIZE), rel=1e-5)
    with pytest.raises(KeyError, match="skel_"):
        net.expected_latency({}, SIZE)


def test_descending_the_expected_latency_picks_the_narrowest_widths() -> None:
    net = SkeletonSupernet(choices(), seed=1)
    table = table_of(net)
    opt = torch.optim.SGD(net.arch_parameters(), lr=1.0)
    first = float(net.expected_latency(table, SIZE).detach())
    for _ in range(20):
        opt.zero_grad()
        loss = net.expected_latency(table, SIZE)
        loss.backward()
        assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in net.arch_parameters())
        opt.step()
    assert float(net.expected_latency(table, SIZE).detach()) < 0.8 * first
    assert [lv.width for lv in net.decode().levels] == [ws[0] for ws in WIDTHS]


def test_every_key_builds_the_module_it_times() -> None:
    net = SkeletonSupernet(SkeletonChoices(((2, 4), (4, 8)), blocks=("c2", "s1"), input_stride=2))
    for key in net.latency_keys(8):
        module = build_block_for_key(key).eval()
        out = module(torch.randn(1, key.c_in, *key.shape))
        scale = {"skel_entry": 0.5, "skel_pool": 0.5, "skel_up": 2, "skel_resize": 2}.get(key.op, 1)
        assert out.shape == (1, key.c_out, int(key.shape[0] * scale), int(key.shape[1] * scale)), key
    block = net.encoders[0].candidate("s1")
    assert isinstance(block, MaskedBlock) and block.op == "s"
    with pytest.raises(ValueError):
        build_block_for_key(OpKey("conv", 2, 4, 4, (8, 8)))
