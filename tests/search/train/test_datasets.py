"""Datasets over Case lists: shapes, the deployed preprocessing, augmentation, ignore frames."""

from __future__ import annotations

import numpy as np
import pytest

from app.data.case import DataError
from app.engine.preprocess import preprocess
from search.train.augment import AffineAugmentation
from search.train.datasets import IGNORE_INDEX, CineClipDataset, EchoFrameDataset, input_spec, ECHO_NORMALISATION
from search.train.synthetic import synthetic_cine_case, synthetic_echo_case


def test_echo_frames_match_the_deployed_preprocessing():
    cases = [synthetic_echo_case(0, i, n_frames=3, size=48) for i in range(2)]
    ds = EchoFrameDataset(cases, size=(32, 32))
    assert len(ds) == 6
    x, y = ds[4]
    assert x.shape == (3, 32, 32) and y.shape == (32, 32)
    expected = preprocess(cases[1].frames[1], input_spec((1, 3, 32, 32), ECHO_NORMALISATION))[0]
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-6)
    assert set(np.unique(y.numpy())) <= {0, 1}


def test_frame_step_strides_labelled_frames():
    ds = EchoFrameDataset([synthetic_echo_case(0, 0, n_frames=6, size=32)], size=(32, 32), frame_step=3)
    assert [t for _, t in ds.index] == [0, 3]


def test_augmentation_moves_image_and_labels_together():
    case = synthetic_echo_case(1, 0, n_frames=1, size=64)
    plain = EchoFrameDataset([case], size=(64, 64))
    aug = EchoFrameDataset([case], size=(64, 64), seed=3,
                           augment=AffineAugmentation(max_shift=0.15, max_rotation_deg=30, scale_range=(0.8, 1.2)))
    x0, y0 = plain[0]
    x1, y1 = aug[0]
    assert not np.array_equal(y0.numpy(), y1.numpy())  # it did move
    ring = y1.numpy() == 1
    # the bright ring and its label moved together: brighter inside the warped label than outside
    brightness = x1.numpy().mean(0)
    assert brightness[ring].mean() > brightness[~ring].mean() + 0.2


def test_augmentation_is_seeded():
    case = synthetic_echo_case(1, 0, n_frames=2, size=32)
    a = EchoFrameDataset([case], size=(32, 32), seed=5, augment=AffineAugmentation())
    b = EchoFrameDataset([case], size=(32, 32), seed=5, augment=AffineAugmentation())
    np.testing.assert_array_equal(a[1][0].numpy(), b[1][0].numpy())


def test_cine_clips_wrap_and_mark_unlabelled_frames():
    case = synthetic_cine_case(0, 0, n_frames=6, n_slices=2, size=(32, 32), labelled_frames=(0, 3))
    ds = CineClipDataset([case], clip_length=4, size=(32, 32), stride=3)
    assert len(ds) == 4  # 2 slices x starts 0, 3
    np.testing.assert_array_equal(ds.frame_indices(1), [3, 4, 5, 0])
    clip, labels = ds[1]
    assert clip.shape == (1, 4, 32, 32) and labels.shape == (4, 32, 32)
    assert abs(float(clip.mean())) < 1e-4 and abs(float(clip.std()) - 1) < 1e-3  # zscore per clip
    assert (labels[1] == IGNORE_INDEX).all() and (labels[2] == IGNORE_INDEX).all()
    assert set(np.unique(labels[0].numpy())) <= {0, 1, 2, 3}


def test_per_frame_normalisation():
    case = synthetic_cine_case(0, 1, n_frames=4, n_slices=1, size=(32, 32))
    clip, _ = CineClipDataset([case], clip_length=4, size=(32, 32), per_frame_norm=True)[0]
    stds = clip[0].reshape(4, -1).std(dim=1)
    np.testing.assert_allclose(stds.numpy(), 1.0, atol=1e-3)


def test_wrong_modality_is_a_clear_error():
    with pytest.raises(DataError, match="cine case"):
        EchoFrameDataset([synthetic_cine_case(0, 0)])
