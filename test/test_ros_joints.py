"""Joint messages: read by name into profile order, build controller commands."""

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.status import Status
from hv2r_ros.ros.joints import (
    JointStateReader,
    check_controller_joint_order,
    float64_multi_array,
    joint_trajectory,
)

pytestmark = pytest.mark.ros  # needs rclpy and the message packages

ARM = ("j1", "j2", "j3")


def state(names, position, velocity=()):
    msg = JointState(name=list(names), position=[float(p) for p in position],
                     velocity=[float(v) for v in velocity])
    return deserialize_message(serialize_message(msg), JointState)


def test_maps_by_name_and_ignores_extra_joints():
    reader = JointStateReader(ARM)
    msg = state(["finger", "j3", "j1", "j2"], [0.04, 3.0, 1.0, 2.0], [9.0, 0.3, 0.1, 0.2])
    positions, velocities, status = reader.read(msg)
    assert status is Status.OK
    np.testing.assert_array_equal(positions, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(velocities, [0.1, 0.2, 0.3])
    assert positions.dtype == np.float64 and positions.shape == (3,)


def test_index_map_is_cached_per_name_tuple():
    reader = JointStateReader(ARM)
    msg = state(["j2", "j1", "j3"], [2.0, 1.0, 3.0])
    reader.read(msg)
    cached = reader._cache[("j2", "j1", "j3")]
    positions, velocities, status = reader.read(msg)
    assert reader._cache[("j2", "j1", "j3")] is cached and len(reader._cache) == 1
    np.testing.assert_array_equal(positions, [1.0, 2.0, 3.0])
    assert velocities is None and status is Status.OK
    for i in range(20):  # a stream of odd name sets cannot grow the cache without bound
        reader.read(state([f"x{i}", *ARM], [0.0, 1.0, 2.0, 3.0]))
    assert len(reader._cache) <= 8


def test_result_does_not_alias_the_message():
    reader = JointStateReader(ARM)
    msg = state(ARM, [1.0, 2.0, 3.0])
    positions, _, _ = reader.read(msg)
    positions[0] = 99.0
    assert msg.position[0] == 1.0


@pytest.mark.parametrize("names, position, velocity, expected", [
    (["j1", "j2"], [1, 2], [], Status.HOLD_WRONG_NAMES),  # j3 missing
    (["j1", "j2", "j3", "j1"], [1, 2, 3, 1], [], Status.HOLD_WRONG_NAMES),  # duplicate
    (["j1", "j2", "j3", "j3"], [1, 2, 3, 4], [], Status.HOLD_WRONG_NAMES),
    ([], [], [], Status.HOLD_WRONG_NAMES),
    (["j1", "j2", "j3"], [1, 2], [], Status.HOLD_WRONG_LENGTH),
    (["j1", "j2", "j3"], [], [], Status.HOLD_WRONG_LENGTH),
    (["j1", "j2", "j3"], [1, 2, 3], [0, 0], Status.HOLD_WRONG_LENGTH),
    (["j1", "j2", "j3"], [1, math.nan, 3], [], Status.HOLD_INVALID_MEASUREMENT),
    (["j1", "j2", "j3"], [1, 2, math.inf], [], Status.HOLD_INVALID_MEASUREMENT),
    (["j1", "j2", "j3"], [1, 2, 3], [0, math.nan, 0], Status.HOLD_INVALID_MEASUREMENT),
])
def test_bad_states_hold(names, position, velocity, expected):
    reader = JointStateReader(ARM)
    assert reader.read(state(names, position, velocity)) == (None, None, expected)


def test_nan_in_an_ignored_joint_is_not_our_business():
    positions, _, status = JointStateReader(ARM).read(
        state(["j1", "finger", "j2", "j3"], [1, math.nan, 2, 3]))
    assert status is Status.OK
    np.testing.assert_array_equal(positions, [1.0, 2.0, 3.0])


@pytest.mark.parametrize("names", [(), ("a", "a")])
def test_reader_rejects_bad_profile_names(names):
    with pytest.raises(ConfigError, match="joint_names"):
        JointStateReader(names)


def test_joint_trajectory_layout():
    positions = np.arange(6.0).reshape(2, 3)
    velocities = -positions
    msg = joint_trajectory(ARM, positions, [0.1, 0.25], 5.5, velocities=velocities)
    msg = deserialize_message(serialize_message(msg), JointTrajectory)
    assert list(msg.joint_names) == list(ARM)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (5, 500_000_000)
    assert [list(p.positions) for p in msg.points] == positions.tolist()
    assert [list(p.velocities) for p in msg.points] == velocities.tolist()
    assert [(p.time_from_start.sec, p.time_from_start.nanosec) for p in msg.points] == [
        (0, 100_000_000), (0, 250_000_000)]
    no_velocity = joint_trajectory(ARM, positions, [0.1, 0.25], Time(sec=3))
    assert len(no_velocity.points[0].velocities) == 0 and no_velocity.header.stamp.sec == 3


@pytest.mark.parametrize("positions, times, velocities", [
    (np.zeros((2, 3)), [0.1, 0.1], None),  # not strictly increasing
    (np.zeros((2, 3)), [0.2, 0.1], None),
    (np.zeros((2, 3)), [-0.1, 0.1], None),
    (np.zeros((2, 3)), [0.1, math.nan], None),
    (np.zeros((2, 3)), [0.1], None),
    (np.zeros((2, 2)), [0.1, 0.2], None),
    (np.zeros((0, 3)), [], None),
    (np.full((2, 3), math.nan), [0.1, 0.2], None),
    (np.zeros((2, 3)), [0.1, 0.2], np.zeros((2, 2))),
])
def test_joint_trajectory_rejects_programming_errors(positions, times, velocities):
    with pytest.raises(ValueError):
        joint_trajectory(ARM, positions, times, 0.0, velocities=velocities)


def test_float64_multi_array_layout_and_reuse():
    msg = float64_multi_array(np.array([0.1, 0.2, 0.3]))
    assert list(msg.data) == [0.1, 0.2, 0.3]
    (dim,) = msg.layout.dim
    assert (dim.label, dim.size, dim.stride, msg.layout.data_offset) == ("joints", 3, 3, 0)
    msg = deserialize_message(serialize_message(msg), Float64MultiArray)
    again = float64_multi_array([1.0, 2.0, 3.0], out=msg)
    assert again is msg and list(again.data) == [1.0, 2.0, 3.0]


def test_controller_order_must_equal_the_profile():
    check_controller_joint_order(ARM, list(ARM))
    with pytest.raises(ConfigError, match="another order") as info:
        check_controller_joint_order(ARM, ["j2", "j1", "j3"], file="controllers.yaml")
    assert info.value.field == "joints" and info.value.file == "controllers.yaml"
    with pytest.raises(ConfigError, match="j4") as info:
        check_controller_joint_order(ARM, ["j1", "j2", "j4"], parameter="arm_controller.joints")
    assert info.value.field == "arm_controller.joints"
    with pytest.raises(ConfigError, match="repeats"):
        check_controller_joint_order(ARM, ["j1", "j2", "j3", "j3"])
