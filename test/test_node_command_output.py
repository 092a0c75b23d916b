"""command_output on real rclpy: seeding, Cartesian chunks through IK, limits, every hold.

Each test runs the node and a harness node in their own ``rclpy.Context`` with a unique
``ROS_DOMAIN_ID``, spun in-process by one executor. The harness plays the robot (a
``KinematicRobot`` that tracks each command exactly, publishing ``joint_states`` at the control
rate), the safety filter (latched ``hv2r/safety/state``), the e-stop and the policy (a chunk
stream of a tool moving at constant speed).

Deadlines are asserted from message stamps and receipt times on one clock: a JointTrajectory
command is stamped when the node computes it; the harness subscribes to every trigger topic too
(e-stop, safety state, actions, joint states) and records when the shared executor delivered it.
``TOL_S`` covers the order in which one executor round runs the two subscriptions and a tick.
Outside the staleness test the rigs use the profile's 0.1 s observation limit instead of the
3-period default, so that scheduling hiccups of a loaded 2-core machine do not hold the robot.
"""

import itertools
import math
import os

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

import ros_testing
from hv2r_ros.core.command_chain import CartesianCommandChain
from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.status import Status
from hv2r_ros.nodes.command_output import CommandOutputNode
from hv2r_ros.ros.actions import cartesian_chunk_to_msg, joint_chunk_to_msg
from hv2r_ros.ros.qos import action_qos, latched_qos, sensor_qos
from hv2r_ros.ros.stamps import duration_to_seconds, to_seconds
from hv2r_ros.sim.kinematic import KinematicRobot

pytestmark = pytest.mark.ros

TOL_S = 0.01  # same-round ordering of subscriptions and the node's tick [s]
DISCOVERY_S = 8.0
_PROFILES = {}
_counter = itertools.count()


def profile_of(name):
    if name not in _PROFILES:
        _PROFILES[name] = load_robot_profile(name)
    return _PROFILES[name]


class Harness(Node):
    """Robot, safety filter, e-stop and policy around the node under test."""

    def __init__(self, context, profile, cartesian=True):
        super().__init__(f"harness_{next(_counter)}", context=context)
        self.profile, self.period = profile, profile.control_period_s
        self.robot = KinematicRobot(profile.home, profile.limits.position_min,
                                    profile.limits.position_max, time_constant_s=0.0)
        self.commands = []  # (receipt stamp [s], header stamp [s] or None, q (n,))
        self.published_states = []  # (stamp [s], q)
        self.publish_states = True
        self.plan = None  # absolute time [s] -> chunk row, or None: no chunks
        kind = profile.command_interface.type
        msg_type = JointTrajectory if kind == "joint_trajectory_controller" else Float64MultiArray
        self.create_subscription(msg_type, profile.command_interface.topic, self._on_command,
                                 QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE))
        self.state_pub = self.create_publisher(JointState, "joint_states", sensor_qos())
        self.safety_pub = self.create_publisher(String, "hv2r/safety/state", latched_qos())
        self.estop_pub = self.create_publisher(Bool, "hv2r/estop", latched_qos())
        action_type = MultiDOFJointTrajectory if cartesian else JointTrajectory
        self.action_pub = self.create_publisher(action_type, "hv2r/action_safe", action_qos())
        self.cartesian = cartesian
        self.diagnostics = []
        self.create_subscription(DiagnosticArray, "diagnostics", self.diagnostics.append, 10)
        self.received = {}  # topic -> receipt times [s] of what the node also received
        for msg_type, topic, qos in ((Bool, "hv2r/estop", latched_qos()),
                                     (String, "hv2r/safety/state", latched_qos()),
                                     (action_type, "hv2r/action_safe", action_qos()),
                                     (JointState, "joint_states", sensor_qos())):
            self.received[topic] = []
            self.create_subscription(msg_type, topic, self._recorder(topic), qos)
        self.create_timer(self.period, self._publish_state)
        self.create_timer(0.05, self._publish_chunk)

    def _recorder(self, topic):
        return lambda _msg: self.received[topic].append(self.now())

    def receipt_after(self, topic, t_s):
        """When the executor delivered the first message on ``topic`` published after t_s."""
        return next(t for t in self.received[topic] if t >= t_s)

    def now(self):
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_command(self, msg):
        if isinstance(msg, JointTrajectory):
            assert list(msg.joint_names) == list(self.profile.joint_names)
            times = [duration_to_seconds(p.time_from_start) for p in msg.points]
            assert times and all(b > a for a, b in zip(times, times[1:])) and times[0] > 0.0
            q, stamp = np.array(msg.points[0].positions), to_seconds(msg.header.stamp)
        else:
            q, stamp = np.array(msg.data), None
        self.commands.append((self.now(), stamp, q))
        self.robot.command(q, self.period)

    def _publish_state(self):
        if self.publish_states:
            q = self.robot.measure()
            self.state_pub.publish(JointState(name=list(self.profile.joint_names),
                                              position=q.tolist()))
            self.published_states.append((self.now(), q))

    def _publish_chunk(self):
        if self.plan is None:
            return
        stamp = self.now()
        times = np.arange(21) * 0.05
        rows = np.array([self.plan(stamp + t) for t in times])
        if self.cartesian:
            msg = cartesian_chunk_to_msg(self.profile.end_effector_frames, rows, times, stamp,
                                         self.profile.base_frame)
        else:
            msg = joint_chunk_to_msg(self.profile.joint_names, rows, times, stamp)
        self.action_pub.publish(msg)

    def safety(self, text):
        self.safety_pub.publish(String(data=text))
        return self.now()

    def estop(self, asserted):
        self.estop_pub.publish(Bool(data=asserted))
        return self.now()


