"""A seg training that collapses to background is started again from a fresh initialisation; the best is kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from search.train import restarts
from search.train.loop import TrainConfig, fit
from search.train.losses import segmentation_loss
from search.train.restarts import (RestartPolicy, attempt_checkpoint, attempt_seed, fit_with_restarts, reinitialise,
                                   restart_checkpoints, training_dice)


class Squares(Dataset):
    """Frames with one bright square (class 1) on a dark background; ``augment`` flips them (a random op)."""

    def __init__(self, n: int = 6, size: int = 16, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.augment = "flip"
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        s = self.size
        labels = np.zeros((s, s), np.int64)
        labels[2 + i % 3: 10 + i % 3, 3:11] = 1
        image = np.stack([labels.astype(np.float32)] * 3) + 0.05 * i
        if self.augment is not None and self.rng.random() < 0.5:
            image, labels = image[:, :, ::-1].copy(), labels[:, ::-1].copy()
        return torch.from_numpy(image.astype(np.float32)), torch.from_numpy(labels)


def tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


def seg_loss(model, batch):
    images, labels = batch
    return segmentation_loss(model(images), labels)


def set_background(net: nn.Module, collapsed: bool) -> None:
    """Make the last conv predict background everywhere (collapsed) or the image's bright pixels."""
    head = net[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([5.0, -5.0] if collapsed else [0.0, 0.0]))
        if not collapsed:
            net[0].weight.zero_(), net[0].bias.zero_()
            net[0].weight[:, 0, 1, 1] = 1.0
            net[1].reset_running_stats()
            head.weight[1, :, 0, 0] = 10.0
            head.bias.copy_(torch.tensor([0.0, -20.0]))


def test_attempt_names_and_seeds():
    assert attempt_seed(11, 0) == 11 and attempt_seed(11, 2) == 11 + 2 * restarts.SEED_STRIDE
    assert attempt_checkpoint(None, 1) is None
    assert attempt_checkpoint(restarts.Path("/r/seg.pt"), 0) == restarts.Path("/r/seg.pt")
    assert attempt_checkpoint(restarts.Path("/r/seg.pt"), 2) == restarts.Path("/r/seg.restart2.pt")
    with pytest.raises(ValueError, match="floor"):
        RestartPolicy(floor=1.0)
    with pytest.raises(ValueError, match="max_restarts"):
        RestartPolicy(max_restarts=-1)


def test_reinitialise_draws_defaults_again_and_refuses_orphan_parameters():
    net = tiny_net(0)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(3.0)
    net[1].running_mean.fill_(7.0)
    rng_state = torch.get_rng_state()
    reinitialise(net, 5)
    assert torch.equal(torch.get_rng_state(), rng_state)  # the caller's random state untouched
    first = [p.detach().clone() for p in net.parameters()]
    assert not any(torch.all(p == 3.0) for p in first[:1])
    assert torch.all(net[1].running_mean == 0) and torch.all(net[1].weight == 1)
    reinitialise(net, 5)
    assert all(torch.equal(a, b) for a, b in zip(first, net.parameters()))  # seeded
    reinitialise(net, 6)
    assert not torch.equal(first[0], net[0].weight)

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)
            self.gain = nn.Parameter(torch.full((1,), 4.0))

    odd = Scaled()
    with pytest.raises(ValueError, match="gain"):
        reinitialise(odd, 0)
    assert odd.gain.item() == 4.0  # refused before anything was touched


def test_training_dice_scores_the_clean_frames_and_leaves_the_dataset_as_it_was():
    data = Squares()
    net = tiny_net()
    set_background(net, collapsed=False)
    state = data.rng.bit_generator.state
    assert training_dice(net, data, max_frames=4) == {1: pytest.approx(1.0)}
    assert data.augment == "flip" and data.rng.bit_generator.state == state
    set_background(net, collapsed=True)
    assert training_dice(net, data, max_frames=4) == {1: 0.0}


