"""Camera device sources without ROS or hardware: fake V4L2 (OpenCV) and RealSense drivers."""

import math
import sys
import types

import cv2
import numpy as np
import pytest
from fake_clock import FakeClock

from hv2r_ros.core import camera_sources
from hv2r_ros.core.camera_sources import CameraError, ReadStatus, V4L2Source
from hv2r_ros.core.realsense_source import RealSenseSource

# --- V4L2 ------------------------------------------------------------------------------------

def test_v4l2_missing_device_lists_devices(monkeypatch):
    monkeypatch.setattr(camera_sources.glob, "glob", lambda _: ["/dev/video2", "/dev/video0"])
    with pytest.raises(CameraError) as err:
        V4L2Source(97).open()
    text = str(err.value)
    assert "/dev/video97" in text and "/dev/video0, /dev/video2" in text


def test_v4l2_no_devices_at_all(monkeypatch):
    monkeypatch.setattr(camera_sources.glob, "glob", lambda _: [])
    with pytest.raises(CameraError, match="none"):
        V4L2Source("/dev/video97").open()


class FakeCapture:
    """cv2.VideoCapture on V4L2: POS_MSEC is the driver's monotonic buffer timestamp."""

    opened = True
    stamps_ms: list = []

    def __init__(self, path, api):
        assert api == cv2.CAP_V4L2
        self.path, self.props, self.ts_ms = path, {}, 0.0

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        self.props[prop] = value
        return True

    def get(self, prop):
        defaults = {cv2.CAP_PROP_FRAME_WIDTH: 64, cv2.CAP_PROP_FRAME_HEIGHT: 48,
                    cv2.CAP_PROP_FPS: 20.0, cv2.CAP_PROP_POS_MSEC: self.ts_ms}
        return float(self.props.get(prop, defaults[prop])) if prop != cv2.CAP_PROP_POS_MSEC \
            else self.ts_ms

    def read(self):
        if not self.stamps_ms:
            return False, None
        self.ts_ms = self.stamps_ms.pop(0)
        bgr = np.zeros((48, 64, 3), np.uint8)
        bgr[..., 2] = 255
        return True, bgr

    def release(self):
        pass


@pytest.fixture
def fake_v4l2(monkeypatch):
    monkeypatch.setattr(camera_sources.glob, "glob", lambda _: ["/dev/video3"])
    monkeypatch.setattr(camera_sources.cv2, "VideoCapture", FakeCapture)
    monkeypatch.setattr(FakeCapture, "opened", True)
    return FakeCapture


def test_v4l2_driver_timestamps(fake_v4l2):
    mono = FakeClock(50.0)
    source = V4L2Source("3", 64, 48, 20.0, clock=FakeClock(1000.0), monotonic=mono)
    assert source.device == "/dev/video3"
    info = source.open()
    assert (info.width, info.height, info.fps_hz) == (64, 48, 20.0)
    # Frame captured 20 ms before receipt; then one at 50 ms spacing; then a gap of 3 periods.
    fake_v4l2.stamps_ms = [49980.0, 50030.0, 50180.0, 0.0, 50180.0 - 5000.0]
    rgb, capture, status = source.read()
    assert status is ReadStatus.OK and rgb[0, 0].tolist() == [255, 0, 0]
    assert math.isclose(capture, 999.98, abs_tol=1e-9) and source.info.timestamp == "driver"
    mono.now = 50.05
    assert math.isclose(source.read()[1], 1000.0 - 0.02, abs_tol=1e-9)
    mono.now = 50.2
    source.read()
    assert source.dropped == 2
    assert source.read()[1] == 1000.0 and source.info.timestamp == "receipt"  # no timestamp
    assert source.read()[1] == 1000.0  # implausibly old: another clock domain
    assert source.read()[:3:2] == (None, ReadStatus.READ_FAILED) and source.failed == 1


def test_v4l2_cannot_open(fake_v4l2, monkeypatch):
    monkeypatch.setattr(FakeCapture, "opened", False)
    with pytest.raises(CameraError, match="video") as err:
        V4L2Source("/dev/video3").open()
    assert "/dev/video3" in str(err.value)


# --- RealSense (fake pyrealsense2) -------------------------------------------------------------

