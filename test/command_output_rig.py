"""The command_output test rig (imported as ``from command_output_rig import ...``): a harness
node playing robot, safety filter, e-stop and policy around the node under test, and helpers.
See test_node_command_output.py for how deadlines are measured.
"""

import itertools
import os

import numpy as np
import rclpy
import ros_testing
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

from hv2r_ros.core.command_chain import CartesianCommandChain
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.nodes.command_output import CommandOutputNode
from hv2r_ros.ros.actions import cartesian_chunk_to_msg, joint_chunk_to_msg
from hv2r_ros.ros.qos import action_qos, latched_qos, sensor_qos
from hv2r_ros.ros.stamps import duration_to_seconds, to_seconds
from hv2r_ros.sim.kinematic import KinematicRobot

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
