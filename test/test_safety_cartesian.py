"""Examples of every status path of the Cartesian filter."""

import math

import numpy as np
import pytest

from hv2r_ros.core.errors import LimitsError
from hv2r_ros.core.limits import CartesianLimits
from hv2r_ros.core.safety import CartesianFilter, check_poses
from hv2r_ros.core.safety.cartesian import quat_angle
from hv2r_ros.core.status import Status

DT = 0.01
IDENTITY = [0.0, 0.0, 0.0, 1.0]


@pytest.fixture
def limits():
    return CartesianLimits(frame="base", box_min=[-0.5, -0.5, 0.0], box_max=[0.5, 0.5, 1.0],
                           linear_speed_max=0.25, angular_speed_max=1.0)


def pose(x, y, z, quaternion=IDENTITY):
    return np.array([[x, y, z, *quaternion]])


def about_z(angle):
    return [0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2)]


@pytest.fixture
def flt(limits):
    f = CartesianFilter(limits, ("tool",), DT)
    f.reset(pose(0.0, 0.0, 0.5))
    return f


def test_check_poses_paths():
    assert check_poses(np.zeros((2, 7)), 1)[1] is Status.HOLD_WRONG_LENGTH
    assert check_poses(np.zeros((1, 6)), 1)[1] is Status.HOLD_WRONG_LENGTH
    assert check_poses(pose(np.nan, 0, 0), 1)[1] is Status.HOLD_NON_FINITE
    assert check_poses(pose(0, 0, 0, [0, 0, 0, 0]), 1)[1] is Status.HOLD_INVALID_ROTATION
    assert check_poses(pose(0, 0, 0, [0, 0, 0, 1.1]), 1)[1] is Status.HOLD_INVALID_ROTATION
    near, status = check_poses(pose(0, 0, 0, [0, 0, 0, 1.005]), 1)
    assert status is Status.OK and near[0, 3:].tolist() == IDENTITY  # normalised


def test_reset_equals_measured_pose_even_outside_the_box(limits):
    f = CartesianFilter(limits, ("tool",), DT)
    out, status = f.reset(pose(2.0, 0.0, 0.5))
    assert status is Status.OK and out.tolist() == pose(2.0, 0.0, 0.5).tolist()


def test_reachable_target_passes_unchanged(flt):
    out, status = flt.step(pose(0.001, 0.0, 0.5, about_z(0.005)), None)
    assert status is Status.HOLD_INVALID_MEASUREMENT  # no measurement: hold, never move blind
    target = pose(0.001, 0.0, 0.5, about_z(0.005))
    out, status = flt.step(target, pose(0.0, 0.0, 0.5))
    assert status is Status.OK and np.allclose(out, target, atol=1e-15)


def test_target_outside_the_box_is_clamped(limits):
    f = CartesianFilter(limits, ("tool",), DT)
    f.reset(pose(0.499, 0.0, 0.5))
    out, status = f.step(pose(0.6, 0.0, 0.5), pose(0.499, 0.0, 0.5))
    assert status is Status.CLAMPED_WORKSPACE and out[0, :3].tolist() == [0.5, 0.0, 0.5]


def test_linear_speed_is_scaled_keeping_direction(flt, limits):
    out, status = flt.step(pose(0.3, 0.4, 0.5), pose(0, 0, 0.5))
    assert status is Status.SCALED_TOOL_SPEED
    move = out[0, :3] - [0.0, 0.0, 0.5]
    assert np.linalg.norm(move) == pytest.approx(limits.linear_speed_max * DT)
    assert np.allclose(move / np.linalg.norm(move), [0.6, 0.8, 0.0])


def test_angular_speed_is_scaled_by_slerp(flt, limits):
    out, status = flt.step(pose(0, 0, 0.5, about_z(math.pi / 2)), pose(0, 0, 0.5))
    assert status is Status.SCALED_TOOL_SPEED
    assert np.allclose(out[0, 3:], about_z(limits.angular_speed_max * DT))


