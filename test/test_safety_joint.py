"""Examples of every status path of command validation and the joint guard."""


import numpy as np
import pytest

from hv2r_ros.core.errors import LimitsError
from hv2r_ros.core.limits import JointLimits
from hv2r_ros.core.safety import CommandValidator, JointGuard, check_stamp, map_by_name
from hv2r_ros.core.status import Status

T = 0.01
NAMES = ("a", "b", "c")


@pytest.fixture
def limits():
    return JointLimits(names=NAMES, position_min=[-1.0, -2.0, 0.0], position_max=[1.0, 2.0, 3.0],
                       velocity_max=[1.0, 2.0, 1.5], acceleration_max=[10.0, 5.0, 20.0])


@pytest.fixture
def guard(limits):
    g = JointGuard(limits, T)
    g.reset(np.array([0.0, 0.0, 1.0]))
    return g


def run(guard, target, steps, measured=None):
    """Step ``steps`` times toward ``target``; returns outputs (steps+1, n) and statuses."""
    out, statuses = [guard.position], []
    for _ in range(steps):
        q, status = guard.step(target, out[-1] if measured is None else measured)
        out.append(q)
        statuses.append(status)
    return np.array(out), statuses


def assert_within_limits(limits, qs, v0=None):
    v = np.diff(qs, axis=0) / T
    a = np.diff(np.vstack([np.zeros(len(limits.names)) if v0 is None else v0, v]), axis=0) / T
    assert np.all(qs >= limits.position_min) and np.all(qs <= limits.position_max)
    assert np.all(np.abs(v) <= limits.velocity_max * (1 + 1e-9))
    assert np.all(np.abs(a) <= limits.acceleration_max * (1 + 1e-9))


# ----------------------------------------------------------------------------- validation
def test_names_are_mapped_by_name_into_profile_order():
    values, status = map_by_name(("c", "a", "b"), np.array([3.0, 1.0, 2.0]), NAMES)
    assert status is Status.OK
    assert values.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    "names", [("a", "b"), ("a", "b", "x"), ("a", "a", "b"), ("a", "b", "c", "d")]
)
def test_wrong_missing_or_duplicate_names_hold(names):
    values, status = map_by_name(names, np.zeros(len(names)), NAMES)
    assert values is None and status is Status.HOLD_WRONG_NAMES


def test_values_not_matching_names_is_wrong_length():
    validator = CommandValidator(NAMES, timeout_s=0.1)
    assert validator.validate(NAMES, [1.0, 2.0], 1.0, 1.0) == (None, Status.HOLD_WRONG_LENGTH)
    assert validator.validate(NAMES, [[1.0]] * 3, 1.0, 1.0) == (None, Status.HOLD_WRONG_LENGTH)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_any_non_finite_value_invalidates_the_whole_command(bad):
    validator = CommandValidator(NAMES, timeout_s=0.1)
    assert validator.validate(NAMES, [0.0, bad, 0.0], 1.0, 1.0) == (None, Status.HOLD_NON_FINITE)


def test_huge_and_subnormal_values_pass_validation_and_huge_ones_are_clamped(guard, limits):
    validator = CommandValidator(NAMES, timeout_s=0.1)
    values, status = validator.validate(NAMES, [1e30, -1e30, 5e-324], 1.0, 1.0)
    assert status is Status.OK
    qs, _ = run(guard, values, 400)
    assert qs[-1].tolist() == [1.0, -2.0, 5e-324]
    assert_within_limits(limits, qs)


def test_stamps_future_non_monotonic_and_stale():
    assert check_stamp(1.0015, 1.0, None, 0.1) is Status.OK  # within the 2 ms skew tolerance
    assert check_stamp(1.003, 1.0, None, 0.1) is Status.HOLD_FUTURE_STAMP
    assert check_stamp(0.95, 1.0, 0.95, 0.1) is Status.HOLD_NON_MONOTONIC
    assert check_stamp(0.94, 1.0, 0.95, 0.1) is Status.HOLD_NON_MONOTONIC
    assert check_stamp(0.89, 1.0, None, 0.1) is Status.HOLD_STALE
    assert check_stamp(float("nan"), 1.0, None, 0.1) is Status.HOLD_NON_FINITE


def test_only_accepted_commands_advance_the_previous_stamp():
    validator = CommandValidator(NAMES, timeout_s=0.1)
    assert validator.validate(NAMES, [0.0, 0.0, 0.0], 1.0, 1.0)[1] is Status.OK
    assert validator.validate(NAMES, [np.nan, 0, 0], 1.05, 1.05)[1] is Status.HOLD_NON_FINITE
    assert validator.previous_stamp_s == 1.0
    assert validator.validate(NAMES, [0.0, 0.0, 0.0], 1.02, 1.06)[1] is Status.OK
    validator.reset()
    assert validator.validate(NAMES, [0.0, 0.0, 0.0], 0.5, 0.5)[1] is Status.OK


