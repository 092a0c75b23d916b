"""Camera sources for the ``camera`` node: a video file, a V4L2 device, an Intel RealSense.

One interface: ``open()`` (raises ``CameraError`` naming the file or device and the problem),
``read() -> (rgb | None, capture_time_s, ReadStatus)``, ``close()`` and ``info`` (size, rate,
intrinsics when known). ``rgb`` is (H, W, 3) uint8 RGB, valid until the next ``read`` (buffers
are reused). ``read`` never raises. Capture times are on the injectable ``clock`` [s] (default
``time.time``, the epoch clock ROS system time also uses).

Pacing: ``VideoFileSource.read`` returns the frame due *now*, so a timer at the file's rate
drives it: the frame whose scheduled time (``t0 + i / fps``, ``t0`` = first read) is nearest to
now, skipping frames when behind (``skipped`` counts them), nothing (``NOT_DUE``) when the
nearest frame was already delivered. A timer's jitter of up to half a period neither drops
nor repeats a frame. Behind by more than ``max_skip`` frames (a stalled process, a clock
jump), the schedule is re-anchored instead of decoding through the backlog (``resyncs``).
Camera ``read``s block until the device delivers the next frame.
"""

from __future__ import annotations

import dataclasses
import enum
import glob
import math
import os
import time
from typing import Callable

import cv2
import numpy as np

from hv2r_ros.core.errors import ConfigError

__all__ = [
    "CameraError", "Intrinsics", "ReadStatus", "SourceInfo", "V4L2Source",
    "VideoFileSource", "find_video_devices",
]

REALSENSE_INSTALL = ("install it with `pip install pyrealsense2` (on Debian/Ubuntu also "
                     "`apt install libusb-1.0-0`)")


class CameraError(ConfigError):
    """A camera source cannot be opened: missing or unreadable file, device or driver."""


class ReadStatus(enum.Enum):
    """What one ``read`` gave."""

    OK = "frame"
    NOT_DUE = "no new frame due yet"
    END_OF_STREAM = "end of the file (loop off)"
    READ_FAILED = "the device delivered no frame"


