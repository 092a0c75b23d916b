"""Action chunks <-> trajectory messages, gripper companion, and the stamp conversions."""

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Duration, Time
from rclpy.serialization import deserialize_message, serialize_message

from hv2r_ros.core.status import Status
from hv2r_ros.ros.actions import (
    GRIPPER_JOINT,
    cartesian_chunk_to_msg,
    gripper_chunk_to_msg,
    joint_chunk_to_msg,
    read_cartesian_chunk,
    read_gripper_chunk,
    read_joint_chunk,
)
from hv2r_ros.ros.stamps import (
    duration_from_seconds,
    duration_to_seconds,
    from_nanoseconds,
    from_seconds,
    to_nanoseconds,
    to_seconds,
)

pytestmark = pytest.mark.ros  # needs rclpy and the message packages

FRAMES = ("left_hand", "right_hand")
JOINTS = ("j1", "j2", "j3")
TIMES = np.array([0.02, 0.04, 0.06, 0.08])
RNG = np.random.default_rng(3)


def wire(msg):
    return deserialize_message(serialize_message(msg), type(msg))


def cartesian_chunk(steps=4):
    chunk = RNG.normal(size=(steps, len(FRAMES), 7))
    chunk[..., 3:] /= np.linalg.norm(chunk[..., 3:], axis=-1, keepdims=True)
    return chunk


def test_cartesian_round_trip_in_profile_order():
    chunk = cartesian_chunk()
    msg = wire(cartesian_chunk_to_msg(FRAMES, chunk, TIMES, 100.125, "base"))
    assert list(msg.joint_names) == list(FRAMES) and msg.header.frame_id == "base"
    assert len(msg.points) == 4 and all(len(p.transforms) == 2 for p in msg.points)
    assert msg.points[1].transforms[1].rotation.w == chunk[1, 1, 6]
    out, times, stamp_s, status = read_cartesian_chunk(msg, FRAMES, frame_id="base")
    assert status is Status.OK and stamp_s == 100.125
    np.testing.assert_array_equal(out, chunk)
    np.testing.assert_allclose(times, TIMES, atol=1e-9)
    swapped, _, _, status = read_cartesian_chunk(msg, FRAMES[::-1])
    assert status is Status.OK
    np.testing.assert_array_equal(swapped, chunk[:, ::-1])
    assert swapped.shape == (4, 2, 7) and swapped.flags.c_contiguous


def corrupt(msg, how):
    if how == "nan":
        msg.points[2].transforms[0].translation.y = math.nan
    elif how == "inf_rotation":
        msg.points[0].transforms[1].rotation.w = math.inf
    elif how == "missing_transform":
        msg.points[1].transforms = msg.points[1].transforms[:1]
    elif how == "unknown_frame":
        msg.joint_names = ["left_hand", "tool0"]
    elif how == "duplicate_frame":
        msg.joint_names = ["left_hand", "left_hand"]
    elif how == "no_points":
        msg.points = []
    elif how == "time_backwards":
        msg.points[3].time_from_start = Duration(sec=0, nanosec=10_000_000)
    elif how == "time_repeated":
        msg.points[1].time_from_start = msg.points[0].time_from_start
    elif how == "negative_time":
        msg.points[0].time_from_start = Duration(sec=-1, nanosec=0)
    elif how == "other_base":
        msg.header.frame_id = "world"
    return msg


@pytest.mark.parametrize("how, expected", [
    ("nan", Status.HOLD_NON_FINITE),
    ("inf_rotation", Status.HOLD_NON_FINITE),
    ("missing_transform", Status.HOLD_WRONG_LENGTH),
    ("unknown_frame", Status.HOLD_WRONG_NAMES),
    ("duplicate_frame", Status.HOLD_WRONG_NAMES),
    ("no_points", Status.HOLD_WRONG_LENGTH),
    ("time_backwards", Status.HOLD_NON_MONOTONIC),
    ("time_repeated", Status.HOLD_NON_MONOTONIC),
    ("negative_time", Status.HOLD_NON_MONOTONIC),
    ("other_base", Status.HOLD_WRONG_NAMES),
])
def test_bad_cartesian_chunks_hold_and_still_report_the_stamp(how, expected):
    msg = corrupt(wire(cartesian_chunk_to_msg(FRAMES, cartesian_chunk(), TIMES, 7.5, "base")), how)
    assert read_cartesian_chunk(msg, FRAMES, frame_id="base") == (None, None, 7.5, expected)


def test_joint_chunk_round_trip_by_name():
    chunk = RNG.normal(size=(4, 3))
    msg = wire(joint_chunk_to_msg(["j3", "j1", "j2"], chunk, TIMES, Time(sec=9, nanosec=5)))
    out, times, stamp_s, status = read_joint_chunk(msg, JOINTS)
    assert status is Status.OK and stamp_s == pytest.approx(9.000000005)
    np.testing.assert_array_equal(out, chunk[:, [1, 2, 0]])
    np.testing.assert_allclose(times, TIMES, atol=1e-9)