class Rig:
    def __init__(self, robot="panda", cartesian=True, **params):
        params.setdefault("max_state_age_s", 0.1)
        domain = ros_testing.next_domain_id()
        os.environ["ROS_DOMAIN_ID"] = str(domain)
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        params.setdefault("action_space", "cartesian" if cartesian else "joint")
        self.node = CommandOutputNode(
            context=self.context, parameter_overrides=[
                Parameter("robot", value=robot), *(Parameter(k, value=v)
                                                   for k, v in params.items() if v is not None)])
        self.harness = Harness(self.context, profile_of(robot), cartesian)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.harness)

    def spin_until(self, predicate, timeout_s):
        deadline = self.harness.now() + timeout_s
        while not predicate():
            assert self.harness.now() < deadline, "condition not met in time"
            self.executor.spin_once(timeout_sec=0.005)

    def spin_for(self, duration_s):
        end = self.harness.now() + duration_s
        self.spin_until(lambda: self.harness.now() >= end, duration_s + 5.0)

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.harness.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def rig_factory():
    rigs = []

    def make(*args, **kwargs):
        rigs.append(Rig(*args, **kwargs))
        return rigs[-1]

    yield make
    for rig in rigs:
        rig.close()


def linear_plan(profile, start_s, velocity_m_s):
    """Poses (1, 7) of the tool moving from its home pose at a constant velocity."""
    home = CartesianCommandChain(profile).poses(np.array(profile.home))

    def plan(t):
        pose = home.copy()
        pose[0, :3] += np.asarray(velocity_m_s) * max(0.0, t - start_s)
        return pose
    return plan


def speeds(commands, period):
    q = np.array([c[2] for c in commands])
    return np.linalg.norm(np.diff(q, axis=0), axis=1) / period


def assert_limits(profile, commands):
    q = np.array([c[2] for c in commands])
    limits, period = profile.limits, profile.control_period_s
    v = np.diff(q, axis=0) / period
    a = np.diff(v, axis=0) / period
    assert np.all(q >= limits.position_min - 1e-12) and np.all(q <= limits.position_max + 1e-12)
    assert np.all(np.abs(v) <= limits.velocity_max * (1 + 1e-6))
    assert np.all(np.abs(a) <= limits.acceleration_max * (1 + 1e-6) + 1e-6)


