"""Camera sources without ROS: synthetic videos, a fake clock, fake V4L2 and RealSense drivers.

Videos are written in ``tmp_path`` (mp4v .mp4 and MJPG .avi, 64x48): frame i is uniform with
red = 10 i, green = 100, blue = 200, so the frame index and the channel order can be read back
through lossy codecs (their error on flat frames is under 5 levels).
"""

import math
import sys
import types

import cv2
import numpy as np
import pytest

from hv2r_ros.core import camera_sources
from hv2r_ros.core.camera_sources import (
    CameraError, ReadStatus, V4L2Source, VideoFileSource)
from hv2r_ros.core.realsense_source import RealSenseSource
from hv2r_ros.core.errors import ConfigError

FPS = 20.0
STEP = 10  # red level per frame index
FORMATS = [("mp4", "mp4v"), ("avi", "MJPG")]


def write_video(path, fourcc="mp4v", frames=10, fps=FPS):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (64, 48))
    assert writer.isOpened()
    for i in range(frames):
        bgr = np.empty((48, 64, 3), np.uint8)
        bgr[...] = (200, 100, STEP * i)
        writer.write(bgr)
    writer.release()
    return path


def index_of(rgb):
    return round(float(rgb[..., 0].mean()) / STEP)


class FakeClock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture(params=FORMATS, ids=[f for f, _ in FORMATS])
def video(request, tmp_path):
    ext, fourcc = request.param
    return write_video(tmp_path / f"clip.{ext}", fourcc)


def opened(path, **kwargs):
    clock = kwargs.pop("clock", FakeClock())
    source = VideoFileSource(path, clock=clock, **kwargs)
    source.open()
    return source, clock


def test_file_info_and_rgb_order(video):
    source, _ = opened(video)
    info = source.info
    assert (info.width, info.height, info.fps_hz, info.intrinsics) == (64, 48, FPS, None)
    rgb, _, status = source.read()
    assert status is ReadStatus.OK and rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert abs(float(rgb[..., 1].mean()) - 100) < 8 and abs(float(rgb[..., 2].mean()) - 200) < 8
    source.close()


def test_file_paced_by_the_clock(video):
    source, clock = opened(video)
    period = 1.0 / FPS
    rgb, stamp, status = source.read()
    assert (index_of(rgb), stamp, status) == (0, 1000.0, ReadStatus.OK)
    assert source.read()[2] is ReadStatus.NOT_DUE  # same instant
    clock.t += 0.4 * period
    assert source.read()[2] is ReadStatus.NOT_DUE  # nearest scheduled frame is still 0
    clock.t = 1000.0 + 0.6 * period  # an early tick (jitter < half a period) gets frame 1
    rgb, stamp, status = source.read()
    assert (index_of(rgb), stamp, status) == (1, clock.t, ReadStatus.OK)
    clock.t = 1000.0 + 1.3 * period
    assert source.read()[2] is ReadStatus.NOT_DUE  # a late tick does not repeat frame 1
    clock.t = 1000.0 + 2.2 * period
    assert index_of(source.read()[0]) == 2
    assert source.skipped == 0


def test_file_skips_frames_when_behind(video):
    source, clock = opened(video)
    source.read()
    clock.t += 4.0 / FPS  # 4 periods late: frames 1-3 are skipped, 4 is due
    rgb, _, status = source.read()
    assert status is ReadStatus.OK and index_of(rgb) == 4 and source.skipped == 3
    clock.t += 1.0 / FPS
    assert index_of(source.read()[0]) == 5


def test_file_loops(video):
    source, clock = opened(video)
    seen = []
    for k in range(25):
        clock.t = 1000.0 + k / FPS
        rgb, _, status = source.read()
        assert status is ReadStatus.OK
        seen.append(index_of(rgb))
    assert seen == list(range(10)) * 2 + list(range(5))
    assert source.loops == 2


def test_file_loop_while_skipping(video):
    source, clock = opened(video)
    source.read()
    clock.t += 12.0 / FPS  # frame 12 of the schedule = frame 2 of the second pass
    assert index_of(source.read()[0]) == 2 and source.loops == 1 and source.skipped == 11


def test_file_without_loop_ends(video):
    source, clock = opened(video, loop=False)
    for k in range(10):
        clock.t = 1000.0 + k / FPS
        assert source.read()[2] is ReadStatus.OK
    clock.t += 1.0 / FPS
    assert source.read()[:3:2] == (None, ReadStatus.END_OF_STREAM)
    clock.t += 1.0
    assert source.read()[2] is ReadStatus.END_OF_STREAM  # sticky


def test_file_not_realtime_delivers_every_frame(video):
    source, _ = opened(video, realtime=False)
    assert [index_of(source.read()[0]) for _ in range(12)] == list(range(10)) + [0, 1]


def test_file_resyncs_after_a_long_stall(video):
    source, clock = opened(video)
    source.read()
    clock.t += 30.0  # far more than max_skip (1 s of frames): re-anchor, no decode backlog
    assert index_of(source.read()[0]) == 1 and source.resyncs == 1 and source.skipped == 0
    clock.t += 1.0 / FPS
    assert index_of(source.read()[0]) == 2


def test_file_rate_override(video):
    source, clock = opened(video, fps_hz=5.0)
    source.read()
    clock.t += 1.0 / FPS
    assert source.read()[2] is ReadStatus.NOT_DUE
    clock.t = 1000.0 + 0.2
    assert index_of(source.read()[0]) == 1


@pytest.mark.parametrize("content, problem", [
    (None, "not found"),
    (b"", "empty"),
    (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "corrupt"),
], ids=["missing", "empty", "random-bytes"])
@pytest.mark.parametrize("ext", ["mp4", "avi"])
def test_file_errors_name_the_file(tmp_path, content, problem, ext):
    path = tmp_path / f"bad.{ext}"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CameraError, match=problem) as err:
        VideoFileSource(path).open()
    assert str(path) in str(err.value) and isinstance(err.value, ConfigError)


def test_file_truncated_header(tmp_path):
    good = write_video(tmp_path / "good.avi", "MJPG").read_bytes()
    path = tmp_path / "cut.avi"
    path.write_bytes(good[:200])
    with pytest.raises(CameraError) as err:
        VideoFileSource(path).open()
    assert str(path) in str(err.value)


def test_file_without_path():
    with pytest.raises(CameraError, match="path"):
        VideoFileSource("").open()


def test_file_zero_fps(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.avi", "MJPG")

    real = cv2.VideoCapture

    class NoRate:  # a wrapper: subclassing cv2.VideoCapture crashes at interpreter exit
        def __init__(self, *args):
            self.cap = real(*args)

        def get(self, prop):
            return 0.0 if prop == cv2.CAP_PROP_FPS else self.cap.get(prop)

        def __getattr__(self, name):
            return getattr(self.cap, name)

    monkeypatch.setattr(camera_sources.cv2, "VideoCapture", NoRate)
    with pytest.raises(CameraError, match="frame rate") as err:
        VideoFileSource(path).open()
    assert str(path) in str(err.value)
    assert VideoFileSource(path, fps_hz=15.0).open().fps_hz == 15.0  # a given rate works


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
    mono.t = 50.05
    assert math.isclose(source.read()[1], 1000.0 - 0.02, abs_tol=1e-9)
    mono.t = 50.2
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