# ----------------------------------------------------------------------------- seeding
def test_reset_command_equals_measured_state_with_zero_velocity(limits):
    guard = JointGuard(limits, T)
    measured = np.array([0.3, -0.2, 2.0])
    q, status = guard.reset(measured)
    assert status is Status.OK and q.tolist() == measured.tolist()
    assert guard.velocity.tolist() == [0.0, 0.0, 0.0]
    q, status = guard.step(measured, measured)
    assert status is Status.OK and q.tolist() == measured.tolist()


def test_measured_state_outside_limits_seeds_at_the_limit(limits):
    q, status = JointGuard(limits, T).reset(np.array([1.01, 0.0, -0.01]))
    assert status is Status.CLAMPED_POSITION and q.tolist() == [1.0, 0.0, 0.0]


def test_unseeded_guard_seeds_from_the_first_valid_measurement(limits):
    guard = JointGuard(limits, T)
    assert guard.step([0.5, 0, 1], [np.nan, 0, 1]) == (None, Status.HOLD_INVALID_MEASUREMENT)
    q, status = guard.step([0.5, 0, 1], [0.1, 0.2, 0.3])
    assert status is Status.HOLD_NOT_STARTED and q.tolist() == [0.1, 0.2, 0.3]


def test_invalid_measurement_refuses_reset_and_keeps_braking(guard):
    run(guard, np.array([1.0, 0.0, 1.0]), 20)
    assert guard.reset(np.array([np.nan, 0.0, 1.0])) == (None, Status.HOLD_INVALID_MEASUREMENT)
    _, status = guard.step(np.array([1.0, 0.0, 1.0]), guard.position)
    assert status is Status.HOLD_REQUESTED


def test_bad_period_is_rejected(limits):
    for period in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(LimitsError, match="control_period_s"):
            JointGuard(limits, period)


# ----------------------------------------------------------------------------- tracking
def test_reachable_target_is_followed_exactly(guard):
    target = guard.position + np.array([0.0005, -0.0002, 0.0001])
    q, status = guard.step(target, guard.position)
    assert status is Status.OK and np.array_equal(q, target)


def test_first_step_from_rest_is_acceleration_limited_and_keeps_direction(guard, limits):
    start = guard.position
    q, status = guard.step(np.array([0.9, 1.5, 2.5]), start)
    assert status is Status.SCALED_ACCELERATION
    move = q - start
    desired = np.array([0.9, 1.5, 2.5]) - start
    assert np.allclose(move / np.linalg.norm(move), desired / np.linalg.norm(desired))
    # joint b (a_max 5) is the bottleneck: it changes velocity by exactly a_max * T
    assert move[1] / T == pytest.approx(limits.acceleration_max[1] * T)


def test_cruise_is_velocity_limited(limits):
    guard = JointGuard(limits, T)
    guard.reset(np.array([-1.0, 0.0, 0.0]))
    qs, statuses = run(guard, np.array([1.0, 0.0, 0.0]), 60)
    assert Status.SCALED_VELOCITY in statuses
    assert np.max(np.abs(np.diff(qs[:, 0]))) / T == pytest.approx(1.0)


def test_fixed_target_is_reached_without_overshoot_and_stops(guard, limits):
    target = np.array([0.8, -1.5, 2.9])
    qs, statuses = run(guard, target, 300)
    assert np.array_equal(qs[-1], target) and statuses[-1] is Status.OK
    error = np.abs(qs - target)
    assert np.all(np.diff(error, axis=0) <= 1e-12)  # monotonic approach on every joint
    assert_within_limits(limits, qs)


def test_target_beyond_the_limit_stops_exactly_at_the_limit(guard, limits):
    qs, statuses = run(guard, np.array([5.0, -5.0, 9.0]), 400)
    assert qs[-1].tolist() == [1.0, -2.0, 3.0]
    assert statuses[-1] is Status.CLAMPED_POSITION
    assert_within_limits(limits, qs)


def test_reversal_decelerates_within_limits_then_reaches_the_new_target(guard, limits):
    run(guard, np.array([1.0, 2.0, 3.0]), 30)
    v_before = guard.velocity
    q_prev = guard.position
    target = np.array([-1.0, -2.0, 0.0])
    q, status = guard.step(target, q_prev)
    assert status is Status.SCALED_ACCELERATION
    v = (q - q_prev) / T
    # Every joint sheds speed toward the reversed target, no faster than the acceleration limit.
    assert np.all(np.abs(v) < np.abs(v_before))
    assert np.all(np.abs(v - v_before) <= guard.acceleration_limit * T * (1 + 1e-9))
    v_now = guard.velocity
    qs, _ = run(guard, target, 600)
    assert np.allclose(qs[-1], target)
    assert_within_limits(limits, qs, v0=v_now)


