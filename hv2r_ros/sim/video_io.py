"""MP4 writing and reading through OpenCV (``mp4v``: MPEG-4 Part 2, which every OpenCV build
writes without an external encoder).

Frames are uint8 RGB (H, W, 3) on both sides; OpenCV's BGR order stays inside this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FOURCC = "mp4v"


class Mp4Writer:
    """Writes RGB frames of one size to an MP4 file; use as a context manager.

    Args:
        path: Output file; its folder is created.
        size: (width, height) [px] of every frame.
        fps: Frame rate [Hz], > 0.

    Raises:
        OSError: OpenCV cannot open the file for writing.
    """

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float) -> None:
        import cv2

        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*FOURCC),
                                       float(fps), self.size)
        if not self._writer.isOpened():
            raise OSError(f"{self.path}: OpenCV could not open an {FOURCC} MP4 writer")
        self.frames = 0

    def write(self, frame_rgb: np.ndarray) -> None:
        """Append one uint8 RGB frame (height, width, 3)."""
        import cv2

        expected = (self.size[1], self.size[0], 3)
        if frame_rgb.shape != expected or frame_rgb.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 {expected}, got {frame_rgb.dtype} "
                             f"{frame_rgb.shape}")
        self._writer.write(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        """Finish the file."""
        self._writer.release()

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_mp4(path: str | Path) -> tuple[np.ndarray, float]:
    """All frames of a video file.

    Returns:
        ``(frames (N, H, W, 3) uint8 RGB, fps [Hz])``.

    Raises:
        OSError: The file is missing or OpenCV cannot decode it.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise OSError(f"{path}: no such video file")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise OSError(f"{path}: OpenCV cannot open it as a video")
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise OSError(f"{path}: no decodable frames")
    return np.stack(frames), fps
