"""The safety filter stage's core (ActionFilter): validation and clamping, with generated inputs."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from action_filter_rig import Rig
from hv2r_ros.core.action_filter import state_message
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.status import Status

TOL = 1e-9  # float slack on geometric bounds [m, rad]


@pytest.fixture(scope="module")
def panda():
    return load_robot_profile("panda")


@pytest.fixture(scope="module")
def g1():
    return load_robot_profile("g1")  # two end-effector frames (both hands)


# --- validation ---------------------------------------------------------------------------

@pytest.mark.parametrize("space", ["cartesian", "joint"])
def test_a_valid_chunk_is_forwarded_and_feeds_the_watchdog(panda, space):
    rig = Rig(panda, space)
    assert rig.filter.state()[0] is Status.HOLD_TIMEOUT  # nothing since activation
    out, status = rig.send(rig.step())
    assert status is Status.OK and out.shape == rig.step().shape
    np.testing.assert_allclose(out, rig.step(), atol=1e-12)
    assert rig.filter.watchdog.age_s() == 0.0 and rig.fed_at == rig.clock.now
    assert rig.filter.state() == (Status.OK, "")


BAD = st.sampled_from([math.nan, math.inf, -math.inf])


@settings(max_examples=60)
@given(space=st.sampled_from(["cartesian", "joint"]), bad=BAD, where=st.integers(0, 10**6))
def test_non_finite_values_reject_the_whole_chunk(panda, space, bad, where):
    rig = Rig(panda, space)
    rig.send(rig.step())
    rig.advance(0.02)
    chunk = rig.step().copy()
    chunk.reshape(-1)[where % chunk.size] = bad
    out, status = rig.send(chunk)
    assert out is None and status is Status.HOLD_NON_FINITE
    assert rig.watchdog_unfed()
    assert rig.filter.state()[0] is Status.HOLD_NON_FINITE
    out, status = rig.send(rig.step())  # the next valid chunk resumes
    assert status is Status.OK and rig.filter.state()[0] is Status.OK


@pytest.mark.parametrize("space", ["cartesian", "joint"])
@pytest.mark.parametrize("field", ["stamp", "times"])
def test_non_finite_stamps_and_times_are_rejected(panda, space, field):
    rig = Rig(panda, space)
    times = 0.1 * np.arange(5)
    kwargs = {"stamp_s": math.nan} if field == "stamp" else {"times": np.r_[times[:4], np.inf]}
    out, status = rig.send(rig.step(), **kwargs)
    assert out is None and status is Status.HOLD_NON_FINITE


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1))
def test_shuffled_joint_names_are_mapped_by_name(panda, seed):
    rig = Rig(panda, "joint")
    rng = np.random.default_rng(seed)
    chunk = rig.q + rng.uniform(-0.05, 0.05, (4, len(rig.q)))
    order = rng.permutation(len(rig.q))
    names = [panda.joint_names[i] for i in order]
    out, status = rig.send(chunk[:, order], names=names)
    reference = Rig(panda, "joint")
    expected, expected_status = reference.send(chunk)
    assert status is expected_status and not status.is_hold
    np.testing.assert_array_equal(out, expected)


def _names_cases(names):
    cases = [
        names[1:],                        # missing
        names + ("extra",),               # extra
        ("nonexistent",) + names[1:],     # unknown
        names + (names[0],),              # duplicate
        (),                               # none
    ]
    if len(names) > 1:
        cases.append((names[0],) * len(names))  # duplicates, right count
    return cases


@pytest.mark.parametrize("space", ["cartesian", "joint"])
def test_wrong_names_are_rejected(panda, space):
    rig = Rig(panda, space)
    names = rig.filter.names
    for bad in _names_cases(names):
        chunk = rig.step()
        if len(bad) != len(names):
            shape = list(chunk.shape)
            shape[1] = len(bad)
            chunk = np.resize(chunk, shape)
        out, status = rig.send(chunk, names=bad)
        assert out is None and status is Status.HOLD_WRONG_NAMES, bad
    assert rig.watchdog_unfed()


@pytest.mark.parametrize("space", ["cartesian", "joint"])
def test_wrong_lengths_are_rejected(panda, space):
    rig = Rig(panda, space)
    good = rig.step()
    cases = [good[:, :, :6] if space == "cartesian" else good[:, :-1],  # row too short
             good[:0],                                                   # no step
             good[0],                                                    # not a chunk
             [[1.0, 2.0], [3.0]]]                                        # ragged
    for chunk in cases:
        out, status = rig.send(chunk, times=[0.0])
        assert out is None and status is Status.HOLD_WRONG_LENGTH
    out, status = rig.send(good, times=[0.0, 0.1])  # times do not match the steps
    assert out is None and status is Status.HOLD_WRONG_LENGTH
    assert rig.watchdog_unfed()


@pytest.mark.parametrize("times", [[0.0, 0.1, 0.1], [0.0, 0.2, 0.1], [-0.1, 0.0, 0.1]])
def test_times_must_be_non_negative_and_strictly_increasing(panda, times):
    rig = Rig(panda, "joint")
    out, status = rig.send(rig.step(3), times=np.array(times))
    assert out is None and status is Status.HOLD_NON_MONOTONIC


def test_unnormalised_quaternions_are_rejected(panda):
    rig = Rig(panda)
    chunk = rig.step().copy()
    chunk[2, 0, 3:] *= 1.5
    assert rig.send(chunk) == (None, Status.HOLD_INVALID_ROTATION)
    chunk[2, 0, 3:] = 1e30
    assert rig.send(chunk) == (None, Status.HOLD_INVALID_ROTATION)


@settings(max_examples=60)
@given(space=st.sampled_from(["cartesian", "joint"]),
       lead_s=st.floats(0.0021, 1e6), age_s=st.floats(0.2001, 1e6),
       back_s=st.floats(0.0, 0.1))
def test_future_stale_duplicate_and_reordered_stamps(panda, space, lead_s, age_s, back_s):
    rig = Rig(panda, space)  # max_action_age_s 0.2, future tolerance 2 ms
    now = rig.clock.now
    assert rig.send(rig.step(), stamp_s=now + lead_s)[1] is Status.HOLD_FUTURE_STAMP
    assert rig.send(rig.step(), stamp_s=now - age_s)[1] is Status.HOLD_STALE
    assert rig.watchdog_unfed()  # never fed: the state says HOLD_TIMEOUT
    assert rig.send(rig.step(), age_s=0.05)[1] is Status.OK
    first = rig.clock.now - 0.05
    rig.advance(0.03)
    out, status = rig.send(rig.step(), stamp_s=first - back_s)  # duplicate (0) or older
    assert out is None and status is Status.HOLD_NON_MONOTONIC
    assert rig.watchdog_unfed() and rig.filter.state()[0] is Status.HOLD_NON_MONOTONIC
    # inside the tolerances: 2 ms ahead and just inside the age limit are accepted
    assert rig.send(rig.step(), stamp_s=rig.clock.now + 0.002)[1] is Status.OK
    rig.advance(0.25)
    assert rig.send(rig.step(), stamp_s=rig.clock.now - 0.1999)[1] is Status.OK


def test_chunks_while_inactive_are_not_forwarded(panda):
    rig = Rig(panda)
    rig.filter.deactivate()
    assert rig.send(rig.step()) == (None, Status.HOLD_NOT_STARTED)
    assert rig.filter.state()[0] is Status.HOLD_NOT_STARTED
    assert state_message(*rig.filter.state()).startswith("HOLD HOLD_NOT_STARTED: ")


# --- clamping -----------------------------------------------------------------------------

def _unit_quaternions(n, rng):
    q = rng.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _angle(a, b):
    return 2.0 * np.arccos(np.clip(np.abs(np.sum(a * b, axis=-1)), 0.0, 1.0))


@settings(max_examples=80)
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([0.5, 10.0, 1e3, 1e30]),
       steps=st.integers(1, 30), late_s=st.floats(0.0, 0.15))
def test_cartesian_chunks_far_outside_stay_in_the_box_and_under_tool_speed(
        panda, seed, scale, steps, late_s):
    rig = Rig(panda)
    ws = panda.workspace
    rng = np.random.default_rng(seed)
    rig.q = panda.home + rng.uniform(-0.3, 0.3, panda.home.shape)
    start = rig.poses()[0]
    if not ((start[:3] >= ws.box_min).all() and (start[:3] <= ws.box_max).all()):
        rig.q = panda.home.copy()
        start = rig.poses()[0]
    rig.advance(0.0)
    chunk = np.empty((steps, 1, 7))
    chunk[:, 0, :3] = rng.uniform(-scale, scale, (steps, 3))
    chunk[:, 0, 3:] = _unit_quaternions(steps, rng)
    times = np.cumsum(rng.uniform(0.005, 0.2, steps)) - 0.005
    out, status = rig.send(chunk, times=times, age_s=late_s)
    assert out is not None and status in (Status.CLAMPED_WORKSPACE, Status.SCALED_TOOL_SPEED,
                                          Status.OK)
    positions = out[:, 0, :3]
    assert (positions >= ws.box_min - TOL).all() and (positions <= ws.box_max + TOL).all()
    np.testing.assert_allclose(np.linalg.norm(out[:, 0, 3:], axis=1), 1.0, atol=1e-9)
    dts = np.diff(times, prepend=times[0])
    dts[0] = max(panda.control_period_s, times[0] - late_s)
    previous = np.vstack([start[None], out[:-1, 0]])
    linear = np.linalg.norm(out[:, 0, :3] - previous[:, :3], axis=1)
    angular = _angle(out[:, 0, 3:], previous[:, 3:])
    assert (linear <= ws.linear_speed_max * dts + TOL).all()
    assert (angular <= ws.angular_speed_max * dts + 1e-7).all()


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1))
def test_two_hands_shuffled_frames_are_mapped_and_limited_together(g1, seed):
    rig = Rig(g1)
    ws = g1.workspace
    rng = np.random.default_rng(seed)
    start = rig.poses()
    chunk = np.repeat(start[None], 4, axis=0)
    chunk[:, :, :3] += rng.uniform(-2.0, 2.0, (4, 2, 3))
    out, status = rig.send(chunk)
    swapped, swapped_status = Rig(g1).send(chunk[:, ::-1], names=rig.filter.names[::-1])
    assert status is swapped_status and not status.is_hold
    np.testing.assert_array_equal(out, swapped)
    inside = (start[:, :3] >= ws.box_min) & (start[:, :3] <= ws.box_max)
    positions = out[:, :, :3]
    assert ((positions >= ws.box_min - TOL) | ~inside).all()
    assert ((positions <= ws.box_max + TOL) | ~inside).all()
    previous = np.concatenate([start[None], out[:-1]])
    dts = np.r_[g1.control_period_s, np.full(3, 0.1)]
    linear = np.linalg.norm(positions - previous[:, :, :3], axis=2)
    assert (linear <= ws.linear_speed_max * dts[:, None] + TOL).all()


@settings(max_examples=80)
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([0.1, 5.0, 1e30]),
       steps=st.integers(1, 30))
def test_joint_chunks_stay_in_limits_under_speed_and_keep_direction(panda, seed, scale, steps):
    rig = Rig(panda, "joint")
    limits = panda.limits
    rng = np.random.default_rng(seed)
    chunk = rig.q + rng.uniform(-scale, scale, (steps, len(rig.q)))
    times = np.cumsum(rng.uniform(0.005, 0.2, steps)) - 0.005
    out, status = rig.send(chunk, times=times, age_s=0.0)
    assert out is not None and not status.is_hold
    assert (out >= limits.position_min - TOL).all() and (out <= limits.position_max + TOL).all()
    dts = np.diff(times, prepend=times[0])
    dts[0] = max(panda.control_period_s, times[0])
    previous = np.vstack([rig.q[None], out[:-1]])
    moved = out - previous
    assert (np.abs(moved) <= limits.velocity_max * dts[:, None] + TOL).all()
    wanted = np.clip(chunk, limits.position_min, limits.position_max) - previous
    for m, w in zip(moved, wanted):  # scaled, never turned: m = s * w with s in [0, 1]
        s = np.dot(m, w) / max(np.dot(w, w), 1e-300)
        assert -TOL <= s <= 1.0 + TOL
        np.testing.assert_allclose(m, s * w, atol=1e-9)


def test_authority_ramp_scales_the_allowed_speed(panda):
    rig = Rig(panda, "joint", authority_ramp_s=1.0)
    far = rig.q + np.full(rig.q.shape, 0.5)
    chunk = np.repeat(far[None], 3, axis=0)
    # authority 0 right after activation: the chunk stays at the measured state
    out, status = rig.send(chunk, stamp_s=rig.clock.now)
    assert status is Status.SCALED_VELOCITY
    np.testing.assert_array_equal(out, np.repeat(rig.q[None], 3, axis=0))
    rig.advance(0.5)  # authority 0.5: half the speed limit
    out, _ = rig.send(chunk, stamp_s=rig.clock.now)
    step = np.abs(out[1] - out[0]).max()
    assert step == pytest.approx(0.5 * panda.limits.velocity_max.min() * 0.1)
