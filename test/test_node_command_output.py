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

import math
import os

import numpy as np
import pytest
import rclpy
from command_output_rig import DISCOVERY_S, assert_limits, linear_plan, profile_of, speeds
from rclpy.parameter import Parameter

from hv2r_ros.core.command_chain import CartesianCommandChain
from hv2r_ros.core.errors import ConfigError
from hv2r_ros.nodes.command_output import CommandOutputNode
from hv2r_ros.sim.kinematic import KinematicRobot

pytestmark = pytest.mark.ros


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