def test_a_collapsed_training_is_restarted_and_the_best_attempt_kept(tmp_path, monkeypatch):
    """Attempts 0 and 1 collapse, attempt 2 learns: three checkpoints, three records, the last attempt's weights."""
    seen = []

    def fake_fit(model, loss_fn, dataset, cfg, *, checkpoint=None, parameters=None, progress=None):
        seen.append((cfg.seed, checkpoint.name))
        set_background(model, collapsed=len(seen) < 3)
        checkpoint.write_bytes(b"x")
        return [float(len(seen))]

    monkeypatch.setattr(restarts, "fit", fake_fit)
    data = Squares()
    net = tiny_net()
    result = fit_with_restarts(net, seg_loss, data, TrainConfig(epochs=1, seed=3), checkpoint=tmp_path / "seg.pt",
                               policy=RestartPolicy(max_restarts=2, max_frames=4))
    assert seen == [(3, "seg.pt"), (attempt_seed(3, 1), "seg.restart1.pt"), (attempt_seed(3, 2), "seg.restart2.pt")]
    assert result.kept == 2 and result.losses == [3.0] and not result.collapsed
    assert [a["collapsed"] for a in result.attempts] == [True, True, False]
    assert result.record()["attempts"][2]["train_dice_per_class"] == {"1": pytest.approx(1.0)}
    assert training_dice(net, data, 4)[1] == pytest.approx(1.0)
    assert [p.name for p in restart_checkpoints(tmp_path / "seg.pt")] == ["seg.restart1.pt", "seg.restart2.pt"]


def test_when_every_attempt_collapses_the_best_one_is_kept_and_flagged(monkeypatch):
    calls = []

    def fake_fit(model, loss_fn, dataset, cfg, *, checkpoint=None, parameters=None, progress=None):
        calls.append(cfg.seed)
        set_background(model, collapsed=len(calls) != 2)
        if len(calls) == 2:  # the second attempt also marks dim frames fg: Dice between 0 and the floor
            with torch.no_grad():
                model[-1].bias[1] = -5.0
        return [0.0]

    monkeypatch.setattr(restarts, "fit", fake_fit)
    net = tiny_net()
    result = fit_with_restarts(net, seg_loss, Squares(), TrainConfig(epochs=1), policy=RestartPolicy(floor=0.99,
                                                                                                   max_frames=4))
    assert len(calls) == 3 and result.collapsed and result.kept == 1
    dice = training_dice(net, Squares(), 4)[1]
    assert dice == pytest.approx(result.attempts[1]["train_dice"]) and dice > 0


def test_no_collapse_is_exactly_fit_and_a_rerun_resumes_every_attempt(tmp_path):
    """Real training: with a floor of 0 the result is ``fit``'s; with an unreachable floor every attempt trains
    once, and running it again reloads the finished checkpoints instead of training."""
    cfg = TrainConfig(epochs=2, batch_size=2, seed=1)
    plain = tiny_net(0)
    fit(plain, seg_loss, Squares(), cfg)
    guarded = tiny_net(0)
    once = fit_with_restarts(guarded, seg_loss, Squares(), cfg, policy=RestartPolicy(floor=0.0, max_frames=4))
    assert len(once.attempts) == 1 and not once.collapsed
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), guarded.state_dict().values()))

    policy = RestartPolicy(floor=0.999, max_restarts=1, max_frames=4)
    first = fit_with_restarts(tiny_net(0), seg_loss, Squares(), cfg, checkpoint=tmp_path / "seg.pt", policy=policy)
    assert len(first.attempts) == 2 and (tmp_path / "seg.restart1.pt").is_file()
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again_net = tiny_net(0)
    again = fit_with_restarts(again_net, seg_loss, Squares(), cfg, checkpoint=tmp_path / "seg.pt", policy=policy)
    assert again.attempts == first.attempts and again.kept == first.kept
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == mtimes  # nothing retrained


@pytest.mark.parametrize("space", ["cells", "skeleton"])
def test_every_network_a_row_retrains_can_be_reinitialised(space):
    """A collapse mid-chain must not stop on a parameter ``reinitialise`` cannot draw again: the baselines, and
    random genotypes of both segqc-hw spaces (seg and QC nets)."""
    from dataclasses import replace

    from search.baselines.registry import get_baseline
    from search.baselines.training import build_cine_net
    from search.baselines.unet import UNet
    from search.methods.segqc_hw.config import preset
    from search.methods.segqc_hw.random_control import random_genotype
    from search.methods.segqc_hw.search import build_baseline, build_derived

    cfg = preset("smoke")
    cfg = replace(cfg, space=replace(cfg.space, seg_space=space))
    rng = np.random.default_rng(0)
    nets = [*build_baseline(8, 0)]
    for _ in range(3):
        nets += [*build_derived(cfg, random_genotype(cfg, rng), 0)]
    for name in ("unet16-resnet18", "unet3d-d3-if16", "unet2d-d3-if16"):
        spec = get_baseline(name)
        nets.append(build_cine_net(spec, 4)[0] if spec.modality == "cine" else UNet(spec.unet))
    for net in nets:
        before = [p.detach().clone() for p in net.parameters()]
        reinitialise(net, 123)
        assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters())), type(net).__name__