def test_authority_scales_the_velocity_limit(guard, limits):
    assert np.array_equal(guard.step(np.array([1.0, 2.0, 3.0]), guard.position, authority=0.0)[0],
                          np.array([0.0, 0.0, 1.0]))
    qs = [guard.position]
    for _ in range(100):
        qs.append(guard.step(np.array([1.0, 2.0, 3.0]), qs[-1], authority=0.25)[0])
    speed = np.abs(np.diff(np.array(qs), axis=0)) / T
    assert np.all(speed <= 0.25 * limits.velocity_max * (1 + 1e-12))


# ----------------------------------------------------------------------------- holds
@pytest.mark.parametrize(
    "command, hold, expected",
    [
        (None, None, Status.HOLD_REQUESTED),
        (np.array([np.nan, 0.0, 1.0]), None, Status.HOLD_NON_FINITE),
        (np.array([0.0, 1.0]), None, Status.HOLD_WRONG_LENGTH),
        (np.array([0.9, 1.9, 2.9]), Status.HOLD_ESTOP, Status.HOLD_ESTOP),
    ],
)
def test_hold_decelerates_within_limits_then_stays(guard, limits, command, hold, expected):
    qs, _ = run(guard, np.array([1.0, 2.0, 3.0]), 25)
    v0 = guard.velocity
    out = [guard.position]
    for _ in range(100):
        q, status = guard.step(command, out[-1], hold=hold)
        assert status is expected
        out.append(q)
    out = np.array(out)
    assert_within_limits(limits, out, v0=v0)
    speed = np.abs(np.diff(out, axis=0))
    assert np.all(np.diff(speed, axis=0) <= 1e-12)  # never speeds up
    assert np.array_equal(out[-1], out[-2])  # at rest: the resting point is the hold target


def test_hold_request_lasts_until_reset(guard):
    guard.hold()
    _, status = guard.step(np.array([0.5, 0.0, 1.0]), guard.position)
    assert status is Status.HOLD_REQUESTED
    guard.reset(guard.position)
    q, status = guard.step(guard.position + 1e-4, guard.position)
    assert status is Status.OK


def test_non_finite_measurement_holds_on_internal_state(guard, limits):
    run(guard, np.array([1.0, 2.0, 3.0]), 25)
    v0, out = guard.velocity, [guard.position]
    for _ in range(60):
        q, status = guard.step(np.array([1.0, 2.0, 3.0]), np.array([np.inf, 0.0, 0.0]))
        assert status is Status.HOLD_INVALID_MEASUREMENT
        out.append(q)
    assert_within_limits(limits, np.array(out), v0=v0)
    assert np.array_equal(guard.velocity, np.zeros(3))


# ----------------------------------------------------------------------------- braking math
def _brute_stop_distance(v, b, period):
    """Distance covered from speed v >= 0: this step at v, then v - b, v - 2b, ... > 0."""
    total, speed = v * period, v - b
    while speed > 0:
        total += speed * period
        speed -= b
    return total


def test_stopping_speed_inverts_the_discrete_braking_distance_exactly(limits):
    guard = JointGuard(limits, T)
    rng = np.random.default_rng(3)
    b = np.tile(limits.acceleration_max * T, 3)
    for d in [np.zeros(9), rng.uniform(0, 0.05, 9), rng.uniform(0, 3, 9),
              np.tile(b * T, 3)[:9] * np.arange(9) * (np.arange(9) + 1) / 2]:  # breakpoints
        speed = guard._stopping_speed(d.copy())
        for di, vi, bi in zip(d, speed, b):
            assert _brute_stop_distance(vi, bi, T) <= di + 1e-12
            assert _brute_stop_distance(vi * (1 + 1e-6) + 1e-9, bi, T) > di  # largest such speed


def test_admissible_set_is_not_empty_at_the_limit_at_full_allowed_speed(limits):
    guard = JointGuard(limits, T)
    guard.reset(np.array([0.0, 0.0, 1.0]))
    # Drive at the edge of the braking constraint, then ask to reverse: it must still brake
    # within the acceleration limit and end exactly at the position limit, never past it.
    qs, _ = run(guard, np.array([1.0, 2.0, 3.0]), 200)
    assert qs[-1].tolist() == [1.0, 2.0, 3.0]
    assert_within_limits(limits, qs)


def test_streamed_target_is_followed_at_its_own_speed(guard, limits):
    """A target moving each period is a trajectory: the guard follows it without lagging.

    The stop-at-target cap alone would hold the speed near sqrt(2 a d) for the few millimetres
    between two stream points; the guard must instead converge to the stream's speed.
    """
    speed = 0.5 * limits.velocity_max  # rad/s, inside every limit
    start = guard.position.copy()
    out = [start]
    # The stream moves for 1.6 s, then stops at 0.8 v_max x 1.6 s from the start (in limits).
    for k in range(1, int(2.5 / T)):
        q, status = guard.step(start + speed * min(k * T, 1.6), out[-1])
        out.append(q)
    qs = np.array(out)
    v = np.diff(qs, axis=0) / T
    cruise = v[int(0.8 / T):int(1.5 / T)]  # after ramp-up and catch-up, before the stop
    assert np.allclose(cruise, speed, rtol=1e-6)
    assert_within_limits(limits, qs)