def test_one_scale_for_every_frame(limits):
    f = CartesianFilter(limits, ("left", "right"), DT)
    start = np.array([[0.0, 0.2, 0.5, *IDENTITY], [0.0, -0.2, 0.5, *IDENTITY]])
    f.reset(start)
    target = start.copy()
    target[0, 0] += 0.1  # far
    target[1, 0] += 0.01  # near
    out, status = f.step(target, start)
    assert status is Status.SCALED_TOOL_SPEED
    assert (out - start)[1, 0] / (out - start)[0, 0] == pytest.approx(0.1)


def test_flipped_quaternion_is_the_same_rotation(flt):
    out, status = flt.step(pose(0, 0, 0.5, [0, 0, 0, -1.0]), pose(0, 0, 0.5))
    assert status is Status.OK and np.allclose(out, pose(0, 0, 0.5))


def test_outside_box_output_moves_toward_the_box_never_further_out(limits):
    f = CartesianFilter(limits, ("tool",), DT)
    f.reset(pose(0.8, 0.0, 0.5))
    xs = [0.8]
    for _ in range(200):
        out, _ = f.step(pose(3.0, 0.0, 0.5), pose(0.8, 0.0, 0.5))
        xs.append(out[0, 0])
    steps = np.diff(xs)
    assert np.all(steps <= 0.0) and np.all(np.abs(steps) <= limits.linear_speed_max * DT + 1e-15)
    assert xs[-1] == 0.5


@pytest.mark.parametrize("target, hold, expected", [
    (None, None, Status.HOLD_REQUESTED),
    (pose(0.3, 0, 0.5, [0, 0, 0, 3.0]), None, Status.HOLD_INVALID_ROTATION),
    (pose(0.3, 0, math.inf), None, Status.HOLD_NON_FINITE),
    (pose(0.3, 0, 0.5), Status.HOLD_ESTOP, Status.HOLD_ESTOP),
])
def test_hold_moves_to_the_measured_pose_within_limits(flt, limits, target, hold, expected):
    measured = pose(0.52, 0.0, 0.5)  # outside the box: the hold target is clamped into it
    for _ in range(400):
        out, status = flt.step(target, measured, hold=hold)
        assert status is expected
    assert np.allclose(out, pose(0.5, 0.0, 0.5))


def test_invalid_measurement_stops_at_the_last_output(flt):
    flt.step(pose(0.3, 0.0, 0.5), pose(0.0, 0.0, 0.5))
    before = flt.pose
    out, status = flt.step(pose(0.3, 0.0, 0.5), pose(np.nan, 0.0, 0.5))
    assert status is Status.HOLD_INVALID_MEASUREMENT and np.array_equal(out, before)


def test_unseeded_filter_seeds_from_the_measurement(limits):
    f = CartesianFilter(limits, ("tool",), DT)
    assert f.step(pose(0, 0, 0.5), None) == (None, Status.HOLD_INVALID_MEASUREMENT)
    out, status = f.step(pose(0.3, 0, 0.5), pose(0.1, 0, 0.5))
    assert status is Status.HOLD_NOT_STARTED and np.allclose(out, pose(0.1, 0, 0.5))


def test_chunk_is_filtered_consistently_without_stepping(flt, limits):
    chunk = np.stack([pose(0.05 * k, 0, 0.5, about_z(0.3 * k)) for k in range(1, 9)])
    out, status = flt.filter_chunk(chunk, 0.1)
    assert status is Status.SCALED_TOOL_SPEED and out.shape == chunk.shape
    previous = np.vstack([flt.pose[None], out])
    steps = np.linalg.norm(np.diff(previous[:, 0, :3], axis=0), axis=1)
    assert np.all(steps <= limits.linear_speed_max * 0.1 + 1e-15)
    assert np.all(quat_angle(previous[:-1, 0, 3:], previous[1:, 0, 3:]) <= 0.1 + 1e-12)
    assert np.allclose(flt.pose, pose(0, 0, 0.5))  # the filter state is untouched
    chunk[3, 0, 2] = np.nan
    assert flt.filter_chunk(chunk, 0.1) == (None, Status.HOLD_NON_FINITE)


def test_bad_construction_is_rejected(limits):
    with pytest.raises(LimitsError, match="control_period_s"):
        CartesianFilter(limits, ("tool",), 0.0)
    with pytest.raises(LimitsError, match="end_effector_frames"):
        CartesianFilter(limits, (), DT)
