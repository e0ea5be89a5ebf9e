"""A folder of still images (PNG, JPEG, BMP, TIFF) played in file-name order."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from app.data.case import DataError
from app.engine.sources.base import RecordingSource
from app.engine.types import SourceInfo

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DEFAULT_FRAME_RATE = 30.0


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class ImageFolderSource(RecordingSource):
    """Each image is one frame; every image must have the first one's size.

    Args:
        folder: The folder.
        frame_rate: Playback rate (a folder of stills carries none).
    """

    def __init__(self, folder: Path | str, *, frame_rate: float = DEFAULT_FRAME_RATE):
        self.folder = Path(folder)
        self._files = image_files(self.folder)
        if not self._files:
            raise DataError(self.folder, f"holds no images ({', '.join(IMAGE_SUFFIXES)})")
        super().__init__(SourceInfo(name=self.folder.name, modality=None, frame_rate=float(frame_rate),
                                    n_frames=len(self._files)))
        self._shape = None
        self._shape = self.read_frame(0)[0].shape

    def read_frame(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        path = self._files[index]
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DataError(path, "unreadable or truncated image")
        if image.ndim == 3:
            code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
            image = cv2.cvtColor(image, code)
        if image.dtype != np.uint8:
            image = image.astype(np.float32)
        if self._shape is not None and image.shape != self._shape:
            raise DataError(path, f"image is {image.shape} but the folder's first image is {self._shape}")
        return image, None
