"""The policy node on real rclpy: own context and domain per test, a tiny ONNX pair for panda.

The node spins on a MultiThreadedExecutor thread (as main() runs it); a probe node on a second
thread plays the cameras (30 Hz), the robot (joint_states, 100 Hz) and the prompt (latched goal),
and records what arrives on hv2r/action and hv2r/gripper with its receipt time.
"""

import os
import threading
import time

import numpy as np
import pytest
import rclpy
from onnx_fixtures import PANDA_JOINTS, make_encoder, make_policy, policy_spec, write_pair
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32MultiArray
from trajectory_msgs.msg import JointTrajectory

import ros_testing
from hv2r_ros.core.models.contract import ModelContractError
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.nodes.policy import PolicyNode
from hv2r_ros.ros import qos
from hv2r_ros.ros.image import array_to_image
from hv2r_ros.ros.stamps import to_seconds

pytestmark = pytest.mark.ros

DISCOVERY_S = 10.0   # budget for discovery and matching (usually < 0.3 s, now and then 3 s)
RATE_HZ = 20.0       # inference_rate_hz under test
MAX_AGE_S = 0.1
DELIVERY_SLACK_S = 0.05  # stated tolerance: executor scheduling + delivery on 2 shared cores


def wait_for(predicate, timeout_s=DISCOVERY_S, what="condition"):
    ros_testing.wait_for(predicate, timeout_s, what)


@pytest.fixture(scope="module")
def panda():
    return load_robot_profile("panda")


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory):
    return write_pair(tmp_path_factory.mktemp("pair"))


@pytest.fixture(scope="module")
def nan_pair_dir(tmp_path_factory):
    return write_pair(tmp_path_factory.mktemp("nan_pair"), make_encoder(),
                      make_policy(nan_output=True))


def test_fixture_pair_is_for_panda(panda):
    spec = policy_spec()
    assert spec.robot == "panda" and spec.joint_order == PANDA_JOINTS == panda.joint_names
    assert spec.camera_order == ("wrist", "overhead") and set(spec.camera_order) <= set(
        panda.cameras)
    assert spec.action_space == "joint_position" and spec.gripper and spec.chunk_length == 4


class Harness:
    def __init__(self, models_dir, goal_size=8):
        os.environ["ROS_DOMAIN_ID"] = str(ros_testing.next_domain_id())
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = PolicyNode(context=self.context, parameter_overrides=[
            Parameter("models_dir", value=str(models_dir)), Parameter("providers", value=["cpu"]),
            Parameter("inference_rate_hz", value=RATE_HZ),
            Parameter("max_age_s", value=MAX_AGE_S)])
        self.probe = Node("probe", context=self.context)
        self.lock = threading.Lock()
        self.chunks, self.grippers, self.camera_stamps = [], [], {"wrist": [], "overhead": []}
        self.cameras_on = {"wrist": True, "overhead": True}
        self.image_pubs = {name: self.probe.create_publisher(Image, f"{name}_camera/image_raw",
                                                             qos.sensor_qos())
                           for name in self.cameras_on}
        self.joint_pub = self.probe.create_publisher(JointState, "joint_states", qos.sensor_qos())
        self.goal_pub = self.probe.create_publisher(Float32MultiArray,
                                                    "hv2r/task/goal_embedding", qos.latched_qos())
        self.probe.create_subscription(JointTrajectory, "hv2r/action", self._on_chunk,
                                       qos.action_qos())
        self.probe.create_subscription(JointTrajectory, "hv2r/gripper", self._on_gripper,
                                       qos.action_qos())
        self.pixels = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        self.frames = 0
        self.probe.create_timer(1 / 30, self._publish_images)
        self.probe.create_timer(0.01, self._publish_joints)
        self.goal_pub.publish(Float32MultiArray(data=[0.5] * goal_size))
        self.executors, self.threads = [], []
        for node, executor in ((self.node, MultiThreadedExecutor(context=self.context)),
                               (self.probe, SingleThreadedExecutor(context=self.context))):
            executor.add_node(node)
            thread = threading.Thread(target=executor.spin, daemon=True)
            thread.start()
            self.executors.append(executor)
            self.threads.append(thread)
        wait_for(lambda: all(p.get_subscription_count() > 0 for p in self.image_pubs.values())
                 and self.joint_pub.get_subscription_count() > 0
                 and self.goal_pub.get_subscription_count() > 0
                 and self.node.count_subscribers("hv2r/action") > 0
                 and self.node.count_subscribers("hv2r/gripper") > 0, what="matching")

    def close(self):
        alive = [thread.is_alive() for thread in self.threads]
        for executor in self.executors:
            executor.shutdown()
        for thread in self.threads:
            thread.join(timeout=5.0)
        for executor, node in zip(self.executors, (self.node, self.probe)):
            executor.remove_node(node)
        self.node.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)
        assert all(alive), "an executor thread died (a callback raised)"

    def now_s(self):
        return self.probe.get_clock().now().nanoseconds * 1e-9

    def _publish_images(self):
        stamp = self.now_s()
        self.frames += 1
        self.pixels[0, 0, 0] = self.frames % 256  # a new frame's pixels differ, as a sensor's do
        for name, publisher in self.image_pubs.items():
            if self.cameras_on[name]:
                publisher.publish(array_to_image(self.pixels, "rgb8", stamp, name))
                with self.lock:
                    self.camera_stamps[name].append(stamp)

    def _publish_joints(self):
        msg = JointState(name=list(PANDA_JOINTS), position=[0.0, -0.785, 0, -2.356, 0, 1.571,
                                                            0.785])
        msg.header.stamp = self.probe.get_clock().now().to_msg()
        self.joint_pub.publish(msg)

    def _on_chunk(self, msg):
        with self.lock:
            self.chunks.append((msg, self.now_s()))

    def _on_gripper(self, msg):
        with self.lock:
            self.grippers.append(msg)