def braking_step(rig):
    """The smallest speed change per period of a full brake [rad/s]."""
    node = rig.node
    guard = node.chain.guard if node.cartesian else node.chain
    return float(np.min(guard.acceleration_limit)) * node.period_s


def assert_braking_after(rig, t_trigger_s, deadline_s):
    """Moving when the trigger was sent; every command stamped from ``deadline_s`` on slows down
    by at least half the smallest braking step per period until it stops, and stays stopped:
    no new moving targets."""
    h = rig.harness
    moving = [c for c in h.commands if c[1] < t_trigger_s][-3:]
    assert speeds(moving, h.period).min() > 0.05, "not moving before the trigger"
    deadline = deadline_s
    index = next(i for i, c in enumerate(h.commands) if c[1] >= deadline)
    v = speeds(h.commands[index - 1:], h.period)
    b_min = braking_step(rig)
    for before, after in zip(v, v[1:]):
        assert after <= 1e-9 or after <= before - 0.5 * b_min, (before, after)
    assert v[-1] <= 1e-9, "not at rest at the end"
    return v


def start_moving(rig, velocity=(0.0, 0.1, 0.0)):
    """Stream chunks of a tool moving at constant speed until the joints move steadily."""
    h = rig.harness
    rig.spin_until(lambda: len(h.commands) >= 3, DISCOVERY_S)
    h.plan = linear_plan(h.profile, h.now(), velocity)
    step = braking_step(rig)

    def cruising():
        cruise = speeds(h.commands[-4:], h.period) if len(h.commands) > 4 else np.zeros(1)
        # Moving, and not braking: the braking check below could fail on these commands.
        return cruise.min() > 0.05 and np.diff(cruise).max() > -0.5 * step
    rig.spin_until(cruising, 8.0)


# ---------------------------------------------------------------- tests
def test_first_command_equals_measured_state_and_chunk_moves_within_limits(rig_factory):
    rig = rig_factory("panda")
    h = rig.harness
    h.robot = KinematicRobot(h.profile.home + 0.01, h.profile.limits.position_min,
                             h.profile.limits.position_max, time_constant_s=0.0)
    rig.spin_until(lambda: h.commands, DISCOVERY_S)
    assert len(h.published_states) >= 1
    np.testing.assert_array_equal(h.commands[0][2], h.published_states[0][1])
    rig.spin_for(0.1)  # no safety state yet: holds at the measured state
    assert np.all(speeds(h.commands, h.period) == 0.0)
    h.safety("ACTIVE")
    h.plan = linear_plan(h.profile, h.now(), (0.0, 0.1, -0.05))
    first = len(h.commands)
    rig.spin_for(1.0)
    moved = np.array([c[2] for c in h.commands[first:]])
    assert np.abs(moved[-1] - moved[0]).max() > 0.05
    assert_limits(h.profile, h.commands)
    # Every command the node sent arrived: velocities from consecutive commands are exact.
    # (Equal between two ticks; a lost command would keep the harness one behind forever.)
    rig.spin_until(lambda: rig.node.output_stats.count == len(h.commands), 1.0)
    # The tool joined the planned line and went along it (how far depends on missed ticks
    # under load); it started 0.01 rad per joint away from the line's start.
    chain = CartesianCommandChain(h.profile)
    travel = chain.poses(moved[-1])[0, :3] - h.plan(0.0)[0, :3]
    direction = np.array([0.0, 0.1, -0.05]) / np.linalg.norm([0.0, 0.1, -0.05])
    along = travel @ direction
    assert along > 0.05 and np.linalg.norm(travel - along * direction) < 0.003


