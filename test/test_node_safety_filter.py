"""The safety_filter lifecycle node on real rclpy: own context and domain per test.

The node spins on its own executor thread (lifecycle transitions run there too, as the
lifecycle services would run them); a probe node on a second thread plays policy, robot and
operator. Deadlines are measured with the node's clock from message receipt times.
"""

import math
import os
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

import ros_testing
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.status import Status
from hv2r_ros.nodes.safety_filter import SafetyFilterNode
from hv2r_ros.ros import actions, qos
from hv2r_ros.ros.stamps import to_nanoseconds

pytestmark = pytest.mark.ros

DISCOVERY_S = 10.0        # budget for discovery and matching (usually < 0.3 s, now and then 3 s)
DEADLINE_SLACK_S = 0.030  # stated tolerance on top of timeout + one state period


@pytest.fixture(scope="module")
def panda():
    return load_robot_profile("panda")


def wait_for(predicate, timeout_s=DISCOVERY_S, what="condition"):
    ros_testing.wait_for(predicate, timeout_s, what)


class Harness:
    """A context, the node under test and a probe, each on its own executor thread."""

    def __init__(self, profile, space="cartesian", **params):
        self.profile, self.space = profile, space
        os.environ["ROS_DOMAIN_ID"] = str(ros_testing.next_domain_id())
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        overrides = [Parameter(k, value=v) for k, v in dict(action_space=space, **params).items()]
        self.node = SafetyFilterNode(context=self.context, parameter_overrides=overrides)
        self.probe = Node("probe", context=self.context)
        self.msg_type = MultiDOFJointTrajectory if space == "cartesian" else JointTrajectory
        self.forwarded, self.states, self.lock = [], [], threading.Lock()
        self.action_pub = self.probe.create_publisher(self.msg_type, "hv2r/action",
                                                      qos.action_qos())
        self.joint_pub = self.probe.create_publisher(JointState, "joint_states", qos.sensor_qos())
        self.estop_pub = self.probe.create_publisher(Bool, "hv2r/estop", qos.latched_qos())
        self.probe.create_subscription(self.msg_type, "hv2r/action_safe", self._on_forwarded,
                                       qos.action_qos())
        self.probe.create_subscription(String, "hv2r/safety/state", self._on_state,
                                       qos.latched_qos())
        self.reset_client = self.probe.create_client(Trigger, "safety_filter/reset_estop")
        self.q = profile.home.copy()
        self.probe.create_timer(0.01, self._publish_joint_state)
        self.executors, self.threads = [], []
        for node in (self.node, self.probe):
            executor = SingleThreadedExecutor(context=self.context)
            executor.add_node(node)
            thread = threading.Thread(target=executor.spin, daemon=True)
            thread.start()
            self.executors.append(executor)
            self.threads.append(thread)

    def close(self):
        # a callback that raised ends its executor's spin: that is a failure of the node
        alive = [thread.is_alive() for thread in self.threads]
        for executor in self.executors:
            executor.shutdown()
        for thread in self.threads:
            thread.join(timeout=5.0)
        self.node.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)
        assert all(alive), "an executor thread died (a callback raised)"

    def now_ns(self):
        return self.node.get_clock().now().nanoseconds

    def _on_forwarded(self, msg):
        with self.lock:
            self.forwarded.append(msg)

    def _on_state(self, msg):
        with self.lock:
            self.states.append((msg.data, self.now_ns()))

    def _publish_joint_state(self):
        msg = JointState(name=list(self.profile.joint_names), position=self.q.tolist())
        msg.header.stamp = self.probe.get_clock().now().to_msg()
        self.joint_pub.publish(msg)

    def transition(self, name):
        """Run ``trigger_<name>`` on the node's executor thread; its return code."""
        task = self.executors[0].create_task(getattr(self.node, f"trigger_{name}"))
        wait_for(task.done, 10.0, f"trigger_{name}")
        return task.result()

    def start(self):
        assert self.transition("configure") == TransitionCallbackReturn.SUCCESS
        assert self.transition("activate") == TransitionCallbackReturn.SUCCESS
        wait_for(lambda: self.action_pub.get_subscription_count() > 0
                 and self.joint_pub.get_subscription_count() > 0
                 and self.estop_pub.get_subscription_count() > 0
                 and self.node.count_subscribers("hv2r/action_safe") > 0, what="matching")
        wait_for(lambda: self.node.filter.measured_positions is not None, what="joint_states")

    def chunk_msg(self, stamp_ns=None, steps=5):
        stamp_ns = self.now_ns() if stamp_ns is None else stamp_ns
        stamp = rclpy.time.Time(nanoseconds=stamp_ns).to_msg()
        times = 0.1 * np.arange(steps)
        if self.space == "joint":
            chunk = np.repeat(self.q[None], steps, axis=0)
            return actions.joint_chunk_to_msg(self.profile.joint_names, chunk, times, stamp)
        poses = self.node.filter.tool_poses(self.q)
        chunk = np.repeat(poses[None], steps, axis=0)
        return actions.cartesian_chunk_to_msg(self.profile.end_effector_frames, chunk, times,
                                              stamp, self.profile.base_frame)

    def last_state(self):
        with self.lock:
            return self.states[-1][0] if self.states else None

    def wait_state(self, prefix, what=None):
        wait_for(lambda: (self.last_state() or "").startswith(prefix), 5.0,
                 what or f"state {prefix!r} (last: {self.last_state()!r})")

    def forwarded_stamps(self):
        with self.lock:
            return [to_nanoseconds(m.header.stamp) for m in self.forwarded]

    def reset_estop(self):
        assert self.reset_client.wait_for_service(timeout_sec=DISCOVERY_S)
        future = self.reset_client.call_async(Trigger.Request())
        wait_for(future.done, 5.0, "~/reset_estop")
        return future.result()