@pytest.fixture
def harness_factory():
    made = []

    def make(models_dir, **kwargs):
        made.append(Harness(models_dir, **kwargs))
        return made[-1]

    yield make
    for harness in made:
        harness.close()


def test_chunk_carries_capture_stamp_and_profile_joints_then_stops_on_stalled_camera(
        harness_factory, pair_dir, panda):
    h = harness_factory(pair_dir)
    wait_for(lambda: len(h.chunks) >= 3, 5.0, "three action chunks")
    msg, _ = h.chunks[0]
    assert tuple(msg.joint_names) == panda.joint_names
    assert len(msg.points) == 4
    times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
    np.testing.assert_allclose(times, [0.1, 0.2, 0.3, 0.4], atol=1e-9)
    assert all(np.isfinite(p.positions).all() for p in msg.points)
    with h.lock:
        published = set(h.camera_stamps["wrist"]) | set(h.camera_stamps["overhead"])
    stamp = to_seconds(msg.header.stamp)
    assert min(abs(stamp - s) for s in published) < 1e-6, "stamp is not a camera capture time"
    wait_for(lambda: any(g.header.stamp == msg.header.stamp for g in h.grippers), 2.0,
             "the gripper companion")

    h.cameras_on["wrist"] = False  # stall one camera; the other keeps going
    time.sleep(0.05)
    with h.lock:
        last_wrist = h.camera_stamps["wrist"][-1]
    time.sleep(MAX_AGE_S + 4 / RATE_HZ)
    with h.lock:
        after = [(to_seconds(m.header.stamp), t) for m, t in h.chunks if t > last_wrist]
    deadline = last_wrist + MAX_AGE_S + 1 / RATE_HZ + DELIVERY_SLACK_S
    assert all(t <= deadline for _, t in after), (after, deadline)
    assert all(s <= last_wrist + 1e-6 for s, _ in after)
    count = len(h.chunks)
    time.sleep(3 / RATE_HZ)
    assert len(h.chunks) == count
    holds = h.node.runner.holds
    assert holds.get("frozen", 0) + holds.get("stale", 0) > 0, holds


def test_nan_policy_publishes_nothing(harness_factory, nan_pair_dir):
    h = harness_factory(nan_pair_dir)
    wait_for(lambda: h.node.runner.holds.get("non_finite", 0) >= 3, 5.0, "NaN holds")
    assert h.chunks == [] and h.grippers == []


def test_wrong_length_goal_is_ignored(harness_factory, pair_dir):
    h = harness_factory(pair_dir, goal_size=5)
    wait_for(lambda: h.node.runner.holds.get("no_goal", 0) >= 5, 5.0, "no-goal holds")
    assert h.node.runner.goal is None and h.chunks == []


def test_joint_order_must_match_the_profile(tmp_path):
    joints = tuple(reversed(PANDA_JOINTS))
    models = write_pair(tmp_path, make_encoder(), make_policy(policy_spec(joint_order=joints)))
    os.environ["ROS_DOMAIN_ID"] = str(ros_testing.next_domain_id())
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(ModelContractError) as info:
            PolicyNode(context=context, parameter_overrides=[
                Parameter("models_dir", value=str(models)), Parameter("providers", value=["cpu"])])
    finally:
        rclpy.shutdown(context=context)
    assert "policy.onnx" in str(info.value) and "hv2r.joint_order" in str(info.value)