@dataclasses.dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics [px] and distortion (``sensor_msgs/CameraInfo`` conventions)."""

    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "plumb_bob"
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    """What an opened source delivers.

    Attributes:
        width, height: Frame size [px].
        fps_hz: Frame rate [Hz].
        intrinsics: Known intrinsics, or None.
        name: The file, device or serial, for logs and diagnostics.
        timestamp: Where capture times come from: ``delivery`` (file), ``driver`` / ``receipt``
            (V4L2), ``hardware`` (RealSense global time).
    """

    width: int
    height: int
    fps_hz: float
    intrinsics: Intrinsics | None
    name: str
    timestamp: str


class VideoFileSource:
    """Frames of a video file, paced in real time against ``clock``, optionally looping.

    Args:
        path: The video file (anything OpenCV's FFmpeg backend decodes).
        loop: Start over at the end; otherwise ``read`` returns ``END_OF_STREAM`` from then on.
        realtime: Pace by ``clock``; False delivers the next frame on every ``read``.
        clock: Seconds [s]; a frame's capture time is when ``read`` delivers it.
        fps_hz: Play at this rate [Hz] instead of the file's (0: the file's).
        max_skip: Frames skipped at most in one read before re-anchoring (default: 1 s' worth).
    """

    def __init__(self, path: str | os.PathLike, loop: bool = True, realtime: bool = True,
                 clock: Callable[[], float] = time.time, fps_hz: float = 0.0,
                 max_skip: int | None = None) -> None:
        self.path, self.loop, self.realtime, self.clock = os.fspath(path), loop, realtime, clock
        self._fps_override, self._max_skip = float(fps_hz), max_skip
        self.info: SourceInfo | None = None
        self._cap = self._pending = self._rgb = None
        self._t0: float | None = None
        self._last = -1  # schedule index of the last delivered frame
        self._ended = False
        self.delivered = self.skipped = self.loops = self.resyncs = 0

    def _capture(self):
        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            cap.release()
            raise CameraError("OpenCV cannot open it as a video (corrupt or unsupported format)",
                              file=self.path)
        ok, bgr = cap.read()
        if not ok or bgr is None:
            cap.release()
            raise CameraError("contains no decodable video frame (corrupt or truncated?)",
                              file=self.path)
        return cap, bgr

    def open(self) -> SourceInfo:
        """Open the file and decode its first frame.

        Raises:
            CameraError: No path, a missing or empty file, no decodable frame, no frame rate.
        """
        if not self.path:
            raise CameraError("no video file given", field="path")
        if not os.path.isfile(self.path):
            raise CameraError("video file not found", file=self.path)
        if os.path.getsize(self.path) == 0:
            raise CameraError("video file is empty (0 bytes)", file=self.path)
        self._cap, self._pending = self._capture()
        fps = self._fps_override or float(self._cap.get(cv2.CAP_PROP_FPS))
        if not math.isfinite(fps) or fps <= 0.0:
            self.close()
            raise CameraError("the file has no frame rate: give one (fps_hz)", file=self.path,
                              value=fps)
        height, width = self._pending.shape[:2]
        self.info = SourceInfo(width, height, fps, None, self.path, "delivery")
        if self._max_skip is None:
            self._max_skip = max(1, round(fps))
        return self.info

    def _next_bgr(self, decode: bool):
        """The next frame of the file (looping), or None at the end; decodes only if asked."""
        for _ in range(2):
            if self._pending is not None:
                bgr, self._pending = self._pending, None
                return bgr
            if decode:
                ok, bgr = self._cap.read()
            else:
                ok, bgr = self._cap.grab(), True
            if ok:
                return bgr
            if not self.loop:
                return None
            self._cap.release()  # reopening is more reliable than seeking back on every codec
            try:
                self._cap, self._pending = self._capture()
            except CameraError:  # the file changed under us
                return None
            self.loops += 1
        return None

    def read(self) -> tuple[np.ndarray | None, float, ReadStatus]:
        """The frame due now (see the module docstring), its delivery time [s], the status."""
        now = self.clock()
        if self._cap is None or self._ended:
            return None, now, ReadStatus.END_OF_STREAM
        if not self.realtime:
            due = self._last + 1
        else:
            if self._t0 is None:
                self._t0 = now
            due = math.floor((now - self._t0) * self.info.fps_hz + 0.5)
            if due <= self._last:
                return None, now, ReadStatus.NOT_DUE
            if due - self._last - 1 > self._max_skip:
                self._t0 = now - (self._last + 1) / self.info.fps_hz
                due, self.resyncs = self._last + 1, self.resyncs + 1
        for _ in range(due - self._last - 1):
            if self._next_bgr(decode=False) is None:
                break
            self.skipped += 1
        bgr = self._next_bgr(decode=True)
        if bgr is None:
            self._ended = True
            return None, now, ReadStatus.END_OF_STREAM
        self._last = due
        self.delivered += 1
        self._rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=self._rgb)
        return self._rgb, now, ReadStatus.OK

    def close(self) -> None:
        """Release the file."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def find_video_devices() -> list[str]:
    """The V4L2 device nodes present (``/dev/video*``), sorted."""
    return sorted(glob.glob("/dev/video*"))


class V4L2Source:
    """A V4L2 camera through OpenCV's ``CAP_V4L2`` backend.

    Capture time: OpenCV's V4L2 backend reports the driver's buffer timestamp (``struct
    timeval``) as ``CAP_PROP_POS_MSEC``: not a position, and on ``CLOCK_MONOTONIC`` (UVC and most
    drivers), not the epoch. It is converted to ``clock`` as ``receipt - (monotonic() - ts)``
    when that age is plausible (in [0, ``max_driver_age_s``]); otherwise (0, another clock
    domain) the capture time is the receipt time, with no correction (``info.timestamp``
    says which was used last). ``dropped`` counts gaps of more than 1.5 periods between
    driver timestamps.

    Args:
        device: Index (``0``, ``"0"``) or path (``/dev/video0``, ``/dev/v4l/by-id/...``).
        width, height: Requested size [px] (0: the driver's); the driver may pick another.
        fps_hz: Requested rate [Hz] (0: the driver's).
        clock: Seconds [s] of capture times.
        monotonic: The driver's clock [s] (``time.monotonic`` is ``CLOCK_MONOTONIC`` on Linux).
    """

    def __init__(self, device: int | str, width: int = 640, height: int = 480,
                 fps_hz: float = 30.0, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 max_driver_age_s: float = 1.0) -> None:
        text = str(device).strip()
        self.device = f"/dev/video{int(text)}" if text.isdigit() else text
        self.width, self.height, self.fps_hz = int(width), int(height), float(fps_hz)
        self.clock, self.monotonic, self.max_driver_age_s = clock, monotonic, max_driver_age_s
        self.info: SourceInfo | None = None
        self._cap = self._rgb = None
        self._last_ts_s: float | None = None
        self.delivered = self.dropped = self.failed = 0

    def open(self) -> SourceInfo:
        """Open the device and set size and rate.

        Raises:
            CameraError: The device does not exist (the message lists those found), cannot be
                opened or delivers no frame.
        """
        found = find_video_devices()
        if self.device not in found and not os.path.exists(self.device):
            raise CameraError(f"V4L2 device not found; devices present: "
                              f"{', '.join(found) or 'none (no /dev/video*)'}",
                              field="device", value=self.device)
        cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise CameraError("cannot open the V4L2 device (busy, not a capture device, or no "
                              "permission: is the user in group 'video'?)",
                              field="device", value=self.device)
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width),
                            (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                            (cv2.CAP_PROP_FPS, self.fps_hz)):
            if value > 0:
                cap.set(prop, value)
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        fps = fps if math.isfinite(fps) and fps > 0.0 else (self.fps_hz or 30.0)
        self.info = SourceInfo(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                               int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), fps, None, self.device,
                               "receipt")
        return self.info

    def read(self) -> tuple[np.ndarray | None, float, ReadStatus]:
        """Block for the next frame; its capture time [s] (see the class docstring)."""
        if self._cap is None:
            return None, self.clock(), ReadStatus.READ_FAILED
        ok, bgr = self._cap.read()
        receipt, mono = self.clock(), self.monotonic()
        if not ok or bgr is None:
            self.failed += 1
            return None, receipt, ReadStatus.READ_FAILED
        ts_s = float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) * 1e-3
        age = mono - ts_s
        capture, source = receipt, "receipt"
        if ts_s > 0.0 and 0.0 <= age <= self.max_driver_age_s:
            capture, source = receipt - age, "driver"
            if self._last_ts_s is not None:
                gap_frames = (ts_s - self._last_ts_s) * self.info.fps_hz
                if gap_frames > 1.5:
                    self.dropped += int(round(gap_frames)) - 1
            self._last_ts_s = ts_s
        if source != self.info.timestamp:
            self.info = dataclasses.replace(self.info, timestamp=source)
        self.delivered += 1
        self._rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=self._rgb)
        return self._rgb, capture, ReadStatus.OK

    def close(self) -> None:
        """Release the device."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
