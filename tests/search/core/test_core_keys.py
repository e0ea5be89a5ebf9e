"""search.core.keys: per-frame (streaming step) keys are distinct from clip keys and round-trip (issue 17)."""

from __future__ import annotations

import pytest

from search.core.keys import STREAM_SUFFIX, OpKey


def test_per_frame_key_is_distinct_and_round_trips() -> None:
    clip = OpKey("sep_conv", 3, 16, 16, (20, 64, 48))
    frame = clip.per_frame()
    assert frame == OpKey("sep_conv", 3, 16, 16, (1, 64, 48), stream=True)
    assert frame.canonical() == "sep_conv|3d|cin16|cout16|in1x64x48|s1" + STREAM_SUFFIX
    # a clip key of a one-frame clip is another key: the two kinds of entry never meet
    one_frame_clip = OpKey("sep_conv", 3, 16, 16, (1, 64, 48))
    assert one_frame_clip.canonical() != frame.canonical() and one_frame_clip != frame
    for key in (clip, frame, OpKey("down_conv", 3, 8, 16, (1, 8, 6), stride=2, stream=True)):
        assert OpKey.parse(key.canonical()) == key
    assert OpKey.parse(clip.canonical()).stream is False


def test_only_clip_ops_have_a_per_frame_key() -> None:
    with pytest.raises(ValueError, match="only 3D"):
        OpKey("conv", 2, 4, 4, (8, 8)).per_frame()
    with pytest.raises(ValueError, match="not a latency-table key"):
        OpKey.parse("conv|3d|cin4|cout4|in1x8x8|stream")