def fake_pyrealsense2(serials, domain="global_time"):
    rs = types.ModuleType("pyrealsense2")
    enum = types.SimpleNamespace
    rs.camera_info = enum(serial_number="serial_number")
    rs.option = enum(global_time_enabled="global_time_enabled")
    rs.stream = enum(color="color")
    rs.format = enum(rgb8="rgb8")
    rs.timestamp_domain = enum(global_time="global_time", system_time="system_time",
                               hardware_clock="hardware_clock")
    rs.log = {"options": [], "config": [], "stopped": 0}

    class Sensor:
        def supports(self, option):
            return option == rs.option.global_time_enabled

        def set_option(self, option, value):
            rs.log["options"].append((option, value))

    class Device:
        def __init__(self, serial):
            self.serial = serial

        def get_info(self, what):
            assert what == rs.camera_info.serial_number
            return self.serial

        def query_sensors(self):
            return [Sensor()]

    class Context:
        def query_devices(self):
            return [Device(s) for s in serials]

    class Config:
        def enable_device(self, serial):
            rs.log["config"].append(("device", serial))

        def enable_stream(self, *args):
            rs.log["config"].append(("stream",) + args)

    intrinsics = enum(width=64, height=48, fx=50.0, fy=51.0, ppx=32.0, ppy=24.0,
                      coeffs=[0.1, 0.0, 0.0, 0.0, 0.0])
    profile = enum(get_stream=lambda s: enum(
        as_video_stream_profile=lambda: enum(get_intrinsics=lambda: intrinsics)))

    class ColorFrame:
        def __init__(self, number):
            self.number = number

        def get_frame_timestamp_domain(self):
            return getattr(rs.timestamp_domain, domain)

        def get_timestamp(self):
            return 1.7e12 + 50.0 * self.number  # ms

        def get_frame_number(self):
            return self.number

        def get_data(self):
            return np.full((48, 64, 3), self.number, np.uint8)

    class Pipeline:
        numbers = [5, 6, 9]

        def start(self, config):
            return profile

        def try_wait_for_frames(self, timeout_ms):
            if not self.numbers:
                return False, None
            frame = ColorFrame(self.numbers.pop(0))
            return True, enum(get_color_frame=lambda: frame)

        def stop(self):
            rs.log["stopped"] += 1

    rs.context, rs.config, rs.pipeline = Context, Config, Pipeline
    return rs


def test_realsense_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)  # import raises ImportError
    with pytest.raises(CameraError) as err:
        RealSenseSource("123").open()
    assert "pip install pyrealsense2" in str(err.value) and "libusb-1.0-0" in str(err.value)


def test_realsense_no_device(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", fake_pyrealsense2([]))
    with pytest.raises(CameraError, match="no RealSense device found"):
        RealSenseSource().open()


def test_realsense_wrong_serial_lists_serials(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", fake_pyrealsense2(["222", "111"]))
    with pytest.raises(CameraError) as err:
        RealSenseSource("999").open()
    assert "999" in str(err.value) and "valid choices: 111, 222" in str(err.value)


def test_realsense_stream(monkeypatch):
    rs = fake_pyrealsense2(["222", "111"])
    monkeypatch.setitem(sys.modules, "pyrealsense2", rs)
    source = RealSenseSource("", 64, 48, 30.0, clock=FakeClock(5.0))
    info = source.open()
    assert info.name == "111" and ("device", "111") in rs.log["config"]
    assert ("stream", "color", 64, 48, "rgb8", 30) in rs.log["config"]
    assert rs.log["options"] == [("global_time_enabled", 1.0)]
    k = info.intrinsics
    assert (k.fx, k.fy, k.cx, k.cy, k.distortion[0]) == (50.0, 51.0, 32.0, 24.0, 0.1)
    rgb, capture, status = source.read()
    assert status is ReadStatus.OK and rgb.shape == (48, 64, 3) and rgb[0, 0, 0] == 5
    assert math.isclose(capture, 1.7e9 + 0.25)  # ms -> s
    source.read()
    source.read()
    assert source.dropped == 2  # frames 7 and 8 never came
    assert source.read()[2] is ReadStatus.READ_FAILED
    source.close()
    assert rs.log["stopped"] == 1


def test_realsense_device_clock_falls_back_to_receipt(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", fake_pyrealsense2(["1"], "hardware_clock"))
    source = RealSenseSource("1", clock=FakeClock(5.0))
    source.open()
    assert source.read()[1] == 5.0
