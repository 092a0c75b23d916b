"""camera: publishes a video file, a V4L2 camera or an Intel RealSense as rgb8 images.

Publications:
    <camera_name>/image_raw (sensor_msgs/Image, rgb8, sensor QoS depth ``sensor_qos_depth``):
        ``header.stamp`` = capture time on the node's clock: delivery time for files, the
        driver's buffer timestamp for V4L2 (receipt time when it has none), the hardware
        timestamp (global time) for RealSense. One message buffer, reused.
    <camera_name>/camera_info (sensor_msgs/CameraInfo, same QoS and stamp): only when the
        intrinsics are known: RealSense, or all of ``fx_px, fy_px, cx_px, cy_px`` set (they
        override the device's). Files and V4L2 publish none by default: a guessed pinhole
        would look calibrated and is not.
    diagnostics (diagnostic_msgs/DiagnosticArray, 1 Hz): frame rate, capture-to-publication
        latency, frames skipped (file behind schedule) or dropped (camera gaps), empty reads.
Parameters (``PARAMS``): source (file | v4l2 | realsense), path, device, serial, width_px,
    height_px, fps_hz [Hz], loop, frame_id, camera_name, sensor_qos_depth, fx_px, fy_px, cx_px,
    cy_px [px].
A timer at the source's rate reads it (a file is paced by the clock: a tick publishes the frame
due then, see ``hv2r_ros.core.camera_sources``). For files the timer starts on the clock's grid
of frame periods, so several file cameras at one rate publish together, as synchronised
cameras do (a policy's observation is as old as its oldest camera frame). A source that cannot
open (missing file or device, no driver) is logged and ``main`` exits with code 1 before
anything is published.
"""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from hv2r_ros.core.camera_sources import (
    Intrinsics, ReadStatus, V4L2Source, VideoFileSource)
from hv2r_ros.core.realsense_source import RealSenseSource
from hv2r_ros.core.stats import StageStats
from hv2r_ros.ros.diagnostics import diagnostic_array, stage_status
from hv2r_ros.ros.image import array_to_image
from hv2r_ros.ros.params import ParamSpec, add_validator, declare
from hv2r_ros.ros.qos import SENSOR_DEPTH_MAX, diagnostics_qos, sensor_qos
from hv2r_ros.ros.spin import run_node

NAME = "camera"
DIAGNOSTICS_PERIOD_S = 1.0
_PX = "[px]; 0: unknown (no camera_info unless fx, fy, cx, cy are all set)"
PARAMS = (
    ParamSpec("source", "str", "file", "Frame source", choices=("file", "v4l2", "realsense"),
              read_only=True),
    ParamSpec("path", "str", "", "Video file (source file)", read_only=True),
    ParamSpec("device", "str", "/dev/video0", "V4L2 device: index or path (source v4l2)",
              read_only=True),
    ParamSpec("serial", "str", "", "RealSense serial number; empty: the first device",
              read_only=True),
    ParamSpec("width_px", "int", 640, "Camera image width [px] (cameras; files keep their size)",
              min=0, max=8192, read_only=True),
    ParamSpec("height_px", "int", 480, "Camera image height [px] (cameras; files keep theirs)",
              min=0, max=8192, read_only=True),
    ParamSpec("fps_hz", "float", 0.0, "Frame rate [Hz]; 0: the file's own rate, 30 for cameras",
              min=0.0, max=1000.0, read_only=True),
    ParamSpec("loop", "bool", True, "Start the file over at its end", read_only=True),
    ParamSpec("frame_id", "str", "camera_optical_frame", "header.frame_id (optical frame)",
              read_only=True),
    ParamSpec("camera_name", "str", "camera", "Topic prefix: <camera_name>/image_raw",
              read_only=True),
    ParamSpec("sensor_qos_depth", "int", 1, "Publisher queue depth", min=1,
              max=SENSOR_DEPTH_MAX, read_only=True),
    ParamSpec("fx_px", "float", 0.0, f"Focal length x {_PX}", min=0.0, read_only=True),
    ParamSpec("fy_px", "float", 0.0, f"Focal length y {_PX}", min=0.0, read_only=True),
    ParamSpec("cx_px", "float", 0.0, f"Principal point x {_PX}", min=0.0, read_only=True),
    ParamSpec("cy_px", "float", 0.0, f"Principal point y {_PX}", min=0.0, read_only=True),
)


