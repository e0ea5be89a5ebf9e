"""OpenIGTLink IMAGE client (``igtl://host:port``): the protocol PLUS and 3D Slicer use to stream
ultrasound. Only the newest image is kept between reads (the client's per-device mailbox)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Iterator

import numpy as np

from app.data.case import DataError
from app.engine.sources.base import FrameSource
from app.engine.types import Frame, SourceInfo

log = logging.getLogger(__name__)

POLL_S = 0.002


def image_from_message(message) -> np.ndarray:
    """An IMAGE message's voxels ``(K, J, I[, C])`` -> a 2D frame ``(H, W)`` or ``(H, W, 3)``."""
    voxels = np.asarray(message.image)
    if voxels.ndim == 4:
        voxels = voxels[voxels.shape[0] // 2]
        if voxels.shape[-1] == 1:
            voxels = voxels[..., 0]
        elif voxels.shape[-1] >= 3:
            voxels = voxels[..., :3]
    elif voxels.ndim == 3:
        voxels = voxels[voxels.shape[0] // 2]
    if voxels.ndim not in (2, 3) or min(voxels.shape[:2]) < 8:
        raise ValueError(f"image of shape {np.asarray(message.image).shape} is not a 2D frame")
    if voxels.dtype != np.uint8:
        voxels = voxels.astype(np.float32)
    return np.ascontiguousarray(voxels)


class IgtlSource(FrameSource):
    """Live OpenIGTLink IMAGE stream.

    Args:
        host: Server host.
        port: Server port.
        device: Only images from this device name (None: any device).
        connect_timeout: Seconds to wait for the connection at open.
        stall_timeout: Seconds without a new image after which iteration raises ``DataError``
            (the server stalled or disconnected).
        frame_rate: Nominal rate when known (pacing is the sender's; this is informational).
    """

    seekable = False

    def __init__(self, host: str, port: int, *, device: str | None = None, connect_timeout: float = 5.0,
                 stall_timeout: float = 5.0, frame_rate: float | None = None):
        import pyigtl

        self.spec = f"igtl://{host}:{port}"
        self._device = device
        self._stall_timeout = float(stall_timeout)
        self._closed = threading.Event()
        self._client = pyigtl.OpenIGTLinkClient(host=host, port=int(port), start_now=True)
        deadline = time.monotonic() + float(connect_timeout)
        while not self._client.is_connected():
            if time.monotonic() > deadline:
                self._client.stop()
                raise DataError(self.spec, f"no OpenIGTLink server answered within {connect_timeout:.1f} s")
            time.sleep(0.01)
        self.info = SourceInfo(name=f"OpenIGTLink {host}:{port}" + (f" {device}" if device else ""),
                               modality="echo", frame_rate=frame_rate, n_frames=None)

    def _next_image(self):
        """The newest IMAGE message since the last call, or None."""
        newest = None
        for message in self._client.get_latest_messages():
            if message.message_type != "IMAGE":
                continue
            if self._device is not None and message.device_name != self._device:
                continue
            newest = message
        return newest

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        last = time.monotonic()
        while not self._closed.is_set():
            message = self._next_image()
            if message is None:
                if time.monotonic() - last > self._stall_timeout:
                    state = "connected but silent" if self._client.is_connected() else "disconnected"
                    raise DataError(self.spec, f"no image for {self._stall_timeout:.1f} s (server {state})")
                self._closed.wait(POLL_S)
                continue
            last = time.monotonic()
            try:
                image = image_from_message(message)
            except ValueError as exc:
                log.warning("%s: skipping a message: %s", self.spec, exc)
                continue
            yield Frame(index=index, image=image, t_arrival=time.perf_counter_ns(),
                        meta={"device": message.device_name})
            index += 1

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._client.stop()
