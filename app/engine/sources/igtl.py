"""OpenIGTLink IMAGE client (``igtl://host:port``): the protocol PLUS and 3D Slicer use to stream
ultrasound. Only the newest image is kept between reads (a per-device mailbox).

The socket is read here (pyigtl only unpacks the IMAGE bodies): its own client thread prints a
traceback for junk bytes and takes a closed connection for a silent one. A header that is not
OpenIGTLink ends the stream with one ``DataError`` ("bad OpenIGTLink header ..."); so does the
server closing the connection ("the server closed the connection"). Messages of other types
(STATUS, TRANSFORM, ...) are skipped, as the protocol asks of a receiver.
"""

from __future__ import annotations

import logging
import re
import socket
import struct
import threading
import time
from typing import Iterator

import numpy as np

from app.data.case import DataError
from app.engine.sources.base import FrameSource
from app.engine.types import Frame, SourceInfo

log = logging.getLogger(__name__)

POLL_S = 0.002
HEADER = struct.Struct(">H12s20sIIQQ")  # version, type, device, timestamp (2), body size, CRC: 58 bytes
MAX_BODY_BYTES = 1 << 30  # a 2D ultrasound image is a few MB; more than this is not a real header
_TYPE_NAME = re.compile(r"[A-Za-z0-9_]{1,12}")


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


class _Receiver(threading.Thread):
    """Reads messages off the socket; keeps the newest IMAGE per device, or the error that ended it."""

    def __init__(self, sock: socket.socket, spec: str):
        super().__init__(name="igtl-receiver", daemon=True)
        self._sock = sock
        self._spec = spec
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._mailbox: dict[str, object] = {}
        self.other_types: set[str] = set()
        self.error: DataError | None = None

    def take(self, device: str | None):
        """The newest IMAGE (of ``device``, or of any device) since the last call, or None."""
        with self._lock:
            if device is not None:
                return self._mailbox.pop(device, None)
            if not self._mailbox:
                return None
            name = next(reversed(self._mailbox))
            message = self._mailbox[name]
            self._mailbox.clear()
            return message

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                self._receive_one()
        except DataError as exc:
            self.error = exc
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            if not self._halt.is_set():
                self.error = DataError(self._spec, "the server closed the connection (connection reset)")
        except OSError as exc:
            if not self._halt.is_set():
                self.error = DataError(self._spec, f"connection lost ({exc.strerror or exc})")

    def _recv_exactly(self, n: int, what: str) -> bytes | None:
        """``n`` bytes, or None when stopping; ``DataError`` when the server closes the connection."""
        chunks, got = [], 0
        while got < n:
            if self._halt.is_set():
                return None
            try:
                chunk = self._sock.recv(min(n - got, 1 << 20))
            except socket.timeout:
                continue
            if not chunk:
                where = "" if got == 0 and what == "header" else f" in the middle of a message {what}"
                raise DataError(self._spec, f"the server closed the connection{where}")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _receive_one(self) -> None:
        raw = self._recv_exactly(HEADER.size, "header")
        if raw is None:
            return
        fields = parse_header(self._spec, raw)
        body = self._recv_exactly(fields["body_size"], "body")
        if body is None:
            return
        if fields["message_type"] != "IMAGE":
            self.other_types.add(fields["message_type"])
            return
        import pyigtl

        message = pyigtl.ImageMessage()
        try:
            message.unpack(fields, body)
            np.asarray(message.image)
        except Exception as exc:  # a malformed IMAGE body: skip it, the next may be fine
            log.warning("%s: skipping a malformed IMAGE message (%s: %s)", self._spec, type(exc).__name__, exc)
            return
        with self._lock:
            self._mailbox.pop(message.device_name, None)
            self._mailbox[message.device_name] = message


def parse_header(spec: str, raw: bytes) -> dict:
    """The 58-byte OpenIGTLink header as pyigtl's fields; ``DataError`` when it is not one."""
    version, type_raw, device_raw, seconds, fraction, body_size, _crc = HEADER.unpack(raw)
    type_name = type_raw.rstrip(b"\0 ").decode("ascii", errors="replace")
    if version not in (1, 2) or not _TYPE_NAME.fullmatch(type_name) or body_size > MAX_BODY_BYTES:
        shown = type_name if type_name.isprintable() else repr(type_raw[:12])
        size = f", body of {body_size} bytes" if body_size > MAX_BODY_BYTES else ""
        raise DataError(spec, f"bad OpenIGTLink header (version {version}, message type {shown[:24]!r}{size}): "
                              "the server is not speaking OpenIGTLink")
    return {"header_version": version, "message_type": type_name,
            "device_name": device_raw.rstrip(b"\0 ").decode("utf-8", errors="replace"),
            "timestamp": seconds + fraction / 2.0 ** 32, "body_size": body_size}


def _connect(spec: str, host: str, port: int, timeout: float) -> socket.socket:
    """A connected socket, retrying until ``timeout`` (a server may be starting up)."""
    deadline = time.monotonic() + float(timeout)
    while True:
        try:
            sock = socket.create_connection((host, int(port)), timeout=max(0.05, min(1.0, deadline - time.monotonic())))
        except socket.gaierror as exc:
            raise DataError(spec, f"unknown host {host!r} ({exc.strerror or exc})") from None
        except OSError:
            if time.monotonic() > deadline:
                raise DataError(spec, f"no OpenIGTLink server answered within {timeout:.1f} s") from None
            time.sleep(0.02)
            continue
        sock.settimeout(0.1)
        return sock


class IgtlSource(FrameSource):
    """Live OpenIGTLink IMAGE stream.

    Args:
        host: Server host.
        port: Server port.
        device: Only images from this device name (None: any device).
        connect_timeout: Seconds to wait for the connection at open.
        stall_timeout: Seconds without a new image after which iteration raises ``DataError``
            (the server stalled).
        frame_rate: Nominal rate when known (pacing is the sender's; this is informational).
    """

    seekable = False

    def __init__(self, host: str, port: int, *, device: str | None = None, connect_timeout: float = 5.0,
                 stall_timeout: float = 5.0, frame_rate: float | None = None):
        self.spec = f"igtl://{host}:{port}"
        self._device = device
        self._stall_timeout = float(stall_timeout)
        self._closed = threading.Event()
        self._sock = _connect(self.spec, host, port, connect_timeout)
        self._receiver = _Receiver(self._sock, self.spec)
        self._receiver.start()
        self.info = SourceInfo(name=f"OpenIGTLink {host}:{port}" + (f" {device}" if device else ""),
                               modality="echo", frame_rate=frame_rate, n_frames=None)

    def _silence(self) -> str:
        others = sorted(self._receiver.other_types)
        if others:
            return f"server connected, sending only {', '.join(others[:4])} messages"
        return "server connected but silent"

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        last = time.monotonic()
        while not self._closed.is_set():
            message = self._receiver.take(self._device)
            if message is None and self._receiver.error is not None:
                message = self._receiver.take(self._device)  # an image that came just before the error
                if message is None:
                    raise self._receiver.error
            if message is None:
                if time.monotonic() - last > self._stall_timeout:
                    raise DataError(self.spec, f"no image for {self._stall_timeout:.1f} s ({self._silence()})")
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
            self._receiver.stop()
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._receiver.join(timeout=2.0)
            self._sock.close()