@pytest.fixture
def harness(panda):
    made = []

    def make(space="cartesian", **params):
        made.append(Harness(panda, space, **params))
        return made[-1]

    saved = {k: os.environ.get(k) for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")}
    yield make
    for h in made:
        h.close()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_nothing_is_forwarded_until_active(harness):
    h = harness()
    assert h.node.count_publishers("hv2r/action_safe") == 0  # unconfigured: no publisher at all
    assert h.transition("configure") == TransitionCallbackReturn.SUCCESS
    h.wait_state("HOLD HOLD_NOT_STARTED")
    wait_for(lambda: h.action_pub.get_subscription_count() > 0
             and h.node.count_subscribers("hv2r/action_safe") > 0, what="matching")
    wait_for(lambda: h.node.filter.measured_positions is not None, what="joint_states")
    for _ in range(3):
        h.action_pub.publish(h.chunk_msg())
    wait_for(lambda: h.node.filter.summary().count == 3, 5.0, "chunks received while inactive")
    assert h.node.filter.summary().holds == {Status.HOLD_NOT_STARTED: 3}
    assert h.transition("activate") == TransitionCallbackReturn.SUCCESS
    msg = h.chunk_msg()
    h.action_pub.publish(msg)
    wait_for(lambda: h.forwarded_stamps(), 5.0, "a forwarded chunk")
    assert h.forwarded_stamps() == [to_nanoseconds(msg.header.stamp)]  # the inactive ones: none
    assert h.transition("deactivate") == TransitionCallbackReturn.SUCCESS
    h.wait_state("HOLD HOLD_NOT_STARTED")


def test_valid_chunk_is_forwarded_with_its_stamp_and_nan_holds(harness):
    h = harness(command_timeout_s=0.5)
    h.start()
    h.wait_state("HOLD HOLD_TIMEOUT: no valid action chunk since activation")
    msg = h.chunk_msg()
    h.action_pub.publish(msg)
    wait_for(lambda: h.forwarded_stamps(), 5.0, "a forwarded chunk")
    h.wait_state("ACTIVE")
    out = h.forwarded[0]
    assert to_nanoseconds(out.header.stamp) == to_nanoseconds(msg.header.stamp)
    assert out.header.frame_id == h.profile.base_frame
    assert [p.time_from_start for p in out.points] == [p.time_from_start for p in msg.points]
    chunk, _, _, status = actions.read_cartesian_chunk(out, h.profile.end_effector_frames)
    expected, *_ = actions.read_cartesian_chunk(msg, h.profile.end_effector_frames)
    np.testing.assert_allclose(chunk, expected, atol=1e-9)

    bad = h.chunk_msg()
    bad.points[2].transforms[0].translation.x = math.nan
    h.action_pub.publish(bad)
    h.wait_state("HOLD HOLD_NON_FINITE")
    resume = h.chunk_msg()
    h.action_pub.publish(resume)  # the next valid chunk resumes
    h.wait_state("ACTIVE")
    wait_for(lambda: len(h.forwarded_stamps()) == 2, 5.0, "the resumed chunk")
    # one topic, reliable, in order: a forwarded NaN chunk would sit between the two
    assert h.forwarded_stamps() == [to_nanoseconds(m.header.stamp) for m in (msg, resume)]


def test_joint_space_chunks_are_forwarded(harness):
    h = harness("joint")
    h.start()
    msg = h.chunk_msg()
    msg.joint_names = msg.joint_names[::-1]  # mapped by name
    for point in msg.points:
        point.positions = point.positions[::-1]
    h.action_pub.publish(msg)
    wait_for(lambda: h.forwarded_stamps(), 5.0, "a forwarded chunk")
    out = h.forwarded[0]
    assert list(out.joint_names) == list(h.profile.joint_names)
    assert to_nanoseconds(out.header.stamp) == to_nanoseconds(msg.header.stamp)
    np.testing.assert_allclose(out.points[-1].positions, h.q, atol=1e-12)


def test_silent_policy_holds_within_timeout_plus_one_period(harness):
    h = harness()  # profile watchdog 100 ms, state re-evaluated at 100 Hz
    h.start()
    timeout_s = h.node.get_parameter("command_timeout_s").value
    period_s = 1.0 / h.node.get_parameter("state_rate_hz").value
    assert timeout_s == h.profile.command_timeout_s
    for _ in range(5):  # a policy at ~50 Hz, then silence
        sent_ns = h.now_ns()
        h.action_pub.publish(h.chunk_msg(sent_ns))
        time.sleep(0.02)
    h.wait_state("HOLD HOLD_TIMEOUT: no valid action chunk within")
    with h.lock:
        arrived_ns = next(t for text, t in reversed(h.states) if text.startswith("HOLD"))
        assert any(text == "ACTIVE" for text, _ in h.states)
    gap_s = (arrived_ns - sent_ns) * 1e-9
    # the last chunk was received after it was sent, so gap >= timeout holds for the receipt too
    print(f"silent policy -> HOLD_TIMEOUT after {gap_s * 1e3:.1f} ms (timeout "
          f"{timeout_s * 1e3:g} ms, state period {period_s * 1e3:g} ms)")
    assert timeout_s <= gap_s <= timeout_s + period_s + DEADLINE_SLACK_S, gap_s
    assert f"within {timeout_s * 1e3:g} ms" in h.last_state()


def test_estop_latches_until_the_operator_resets_it(harness):
    h = harness()
    h.start()
    h.action_pub.publish(h.chunk_msg())
    h.wait_state("ACTIVE")
    h.estop_pub.publish(Bool(data=True))
    h.wait_state("HOLD HOLD_ESTOP")
    response = h.reset_estop()
    assert not response.success and "asserted" in response.message
    h.action_pub.publish(h.chunk_msg())  # valid, but the e-stop holds
    wait_for(lambda: h.node.filter.summary().holds.get(Status.HOLD_ESTOP) == 1, 5.0,
             "the chunk held by the e-stop")
    h.estop_pub.publish(Bool(data=False))
    while not (response := h.reset_estop()).success:  # refused until the release arrived
        assert "asserted" in response.message
        assert h.last_state().startswith("HOLD HOLD_ESTOP")
    assert h.forwarded_stamps() == h.forwarded_stamps()[:1]  # nothing during the e-stop
    h.wait_state("HOLD HOLD_TIMEOUT")  # re-seeded: motion needs a new chunk
    h.action_pub.publish(h.chunk_msg())
    h.wait_state("ACTIVE")
    assert len(h.forwarded_stamps()) >= 1


def test_parameter_ranges_and_read_only(harness):
    h = harness()
    assert h.transition("configure") == TransitionCallbackReturn.SUCCESS
    for value in (0.0, 5.0, -0.1):
        result, = h.node.set_parameters([Parameter("command_timeout_s", value=value)])
        assert not result.successful, value
    for name, value in (("robot", "ur5e"), ("action_space", "joint")):
        result, = h.node.set_parameters([Parameter(name, value=value)])
        assert not result.successful and "read-only" in result.reason
    result, = h.node.set_parameters([Parameter("command_timeout_s", value=0.05)])
    assert result.successful
    assert h.node.get_parameter("command_timeout_s").value == 0.05


def test_invalid_robot_profile_fails_configure(harness, panda, tmp_path, capfd):
    text = open(panda.file).read().replace("velocity_rad_s: [1.0, 1.0,", "velocity_rad_s: [1.0,")
    bad = tmp_path / "broken_panda.yaml"
    bad.write_text(text)
    h = harness(robot=str(bad))
    assert h.transition("configure") == TransitionCallbackReturn.FAILURE
    assert h.node.filter is None
    assert h.node.count_publishers("hv2r/action_safe") == 0
    assert h.node.count_publishers("hv2r/safety/state") == 0
    log = capfd.readouterr().err
    assert "configure failed" in log and str(bad) in log and "velocity_rad_s" in log