def test_estop_holds_within_one_period_and_release_alone_does_not_resume(rig_factory):
    rig = rig_factory("panda")
    h = rig.harness
    h.safety("ACTIVE")
    start_moving(rig)
    t_estop = h.estop(True)
    rig.spin_for(0.6)
    # Within one period of the e-stop's delivery.
    assert_braking_after(rig, t_estop,
                         h.receipt_after("hv2r/estop", t_estop) + h.period + TOL_S)
    t_release = h.estop(False)  # the policy keeps streaming chunks
    rig.spin_for(0.3)
    after = [c for c in h.commands if c[1] > t_release]
    assert len(after) > 10 and np.all(speeds(after, h.period) <= 1e-9)
    h.diagnostics.clear()
    rig.node._publish_diagnostics()
    rig.spin_until(lambda: h.diagnostics, 2.0)
    statuses = {st.name: st for st in h.diagnostics[-1].status}
    command = statuses["command_output: command"]
    values = {kv.key: kv.value for kv in command.values}
    assert command.level == DiagnosticStatus.ERROR and command.message == "hold: e-stop latched"
    assert "waiting for safety state ACTIVE" in values["hold_reason"]
    assert int(values["holds.HOLD_ESTOP"]) > 10 and float(values["latency_p50_ms"]) > 0.0
    chunks = {kv.key: kv.value for kv in statuses["command_output: chunks"].values}
    assert float(chunks["rate_hz"]) > 10.0 and float(chunks["latency_p50_ms"]) >= 0.0
    h.safety("HOLD e-stop reset")
    rig.spin_for(0.05)
    t_resume = h.safety("ACTIVE")
    count = len(h.commands)
    rig.spin_for(0.5)
    resumed = [c for c in h.commands[count:] if c[1] > t_resume]
    # Re-seeded: the first command after the resume equals the measured (resting) state.
    measured = [q for t, q in h.published_states if t < resumed[0][1]][-1]
    np.testing.assert_array_equal(resumed[0][2], measured)
    assert speeds(resumed, h.period).max() > 0.05
    assert_limits(h.profile, h.commands)


def test_safety_state_hold_holds_and_a_quick_resume_waits_for_rest(rig_factory):
    rig = rig_factory("panda")
    h = rig.harness
    h.safety("ACTIVE")
    start_moving(rig)
    t_hold = h.safety("HOLD workspace violation")
    rig.spin_for(0.6)
    assert_braking_after(rig, t_hold,
                         h.receipt_after("hv2r/safety/state", t_hold) + h.period + TOL_S)
    h.safety("ACTIVE")
    start_moving(rig)
    rig.spin_for(0.3)  # up to speed
    h.safety("HOLD HOLD_STALE: observation 0.12 s old")
    rig.spin_for(0.015)
    # While still braking: a re-seed now would jump back to the lagging measurement (a
    # reversal far beyond the acceleration limits); it waits until the command rests.
    h.safety("ACTIVE")
    rig.spin_for(0.6)
    assert speeds(h.commands[-5:], h.period).min() > 0.05  # resumed
    assert_limits(h.profile, h.commands)  # across every hold, re-seed and resume


def test_silent_action_stream_holds_within_timeout_plus_one_period(rig_factory):
    rig = rig_factory("panda")
    h = rig.harness
    h.safety("ACTIVE")
    start_moving(rig)
    plan, h.plan = h.plan, None  # the policy falls silent; the last chunk runs 1 s more
    t_silent = h.now()  # no chunk is published after this
    rig.spin_for(0.6)
    timeout = rig.node.get_parameter("command_timeout_s").value
    t_last = h.received["hv2r/action_safe"][-1]  # delivery of the last chunk
    # Still following the last chunk until the timeout: the hold is the watchdog's.
    before = [c for c in h.commands if t_silent < c[1] < t_last + timeout - h.period]
    assert len(before) > 3 and speeds(before, h.period).min() > 0.05
    # HOLD within command_timeout_s + one period of the last chunk's delivery.
    assert_braking_after(rig, t_silent, t_last + timeout + h.period + TOL_S)
    assert plan(t_silent + 0.5)[0, 1] > plan(t_silent)[0, 1]  # the plan itself went on


