"""camera node on real rclpy: a generated video file published as rgb8 images at its rate.

Each in-process test has its own ``rclpy.Context`` and ``ROS_DOMAIN_ID``; node and subscriber
share one executor, so receipt times and stamps are on one clock. The file source stamps a
frame with the time it is read, so ``receipt - stamp`` is the publish-to-callback delay within
one process: asserted in [0, ``LATENCY_TOL_S``] (generous for a loaded 2-core machine). The
rate is measured from the stamps (they follow the timer, not the delivery).
"""

import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

import ros_testing
from hv2r_ros.core.camera_sources import CameraError
from hv2r_ros.nodes.camera import CameraNode
from hv2r_ros.ros.image import image_to_array
from hv2r_ros.ros.qos import sensor_qos
from hv2r_ros.ros.stamps import to_seconds

pytestmark = pytest.mark.ros

FPS = 20.0
FRAMES = 30
LATENCY_TOL_S = 0.1  # publish -> callback in one process, loaded 2-core machine [s]
RATE_TOL = 0.15  # relative
DISCOVERY_S = 8.0


def write_video(path):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (64, 48))
    for i in range(FRAMES):
        writer.write(np.full((48, 64, 3), (200, 100, 8 * i), np.uint8))
    writer.release()
    return str(path)


def domain_env():
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(ros_testing.next_domain_id())
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env


@pytest.fixture
def context():
    os.environ.update(domain_env())
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def params(**values):
    return [Parameter(name, value=value) for name, value in values.items()]


def test_publishes_frames_at_the_file_rate(context, tmp_path):
    path = write_video(tmp_path / "clip.mp4")
    node = CameraNode(context=context, parameter_overrides=params(
        path=path, camera_name="wrist_camera", frame_id="wrist_optical", fx_px=50.0,
        fy_px=50.0, cx_px=32.0, cy_px=24.0))
    sub = Node("camera_test_subscriber", context=context)
    images, infos, diagnostics = [], [], []
    now = lambda: sub.get_clock().now().nanoseconds * 1e-9  # noqa: E731

    def on_image(msg):
        pixels, _ = image_to_array(msg)
        images.append((now(), to_seconds(msg.header.stamp), msg, round(
            float(pixels[..., 0].mean()) / 8.0)))

    sub.create_subscription(Image, "wrist_camera/image_raw", on_image, sensor_qos(5))
    sub.create_subscription(CameraInfo, "wrist_camera/camera_info", infos.append, sensor_qos(5))
    sub.create_subscription(DiagnosticArray, "diagnostics", diagnostics.append, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(sub)
    try:
        deadline = time.monotonic() + DISCOVERY_S
        while node.image_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert node.image_pub.get_subscription_count() == 1, "no discovery"
        images.clear()
        end = time.monotonic() + 2.2
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        sub.destroy_node()
        node.destroy_node()

    assert len(images) >= 30, len(images)
    receipts, stamps, msgs, indices = zip(*images)
    msg = msgs[-1]
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("rgb8", 64, 48, 192)
    assert msg.header.frame_id == "wrist_optical"
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "stamps must increase"
    delays = np.array(receipts) - np.array(stamps)
    assert delays.min() >= 0.0 and delays.max() <= LATENCY_TOL_S, delays
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert abs(rate - FPS) <= RATE_TOL * FPS, rate
    steps = [(b - a) % FRAMES for a, b in zip(indices, indices[1:])]
    assert sum(s == 1 for s in steps) >= 0.9 * len(steps), steps  # in order, rarely skipping
    assert infos and list(infos[-1].k) == [50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]
    assert infos[-1].header.stamp in [m.header.stamp for m in msgs]
    values = {kv.key: kv.value for d in diagnostics for s in d.status for kv in s.values}
    assert abs(float(values["rate_hz"]) - FPS) <= RATE_TOL * FPS and "skipped" in values


def test_no_camera_info_without_intrinsics(context, tmp_path):
    node = CameraNode(context=context,
                      parameter_overrides=params(path=write_video(tmp_path / "c.mp4")))
    try:
        assert node.info_pub is None and node.image_pub.topic_name == "/camera/image_raw"
    finally:
        node.destroy_node()


@pytest.mark.parametrize("overrides, text", [
    ({"source": "v4l2", "device": "/dev/video97"}, "/dev/video97"),
    ({"source": "realsense"}, "pip install pyrealsense2"),
    ({"source": "file"}, "path"),
])
def test_open_errors_raise(context, overrides, text, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    with pytest.raises(CameraError, match=text):
        CameraNode(context=context, parameter_overrides=params(**overrides))


def test_main_exits_non_zero_on_a_missing_file(tmp_path):
    missing = tmp_path / "nowhere" / "demo.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hv2r_ros.nodes.camera", "--ros-args", "-p", "source:=file",
         "-p", f"path:={missing}"], env=domain_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1, output
    assert str(missing) in output and "not found" in output
    assert "Traceback" not in output
    with pytest.raises(ProcessLookupError):  # nothing of its session is left running
        os.killpg(proc.pid, 0)
