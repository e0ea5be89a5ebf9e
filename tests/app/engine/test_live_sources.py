"""Live sources: OpenIGTLink over loopback, capture devices that stall or disconnect."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from app.data.case import DataError
from app.engine.sources import open_source
from app.engine.sources.video import CaptureSource

pytestmark = pytest.mark.timeout(60)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def igtl_server():
    import pyigtl

    server = pyigtl.OpenIGTLinkServer(port=_free_port(), local_server=True)
    yield server
    server.stop()


def _send_images(server, n: int, stop: threading.Event, period: float = 0.02) -> None:
    import pyigtl

    while not server.is_connected() and not stop.is_set():
        time.sleep(0.01)
    for k in range(n):
        if stop.is_set():
            return
        voxels = np.full((1, 40, 50), k, dtype=np.uint8)  # (k, j, i): one 40x50 slice
        server.send_message(pyigtl.ImageMessage(voxels, device_name="Image"), wait=True)
        time.sleep(period)


def test_igtl_client_receives_frames_then_reports_the_stall(igtl_server):
    stop = threading.Event()
    sender = threading.Thread(target=_send_images, args=(igtl_server, 5, stop), daemon=True)
    sender.start()
    source = open_source(f"igtl://127.0.0.1:{igtl_server.port}?device=Image", stall_timeout=1.0)
    try:
        assert not source.seekable and source.info.n_frames is None
        frames = []
        with pytest.raises(DataError, match="no image for 1.0 s"):
            for frame in source:
                frames.append(frame)
        assert 1 <= len(frames) <= 5  # newest wins in the client mailbox: some may be skipped
        assert frames[0].image.shape == (40, 50) and frames[-1].image[0, 0] <= 4
        assert [f.index for f in frames] == list(range(len(frames)))
    finally:
        stop.set()
        source.close()
        sender.join(5)


def test_igtl_without_server_fails_clearly():
    with pytest.raises(DataError, match="no OpenIGTLink server"):
        open_source(f"igtl://127.0.0.1:{_free_port()}", connect_timeout=0.5)


class FakeCapture:
    """Stands in for cv2.VideoCapture: n frames, then reads fail (unplugged grabber)."""

    def __init__(self, n: int):
        self.n, self.k, self.released = n, 0, False

    def isOpened(self):
        return True

    def get(self, prop):
        return 0.0

    def read(self):
        if self.k >= self.n:
            time.sleep(0.005)
            return False, None
        self.k += 1
        return True, np.zeros((24, 32, 3), np.uint8)

    def release(self):
        self.released = True


def test_capture_device_disconnect_raises_instead_of_hanging():
    cap = FakeCapture(3)
    source = CaptureSource(0, stall_timeout=0.3, capture=cap)
    frames = []
    with pytest.raises(DataError, match="camera:0.*stopped delivering"):
        for frame in source:
            frames.append(frame)
    assert len(frames) == 3 and frames[0].image.shape == (24, 32, 3)
    source.close()
    assert cap.released


def test_capture_close_unblocks_iteration():
    cap = FakeCapture(0)
    source = CaptureSource(0, stall_timeout=30.0, capture=cap)
    threading.Timer(0.2, source.close).start()
    assert list(source) == []


def test_absent_camera_is_a_clear_error():
    with pytest.raises(DataError, match="camera:97"):
        open_source("camera:97")
