"""The resumable train loop, splits and evaluation with app.metrics."""

from __future__ import annotations

import numpy as np
import torch

from search.baselines.unet import UNet, UNetConfig
from search.baselines.training import seg_step
from search.train.data import split_patients
from search.train.datasets import EchoFrameDataset
from search.train.evaluate import evaluate_segmentation, torch_seg_predictor
from search.train.loop import TrainConfig, fit, seed_everything
from search.train.synthetic import synthetic_echo_case
from search.train.augment import AffineAugmentation


def _data(n_cases: int = 3) -> EchoFrameDataset:
    cases = [synthetic_echo_case(0, i, n_frames=2, size=32) for i in range(n_cases)]
    return EchoFrameDataset(cases, size=(32, 32), augment=AffineAugmentation(), seed=0)


def _net() -> UNet:
    seed_everything(0)
    return UNet(UNetConfig(dims=2, in_channels=3, n_classes=2, depth=3, initial_filters=4))


def test_training_lowers_the_loss():
    torch.set_num_threads(1)
    losses = fit(_net(), seg_step, _data(), TrainConfig(epochs=6, batch_size=3, lr=1e-2, seed=0))
    assert losses[-1] < losses[0]


class _Interrupted(Exception):
    pass


def _interrupt_after_first_epoch(epoch: int, epochs: int, loss: float) -> None:
    if epoch == 1:
        raise _Interrupted


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)
    cfg = TrainConfig(epochs=2, batch_size=2, lr=1e-2, seed=0)
    straight = _net()
    fit(straight, seg_step, _data(), cfg, checkpoint=tmp_path / "a.pt")
    try:
        fit(_net(), seg_step, _data(), cfg, checkpoint=tmp_path / "b.pt", progress=_interrupt_after_first_epoch)
    except _Interrupted:
        pass
    assert torch.load(tmp_path / "b.pt", weights_only=False)["epoch"] == 1
    resumed = UNet(straight.cfg)  # different init: everything must come from the checkpoint
    losses = fit(resumed, seg_step, _data(), cfg, checkpoint=tmp_path / "b.pt")
    assert len(losses) == 2
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_a_finished_stage_reloads_instead_of_training(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=2, seed=0)
    first = _net()
    fit(first, seg_step, _data(), cfg, checkpoint=tmp_path / "s.pt")
    again = UNet(first.cfg)
    losses = fit(again, seg_step, _data(), cfg, checkpoint=tmp_path / "s.pt")
    assert len(losses) == 1
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_split_is_by_patient_disjoint_and_seeded():
    cases = [synthetic_echo_case(0, i, n_frames=1, size=32) for i in range(10)]
    a = split_patients(cases, {"s1": 0.4, "s2": 0.4, "test": 0.2}, seed=3)
    b = split_patients(cases, {"s1": 0.4, "s2": 0.4, "test": 0.2}, seed=3)
    ids = {k: [c.case_id for c in v] for k, v in a.items()}
    assert ids == {k: [c.case_id for c in v] for k, v in b.items()}
    assert [len(v) for v in ids.values()] == [4, 4, 2]
    assert len(set(sum(ids.values(), []))) == 10


def test_evaluation_scores_an_oracle_one_and_background_zero():
    ds = EchoFrameDataset([synthetic_echo_case(0, i, n_frames=2, size=32) for i in range(2)], size=(32, 32))
    labels = [ds[i][1].numpy() for i in range(len(ds))]
    calls = iter(range(len(ds)))

    def oracle(x):
        y = labels[next(calls)]
        probs = np.stack([y == 0, y == 1]).astype(np.float32)[None]
        return probs, np.zeros((1, 1, *y.shape), np.float32)

    ev = evaluate_segmentation(oracle, ds, 2)
    assert ev.per_class == {1: 1.0} and ev.mean == 1.0 and ev.per_frame == [1.0] * 4

    def background(x):
        return np.stack([np.ones((32, 32)), np.zeros((32, 32))]).astype(np.float32)[None], np.zeros((1, 1, 32, 32), np.float32)

    assert evaluate_segmentation(background, ds, 2).mean == 0.0
    trained = evaluate_segmentation(torch_seg_predictor(_net()), ds, 2)
    assert 0.0 <= trained.mean <= 1.0
