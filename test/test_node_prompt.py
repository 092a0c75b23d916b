"""prompt node on real rclpy: a latched goal from a goal image or a demo video, re-prompted by
parameter, and progress tracked on overhead camera frames through subgoals to completion.

Each test has its own ``rclpy.Context`` and ``ROS_DOMAIN_ID``; node and subscriber share one
executor. The subscriber is created after the node has published, so it only gets the goal
through transient-local durability (a late joiner). Waits poll the executor up to a deadline
instead of sleeping. Task specs are cached under tmp_path, never in the home folder.
"""

import os
import time

import cv2
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, Float32MultiArray, String

import ros_testing
from hv2r_ros.core.goal import GoalError
from hv2r_ros.core.prompt.progress import CalibrationError
from hv2r_ros.core.prompt.video import VideoFrames
from hv2r_ros.nodes.prompt import PromptNode
from hv2r_ros.ros.image import array_to_image
from hv2r_ros.ros.qos import latched_qos, sensor_qos
from hv2r_ros.ros.stamps import from_seconds
from onnx_fixtures import encoder_spec, make_encoder, save

pytestmark = pytest.mark.ros

DISCOVERY_S = 8.0


@pytest.fixture
def context():
    os.environ["ROS_DOMAIN_ID"] = str(ros_testing.next_domain_id())
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.fixture
def models_dir(tmp_path):
    (tmp_path / "models").mkdir()
    save(make_encoder(), tmp_path / "models" / "encoder.onnx")
    return str(tmp_path / "models")


def write_png(path, rgb):
    assert cv2.imwrite(str(path), np.full((24, 32, 3), rgb[::-1], np.uint8))
    return str(path)


def spin_until(executor, condition, timeout_s=DISCOVERY_S):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return condition()


def test_late_subscriber_gets_the_goal_and_reprompts(context, models_dir, tmp_path):
    first = write_png(tmp_path / "first.png", (10, 120, 240))
    second = write_png(tmp_path / "second.png", (240, 30, 0))
    node = PromptNode(context=context, parameter_overrides=[
        Parameter("models_dir", value=models_dir), Parameter("prompt_video", value=first),
        Parameter("providers", value=["cpu"]),
        Parameter("cache_dir", value=str(tmp_path / "cache"))])
    sub = Node("prompt_test_subscriber", context=context)  # joins after the goal was published
    goals, images, statuses = [], [], []
    sub.create_subscription(Float32MultiArray, "hv2r/task/goal_embedding",
                            lambda m: goals.append(np.array(m.data, np.float32)), latched_qos())
    sub.create_subscription(Image, "hv2r/task/goal_image", images.append, latched_qos())
    status_qos = latched_qos()
    status_qos.depth = 10  # keep every transition, not only the latest
    sub.create_subscription(String, "hv2r/task/status", lambda m: statuses.append(m.data),
                            status_qos)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(sub)
    try:
        assert spin_until(executor, lambda: goals and images and statuses), "no latched goal"
        size = encoder_spec().embedding_size
        assert len(goals) == 1 and goals[0].shape == (size,) and np.all(np.isfinite(goals[0]))
        assert (images[0].encoding, images[0].width, images[0].height) == ("rgb8", 32, 24)
        assert statuses[-1] == f"READY {first}"

        statuses.clear()
        result = node.set_parameters([Parameter("prompt_video", value=second)])[0]
        assert result.successful, result.reason
        assert spin_until(executor, lambda: len(goals) == 2 and
                          statuses[-1:] == [f"READY {second}"], 5.0), statuses
        assert goals[1].shape == (size,) and not np.allclose(goals[1], goals[0])
        assert statuses[0] == f"PROMPTING {second}", statuses

        missing = str(tmp_path / "missing.mp4")
        result = node.set_parameters([Parameter("prompt_video", value=missing)])[0]
        assert not result.successful and missing in result.reason \
            and "does not exist" in result.reason, result.reason
        assert node.get_parameter("prompt_video").value == second
        spin_until(executor, lambda: statuses[-1] == f"READY {second}" and
                   f"PROMPTING {missing}" in statuses, 2.0)
        assert statuses[-1] == f"READY {second}", statuses
        assert len(goals) == 2, "a rejected prompt must not publish a goal"

        result = node.set_parameters([Parameter("prompt_video", value="")])[0]
        assert not result.successful and "empty" in result.reason
        assert node.get_parameter("prompt_video").value == second
    finally:
        executor.shutdown()
        sub.destroy_node()
        node.destroy_node()


