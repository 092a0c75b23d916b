"""Intel RealSense colour stream as a camera source (pyrealsense2, an optional dependency).

Same interface as the sources in :mod:`hv2r_ros.core.camera_sources`; pyrealsense2 is imported
only when a device is opened, so the rest of the stack never needs it.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from hv2r_ros.core.camera_sources import (
    REALSENSE_INSTALL, CameraError, Intrinsics, ReadStatus, SourceInfo)


def _import_pyrealsense2():
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        raise CameraError(f"pyrealsense2 is not installed: {REALSENSE_INSTALL} ({exc})",
                          field="source", value="realsense") from exc
    return rs


class RealSenseSource:
    """The colour stream of an Intel RealSense (pyrealsense2, imported on ``open``).

    Capture time: the frame's hardware timestamp with ``global_time_enabled`` (the device clock
    mapped onto the host's epoch clock) [ms -> s]; when the frame is not in the global or
    system time domain, the receipt time. Intrinsics come from the stream profile (distortion
    coefficients passed on as ``plumb_bob``). ``dropped`` counts gaps in frame numbers.

    Args:
        serial: The device's serial number; empty: the first device found.
        width, height: Colour stream size [px]. fps_hz: its rate [Hz].
        clock: Seconds [s] of receipt times (the fallback).
        timeout_s: ``read`` waits this long for a frame [s].
    """

    def __init__(self, serial: str = "", width: int = 640, height: int = 480,
                 fps_hz: float = 30.0, clock: Callable[[], float] = time.time,
                 timeout_s: float = 1.0) -> None:
        self.serial, self.width, self.height = str(serial), int(width), int(height)
        self.fps_hz, self.clock, self.timeout_s = float(fps_hz) or 30.0, clock, timeout_s
        self.info: SourceInfo | None = None
        self._rs = self._pipeline = self._frame = None
        self._last_number: int | None = None
        self.delivered = self.dropped = self.failed = 0

    def open(self) -> SourceInfo:
        """Find the device, enable global time, start an rgb8 colour stream.

        Raises:
            CameraError: pyrealsense2 missing (says how to install it), no device, the serial
                not connected (lists the serials found), or the stream cannot start.
        """
        rs = self._rs = _import_pyrealsense2()
        devices = {d.get_info(rs.camera_info.serial_number): d
                   for d in rs.context().query_devices()}
        if not devices:
            raise CameraError("no RealSense device found (check the USB cable and udev rules)",
                              field="serial", value=self.serial or None)
        if self.serial and self.serial not in devices:
            raise CameraError("RealSense device not connected", field="serial",
                              value=self.serial, choices=sorted(devices))
        serial = self.serial or sorted(devices)[0]
        for sensor in devices[serial].query_sensors():
            if sensor.supports(rs.option.global_time_enabled):
                sensor.set_option(rs.option.global_time_enabled, 1.0)
        config = rs.config()
        config.enable_device(serial)
        config.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8,
                             int(round(self.fps_hz)))
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(config)
        except RuntimeError as exc:
            raise CameraError(f"cannot start the colour stream {self.width}x{self.height} at "
                              f"{self.fps_hz:g} Hz: {exc}", field="serial", value=serial) from exc
        self._pipeline = pipeline
        i = profile.get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics()
        intrinsics = Intrinsics(float(i.fx), float(i.fy), float(i.ppx), float(i.ppy),
                                distortion=tuple(float(c) for c in list(i.coeffs)[:5]))
        self.info = SourceInfo(int(i.width), int(i.height), self.fps_hz, intrinsics, serial,
                               "hardware")
        return self.info

    def read(self) -> tuple[np.ndarray | None, float, ReadStatus]:
        """Wait up to ``timeout_s`` for the next colour frame; its capture time [s]."""
        if self._pipeline is None:
            return None, self.clock(), ReadStatus.READ_FAILED
        rs = self._rs
        ok, frames = self._pipeline.try_wait_for_frames(int(self.timeout_s * 1000))
        receipt = self.clock()
        color = frames.get_color_frame() if ok else None
        if not color:
            self.failed += 1
            return None, receipt, ReadStatus.READ_FAILED
        self._frame = color  # keeps the buffer behind the returned view alive
        domain = color.get_frame_timestamp_domain()
        capture = receipt
        if domain in (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time):
            capture = float(color.get_timestamp()) * 1e-3
        number = int(color.get_frame_number())
        if self._last_number is not None and number > self._last_number + 1:
            self.dropped += number - self._last_number - 1
        self._last_number = number
        self.delivered += 1
        return np.asanyarray(color.get_data()), capture, ReadStatus.OK

    def close(self) -> None:
        """Stop the stream."""
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None
            self._frame = None