def make_source(p: dict, clock):
    """The core source named by the parameters ``p`` (not opened)."""
    fps = p["fps_hz"]
    if p["source"] == "file":
        return VideoFileSource(p["path"], loop=p["loop"], clock=clock, fps_hz=fps)
    size = (p["width_px"], p["height_px"], fps or 30.0)
    if p["source"] == "v4l2":
        return V4L2Source(p["device"], *size, clock=clock)
    return RealSenseSource(p["serial"], *size, clock=clock)


def camera_info(k: Intrinsics, width: int, height: int, frame_id: str) -> CameraInfo:
    """An unrectified ``CameraInfo`` (K, identity R, P = [K | 0]) from pinhole intrinsics."""
    msg = CameraInfo(width=width, height=height, distortion_model=k.distortion_model)
    msg.header.frame_id = frame_id
    msg.d = list(k.distortion)
    msg.k = [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


class CameraNode(Node):
    """Source -> rgb8 Image (+ CameraInfo) at the source's rate."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NAME, **kwargs)
        p = declare(self, PARAMS)
        add_validator(self, PARAMS)
        self.frame_id, name = p["frame_id"], p["camera_name"]
        self.source = make_source(p, self._now_s)
        info = self.source.open()  # CameraError: main logs it and exits non-zero
        intrinsics = info.intrinsics
        given = [p[k] for k in ("fx_px", "fy_px", "cx_px", "cy_px")]
        if all(v > 0.0 for v in given):
            intrinsics = Intrinsics(*given)
        self.info_msg = None if intrinsics is None else camera_info(
            intrinsics, info.width, info.height, self.frame_id)
        qos = sensor_qos(p["sensor_qos_depth"])
        self.image_pub = self.create_publisher(Image, f"{name}/image_raw", qos)
        self.info_pub = None if self.info_msg is None else self.create_publisher(
            CameraInfo, f"{name}/camera_info", qos)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics",
                                                     diagnostics_qos())
        self.image_msg = Image()
        self.stats = StageStats()
        self.empty_reads = 0
        period_s = 1.0 / info.fps_hz
        self.timer = None
        delay_s = period_s - self._now_s() % period_s if p["source"] == "file" else 0.0
        self._start_timer = self.create_timer(max(delay_s, 1e-4),
                                              lambda: self._start(period_s))
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self.get_logger().info(
            f"{p['source']} {info.name}: {info.width}x{info.height} at {info.fps_hz:g} Hz -> "
            f"'{self.image_pub.topic_name}' (stamps: {info.timestamp}, camera_info: "
            f"{'yes' if self.info_msg else 'no'})")

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _start(self, period_s: float) -> None:
        """First tick on the period grid; from here a timer at the source's rate."""
        self._start_timer.cancel()
        if self.timer is None:
            self.timer = self.create_timer(period_s, self._tick)
            self._tick()

    def _tick(self) -> None:
        rgb, capture_s, status = self.source.read()
        if rgb is None:
            if status is not ReadStatus.NOT_DUE:
                self.empty_reads += 1
                self.get_logger().warning(f"{self.source.info.name}: {status.value}",
                                          throttle_duration_sec=5.0)
            return
        msg = array_to_image(rgb, "rgb8", capture_s, self.frame_id, out_msg=self.image_msg)
        self.image_pub.publish(msg)
        if self.info_pub is not None:
            self.info_msg.header.stamp = msg.header.stamp
            self.info_pub.publish(self.info_msg)
        self.stats.record(time.monotonic(), self._now_s() - capture_s)

    def _publish_diagnostics(self) -> None:
        src = self.source
        extra = [("source", src.info.name), ("timestamps", src.info.timestamp),
                 ("width_px", str(src.info.width)), ("height_px", str(src.info.height)),
                 ("expected_rate_hz", f"{src.info.fps_hz:.2f}"),
                 ("empty_reads", str(self.empty_reads))]
        extra += [(key, str(getattr(src, key))) for key in ("skipped", "dropped", "loops",
                                                            "resyncs") if hasattr(src, key)]
        status = stage_status(f"{NAME}: {self.image_pub.topic_name}",
                              self.stats.summary(time.monotonic()), src.info.name,
                              stale_after_s=max(1.0, 3.0 / src.info.fps_hz), extra=extra)
        self.diagnostics_pub.publish(diagnostic_array([status], self._now_s()))

    def destroy_node(self) -> None:
        self.source.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Console entry point ``camera``; exits 1 when the source cannot be opened."""
    run_node(CameraNode, args, name=NAME)


if __name__ == "__main__":
    main()