def test_no_prompt_starts_without_goal_and_bad_prompt_fails_construction(
        context, models_dir, tmp_path):
    node = PromptNode(context=context, parameter_overrides=[
        Parameter("models_dir", value=models_dir), Parameter("providers", value=["cpu"]),
        Parameter("cache_dir", value=str(tmp_path / "cache"))])
    try:
        assert node.status.startswith("NO_GOAL: ") and "prompt_video" in node.status
    finally:
        node.destroy_node()
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(GoalError, match="empty.png"):
        PromptNode(context=context, parameter_overrides=[
            Parameter("models_dir", value=models_dir), Parameter("prompt_video", value=str(empty)),
            Parameter("providers", value=["cpu"]),
            Parameter("cache_dir", value=str(tmp_path / "cache"))])


COLOURS = [(20, 20, 20), (220, 30, 30), (220, 220, 30), (30, 200, 220)]


def write_demo(path, hold=15, blend=8, fps=10.0):
    """Colours held and blended: three subgoals after the start state."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (32, 24))
    for k, colour in enumerate(COLOURS):
        if k:
            previous = COLOURS[k - 1]
            for i in range(1, blend + 1):
                blended = [int(a + (b - a) * i / (blend + 1)) for a, b in zip(previous, colour)]
                writer.write(np.full((24, 32, 3), blended[::-1], np.uint8))
        for _ in range(hold):
            writer.write(np.full((24, 32, 3), colour[::-1], np.uint8))
    writer.release()
    return str(path)


def test_video_prompt_tracks_progress_through_subgoals_to_completion(context, models_dir,
                                                                     tmp_path):
    """The camera replays the demo itself: with thresholds calibrated on the demo (no
    calibration file), the node advances through every subgoal, in order, and completes."""
    demo = write_demo(tmp_path / "demo.avi")
    node = PromptNode(context=context, parameter_overrides=[
        Parameter("models_dir", value=models_dir), Parameter("prompt_video", value=demo),
        Parameter("providers", value=["cpu"]), Parameter("cache_dir", value=str(tmp_path / "c")),
        Parameter("progress_rate_hz", value=30.0), Parameter("completion_hold_s", value=0.5),
        Parameter("progress_smoothing_s", value=0.2), Parameter("goal_mode", value="subgoal")])
    test = Node("prompt_test_camera", context=context)
    goals, progress, statuses = [], [], []
    test.create_subscription(Float32MultiArray, "hv2r/task/goal_embedding",
                             lambda m: goals.append(np.array(m.data)), latched_qos())
    test.create_subscription(Float32, "hv2r/task/progress", lambda m: progress.append(m.data),
                             10)
    status_qos = latched_qos()
    status_qos.depth = 10
    test.create_subscription(String, "hv2r/task/status", lambda m: statuses.append(m.data),
                             status_qos)
    camera = test.create_publisher(Image, "overhead_camera/image_raw", sensor_qos(1))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(test)
    try:
        assert spin_until(executor, lambda: goals and statuses and
                          camera.get_subscription_count() > 0), "no goal or no camera match"
        assert statuses[-1] == f"READY {demo}" and node.session.spec.subgoal_count == 3
        np.testing.assert_allclose(goals[-1], node.session.spec.subgoal_embeddings[0], rtol=1e-6)
        for frame in VideoFrames(demo):
            count = len(progress)
            camera.publish(array_to_image(frame.rgb, "rgb8", from_seconds(100 + frame.time_s),
                                          "overhead"))
            assert spin_until(executor, lambda: len(progress) > count, 3.0), frame.index
        assert spin_until(executor, lambda: statuses[-1] == f"COMPLETE {demo}", 2.0), statuses
        assert [s for s in statuses if s.startswith("SUBGOAL")] == \
            [f"SUBGOAL 2/3 {demo}", f"SUBGOAL 3/3 {demo}"]
        assert progress[-1] == 1.0 and progress[0] < 0.2
        assert len(goals) == 3, "goal_mode subgoal: the current subgoal on each advancement"
        np.testing.assert_allclose(goals[-1], node.session.spec.goal_embedding, rtol=1e-6)
    finally:
        executor.shutdown()
        test.destroy_node()
        node.destroy_node()


def test_a_bad_calibration_file_fails_construction_naming_it(context, models_dir, tmp_path):
    bad = tmp_path / "calibration.json"
    bad.write_text("{not json")
    with pytest.raises(CalibrationError, match="calibration.json"):
        PromptNode(context=context, parameter_overrides=[
            Parameter("models_dir", value=models_dir), Parameter("providers", value=["cpu"]),
            Parameter("calibration_file", value=str(bad))])
