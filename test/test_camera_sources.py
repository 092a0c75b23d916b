"""Video-file camera source without ROS: synthetic videos and a fake clock (devices:
test_camera_devices.py).

Videos are written in ``tmp_path`` (mp4v .mp4 and MJPG .avi, 64x48): frame i is uniform with
red = 10 i, green = 100, blue = 200, so the frame index and the channel order can be read back
through lossy codecs (their error on flat frames is under 5 levels).
"""

import cv2
import numpy as np
import pytest

from hv2r_ros.core import camera_sources
from hv2r_ros.core.camera_sources import (
    CameraError, ReadStatus, VideoFileSource)
from hv2r_ros.core.errors import ConfigError
from fake_clock import FakeClock

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


@pytest.fixture(params=FORMATS, ids=[f for f, _ in FORMATS])
def video(request, tmp_path):
    ext, fourcc = request.param
    return write_video(tmp_path / f"clip.{ext}", fourcc)


def opened(path, **kwargs):
    clock = kwargs.pop("clock", FakeClock(1000.0))
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
    clock.now += 0.4 * period
    assert source.read()[2] is ReadStatus.NOT_DUE  # nearest scheduled frame is still 0
    clock.now = 1000.0 + 0.6 * period  # an early tick (jitter < half a period) gets frame 1
    rgb, stamp, status = source.read()
    assert (index_of(rgb), stamp, status) == (1, clock.now, ReadStatus.OK)
    clock.now = 1000.0 + 1.3 * period
    assert source.read()[2] is ReadStatus.NOT_DUE  # a late tick does not repeat frame 1
    clock.now = 1000.0 + 2.2 * period
    assert index_of(source.read()[0]) == 2
    assert source.skipped == 0


def test_file_skips_frames_when_behind(video):
    source, clock = opened(video)
    source.read()
    clock.now += 4.0 / FPS  # 4 periods late: frames 1-3 are skipped, 4 is due
    rgb, _, status = source.read()
    assert status is ReadStatus.OK and index_of(rgb) == 4 and source.skipped == 3
    clock.now += 1.0 / FPS
    assert index_of(source.read()[0]) == 5


def test_file_loops(video):
    source, clock = opened(video)
    seen = []
    for k in range(25):
        clock.now = 1000.0 + k / FPS
        rgb, _, status = source.read()
        assert status is ReadStatus.OK
        seen.append(index_of(rgb))
    assert seen == list(range(10)) * 2 + list(range(5))
    assert source.loops == 2


def test_file_loop_while_skipping(video):
    source, clock = opened(video)
    source.read()
    clock.now += 12.0 / FPS  # frame 12 of the schedule = frame 2 of the second pass
    assert index_of(source.read()[0]) == 2 and source.loops == 1 and source.skipped == 11


def test_file_without_loop_ends(video):
    source, clock = opened(video, loop=False)
    for k in range(10):
        clock.now = 1000.0 + k / FPS
        assert source.read()[2] is ReadStatus.OK
    clock.now += 1.0 / FPS
    assert source.read()[:3:2] == (None, ReadStatus.END_OF_STREAM)
    clock.now += 1.0
    assert source.read()[2] is ReadStatus.END_OF_STREAM  # sticky


def test_file_not_realtime_delivers_every_frame(video):
    source, _ = opened(video, realtime=False)
    assert [index_of(source.read()[0]) for _ in range(12)] == list(range(10)) + [0, 1]


def test_file_resyncs_after_a_long_stall(video):
    source, clock = opened(video)
    source.read()
    clock.now += 30.0  # far more than max_skip (1 s of frames): re-anchor, no decode backlog
    assert index_of(source.read()[0]) == 1 and source.resyncs == 1 and source.skipped == 0
    clock.now += 1.0 / FPS
    assert index_of(source.read()[0]) == 2


def test_file_rate_override(video):
    source, clock = opened(video, fps_hz=5.0)
    source.read()
    clock.now += 1.0 / FPS
    assert source.read()[2] is ReadStatus.NOT_DUE
    clock.now = 1000.0 + 0.2
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