def test_stalled_joint_states_stop_moving_targets_within_three_periods(rig_factory):
    rig = rig_factory("panda")
    h = rig.harness
    h.safety("ACTIVE")
    start_moving(rig)
    # Two periods at 100 Hz, set live just before the stall (fewer spurious holds before it).
    assert rig.node.set_parameters([Parameter("max_state_age_s", value=0.02)])[0].successful
    h.publish_states = False
    t_stall = h.now()
    rig.spin_for(0.6)
    t_last = h.received["joint_states"][-1]  # delivery of the last joint state
    # Hold at the first tick after max_state_age_s: within three periods of the last state.
    assert_braking_after(rig, t_stall, t_last + 3 * h.period + TOL_S)


def test_forward_controller_output_for_so100_has_the_profile_joint_count(rig_factory):
    rig = rig_factory("so100", cartesian=False,
                      controller_joints=list(profile_of("so100").joint_names))
    h = rig.harness
    h.safety("ACTIVE")
    rig.spin_until(lambda: len(h.commands) >= 2, DISCOVERY_S)
    assert all(c[2].shape == (5,) for c in h.commands)
    np.testing.assert_array_equal(h.commands[0][2], h.published_states[0][1])
    home = np.array(h.profile.home)
    goal = home + np.array([0.3, -0.2, 0.2, 0.1, 0.3])
    h.plan = lambda t: goal  # joint-space chunks: no IK, but the guard
    rig.spin_for(1.0)
    q = np.array([c[2] for c in h.commands])
    assert np.abs(q[-1] - home).max() > 0.2
    assert_limits(h.profile, h.commands)


def test_joint_chunk_with_wrong_joint_names_holds(rig_factory):
    rig = rig_factory("so100", cartesian=False)
    h = rig.harness
    h.safety("ACTIVE")
    rig.spin_until(lambda: len(h.commands) >= 2, DISCOVERY_S)
    msg = joint_chunk_to_msg(["a", "b", "c", "d", "e"], np.ones((3, 5)), [0.0, 0.1, 0.2],
                             h.now())
    for _ in range(5):
        h.action_pub.publish(msg)
        rig.spin_for(0.05)
    assert np.all(speeds(h.commands, h.period) == 0.0)
    assert rig.node.chunks.stats.holds == {Status.HOLD_WRONG_NAMES: 5}
    assert len(rig.node.chunks) == 0


def test_forward_controller_joint_order_is_checked_at_start():
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        joints = list(reversed(profile_of("so100").joint_names))
        with pytest.raises(ConfigError, match="command_output.controller_joints"):
            CommandOutputNode(context=context, parameter_overrides=[
                Parameter("robot", value="so100"), Parameter("controller_joints", value=joints)])
    finally:
        rclpy.shutdown(context=context)


def test_parameters_are_declared_with_ranges_and_profile_defaults(rig_factory):
    rig = rig_factory("panda", max_state_age_s=None)
    node = rig.node
    assert node.get_parameter("command_timeout_s").value == pytest.approx(0.1)
    assert node.get_parameter("control_rate_hz").value == pytest.approx(100.0)
    assert node.get_parameter("max_state_age_s").value == pytest.approx(0.03)
    assert node.describe_parameter("control_rate_hz").read_only
    assert not node.set_parameters([Parameter("strategy", value="newest")])[0].successful
    assert not node.set_parameters([Parameter("command_timeout_s", value=5.0)])[0].successful
    assert node.set_parameters([Parameter("strategy", value="temporal_ensembling")])[0].successful
    assert node.chunks.strategy == "temporal_ensembling"
    assert node.set_parameters([Parameter("command_timeout_s", value=0.05)])[0].successful
    assert node.gate.command_timeout_s == node.gate.watchdog.timeout_s == 0.05
    assert math.isclose(node.period_s, 0.01)
