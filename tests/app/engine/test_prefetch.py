"""The live phantom rendered ahead in a child process: same frames, live pacing, errors, clean close."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time

import numpy as np
import pytest

from app.data.case import Case, DataError
from app.engine.sources import open_source
from app.engine.sources.prefetch import PrefetchedPhantomSource

pytestmark = pytest.mark.timeout(120)

RATE = 5.0  # frames per second of the test renderers' cases
HERE = "tests.app.engine.test_prefetch"


def _tiny_case(index: int, n_frames: int = 3) -> Case:
    frames = np.full((n_frames, 16, 16), index, np.uint8)
    return Case(case_id=f"tiny-{index}", modality="echo", frames=frames, labels=np.zeros_like(frames),
                label_map={0: "background"}, spacing_mm=(1.0, 1.0), frame_rate=RATE)


# Renderers for the child process (imported there by name, so module level).
def slow_after_first(seed: int, index: int, **kwargs) -> Case:
    if index > 0:
        time.sleep(60.0)  # never ready within a test: the source must not wait for it when live
    return _tiny_case(index)


def a_bit_slow(seed: int, index: int, **kwargs) -> Case:
    if index > 0:
        time.sleep(0.3)
    return _tiny_case(index)


def fails_second(seed: int, index: int, **kwargs) -> Case:
    if index > 0:
        raise RuntimeError("disk full\nwhile writing")
    return _tiny_case(index)


def dies_second(seed: int, index: int, **kwargs) -> Case:
    if index > 0:
        os._exit(3)
    return _tiny_case(index)


def _take(source, n: int, pace: float = 0.0) -> list:
    frames = []
    for frame in source:
        frames.append(frame)
        if len(frames) == n:
            break
        time.sleep(pace)
    return frames


def test_prefetched_frames_equal_the_direct_rendering():
    from app.data.phantom.cine import render_cine_case

    with open_source("phantom:cine?seed=2&case=1&frames=4") as source:
        assert isinstance(source, PrefetchedPhantomSource) and not source.seekable
        frames = _take(source, 8)
    first, second = render_cine_case(2, 1, n_frames=4), render_cine_case(2, 2, n_frames=4)
    z = first.n_slices // 2
    assert source.info.frame_rate == pytest.approx(first.frame_rate) and source.info.n_slices == first.n_slices
    for t in range(4):
        assert np.array_equal(frames[t].image, first.frames[t, z])
        assert np.array_equal(frames[t].ground_truth, first.labels[t, z])
        assert np.array_equal(frames[4 + t].image, second.frames[t, z])
        assert np.array_equal(frames[4 + t].ground_truth, second.labels[t, z])
    assert [f.index for f in frames] == list(range(8))
    assert source.slice_index == z and {f.meta["slice"] for f in frames} == {z} and frames[3].meta["case"] != frames[4].meta["case"]


def test_close_leaves_no_process_behind():
    source = open_source("phantom:echo?frames=3")
    process = source._prefetch.process
    assert process.is_alive()
    _take(source, 2)
    source.close()
    source.close()  # idempotent
    assert not process.is_alive() and process.exitcode is not None
    assert process not in mp.active_children()


def test_close_while_the_child_renders_and_a_reader_waits():
    source = PrefetchedPhantomSource("echo", renderer=f"{HERE}:slow_after_first", hold=False)
    process = source._prefetch.process
    got, failed = [], []

    def read():
        try:
            got.extend(source)  # blocks at the end of case 0: case 1 takes a minute
        except Exception as exc:  # the test fails below if the reader saw an error
            failed.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while len(got) < 3 and reader.is_alive():
        time.sleep(0.05)
    source.close()
    reader.join(10.0)
    assert not reader.is_alive() and not failed and len(got) == 3
    assert not process.is_alive() and process not in mp.active_children()


def test_live_pace_repeats_the_patient_instead_of_stalling():
    with PrefetchedPhantomSource("echo", renderer=f"{HERE}:slow_after_first") as source:
        frames = _take(source, 8, pace=1.0 / RATE)
        assert source.repeats >= 2
    assert [f.meta["case"] for f in frames] == ["tiny-0"] * 8
    assert [f.meta.get("repeat", 0) for f in frames] == [0, 0, 0, 1, 1, 1, 2, 2]
    assert [f.index for f in frames] == list(range(8))


def test_a_fast_reader_gets_every_case_in_order():
    with PrefetchedPhantomSource("echo", renderer=f"{HERE}:a_bit_slow") as source:
        frames = _take(source, 9)
        assert source.repeats == 0
    assert [int(f.image[0, 0]) for f in frames] == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_render_error_is_one_line_data_error():
    with pytest.raises(DataError, match=r"^phantom:cine: rendering case 0 failed \(ValueError: need n_frames") as err:
        open_source("phantom:cine?frames=0")
    assert "\n" not in str(err.value)
    with PrefetchedPhantomSource("echo", renderer=f"{HERE}:fails_second") as source:
        with pytest.raises(DataError, match=r"rendering case 1 failed \(RuntimeError: disk full while writing\)$"):
            _take(source, 6)
    with PrefetchedPhantomSource("echo", renderer=f"{HERE}:dies_second") as source:
        with pytest.raises(DataError, match=r"render process ended unexpectedly \(exit code 3\)"):
            _take(source, 6)
    assert not mp.active_children()


def test_unknown_renderer_and_modality_are_clear():
    with pytest.raises(DataError, match="phantom generator not available"):
        PrefetchedPhantomSource("echo", renderer="app.no_such_module:render")
    with pytest.raises(DataError, match="unknown phantom modality"):
        PrefetchedPhantomSource("ultrasoundish")