@pytest.mark.parametrize("how, expected", [
    ("nan", Status.HOLD_NON_FINITE),
    ("short_point", Status.HOLD_WRONG_LENGTH),
    ("extra_joint", Status.HOLD_WRONG_NAMES),
    ("missing_joint", Status.HOLD_WRONG_NAMES),
    ("no_points", Status.HOLD_WRONG_LENGTH),
    ("time_repeated", Status.HOLD_NON_MONOTONIC),
])
def test_bad_joint_chunks_hold(how, expected):
    msg = wire(joint_chunk_to_msg(JOINTS, np.zeros((4, 3)), TIMES, 2.0))
    if how == "nan":
        msg.points[1].positions[2] = math.nan
    elif how == "short_point":
        msg.points[2].positions = msg.points[2].positions[:2]
    elif how == "extra_joint":
        msg.joint_names = [*JOINTS, "finger"]
        for p in msg.points:
            p.positions.append(0.0)
    elif how == "missing_joint":
        msg.joint_names = ["j1", "j2"]
        for p in msg.points:
            p.positions = p.positions[:2]
    elif how == "no_points":
        msg.points = []
    elif how == "time_repeated":
        msg.points[3].time_from_start = msg.points[2].time_from_start
    assert read_joint_chunk(msg, JOINTS) == (None, None, 2.0, expected)


def test_writers_reject_programming_errors():
    with pytest.raises(ValueError):
        cartesian_chunk_to_msg(FRAMES, np.zeros((4, 3, 7)), TIMES, 0.0, "base")
    with pytest.raises(ValueError):
        cartesian_chunk_to_msg(FRAMES, cartesian_chunk(), TIMES[::-1], 0.0, "base")
    with pytest.raises(ValueError):
        cartesian_chunk_to_msg(FRAMES, np.full((4, 2, 7), math.nan), TIMES, 0.0, "base")
    with pytest.raises(ValueError):
        joint_chunk_to_msg(JOINTS, np.zeros((4, 3)), TIMES[:3], 0.0)


def test_gripper_companion_shares_stamp_and_times():
    commands = np.array([0.0, 0.25, 1.0, 1.0])
    msg = wire(gripper_chunk_to_msg(commands, TIMES, 4.0))
    assert list(msg.joint_names) == [GRIPPER_JOINT]
    out, times, stamp_s, status = read_gripper_chunk(msg)
    assert status is Status.OK and stamp_s == 4.0 and out.shape == (4,)
    np.testing.assert_array_equal(out, commands)
    arm = wire(joint_chunk_to_msg(JOINTS, np.zeros((4, 3)), TIMES, 4.0))
    assert [p.time_from_start for p in arm.points] == [p.time_from_start for p in msg.points]
    msg.joint_names = ["finger"]
    assert read_gripper_chunk(msg) == (None, None, 4.0, Status.HOLD_WRONG_NAMES)


# --- stamps --------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds, sec, nanosec", [
    (0.0, 0, 0), (1.5, 1, 500_000_000), (0.000000001, 0, 1), (2.999999999, 2, 999_999_999),
    (1_700_000_000.25, 1_700_000_000, 250_000_000), (3.9999999999, 4, 0),
])
def test_from_seconds_splits_exactly(seconds, sec, nanosec):
    stamp = from_seconds(seconds)
    assert (stamp.sec, stamp.nanosec) == (sec, nanosec)
    duration = duration_from_seconds(seconds)
    assert (duration.sec, duration.nanosec) == (sec, nanosec)


def test_round_trips():
    for ns in (0, 1, 999_999_999, 123_456_789_012, 1_700_000_000_123_456_789):
        assert to_nanoseconds(from_nanoseconds(ns)) == ns
    for sec, nanosec in ((0, 1), (12, 345_678_901), (86_400, 999_999_999)):
        stamp = Time(sec=sec, nanosec=nanosec)
        back = from_seconds(to_seconds(stamp))
        assert (back.sec, back.nanosec) == (sec, nanosec)
    epoch = Time(sec=1_700_000_000, nanosec=123_456_789)
    back = from_seconds(to_seconds(epoch))  # float resolution there is ~0.24 us
    assert back.sec == epoch.sec and abs(back.nanosec - epoch.nanosec) < 500
    assert duration_to_seconds(Duration(sec=-1, nanosec=500_000_000)) == -0.5


def test_fills_in_place():
    stamp = Time()
    assert from_seconds(2.25, out=stamp) is stamp and stamp.nanosec == 250_000_000


@pytest.mark.parametrize("bad", [-1e-9, -5.0, math.nan, math.inf, -math.inf, 2.0**31])
def test_invalid_seconds_are_rejected(bad):
    with pytest.raises(ValueError):
        from_seconds(bad)
    with pytest.raises(ValueError):
        duration_from_seconds(bad)


def test_invalid_nanoseconds_are_rejected():
    with pytest.raises(ValueError):
        from_nanoseconds(-1)
