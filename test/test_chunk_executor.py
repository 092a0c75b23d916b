"""Chunk execution by time (receding horizon, temporal ensembling) and the output gate.

Pure core, fake clocks: no ROS, no sleeping.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hv2r_ros.core.chunk_executor import (
    TIME_TOLERANCE_S,
    ChunkExecutor,
    interpolate_rows,
)
from hv2r_ros.core.output_gate import OutputGate
from hv2r_ros.core.errors import LimitsError
from hv2r_ros.core.status import Status
from fake_clock import FakeClock

T0 = 1000.0  # capture time of the first observation [s]


def ramp(steps, start=0.0, slope=1.0, joints=2):
    """Joint chunk whose joint j at point i is start + slope * i + 10 j."""
    i = np.arange(steps, dtype=float)[:, None]
    return start + slope * i + 10.0 * np.arange(joints)[None, :]


def quat_z(angle):
    return np.array([0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2)])


def pose_chunk(angles, xs):
    rows = np.zeros((len(angles), 1, 7))
    rows[:, 0, 0] = xs
    rows[:, 0, 3:] = [quat_z(a) for a in angles]
    return rows


# ---------------------------------------------------------------- receding horizon
def test_receding_horizon_picks_by_time_and_interpolates():
    ex = ChunkExecutor()
    times = np.array([0.0, 0.1, 0.2, 0.3])
    assert ex.add(ramp(4), times, T0, now_s=T0) is Status.OK
    target, status = ex.target(T0 + 0.1)
    assert status is Status.OK
    np.testing.assert_allclose(target, [1.0, 11.0])
    target, _ = ex.target(T0 + 0.125)  # a quarter of the way from point 1 to point 2
    np.testing.assert_allclose(target, [1.25, 11.25])
    target, _ = ex.target(T0 + 0.3)  # the last point is still due
    np.testing.assert_allclose(target, [3.0, 13.0])
    assert ex.source_stamp_s == T0


def test_late_chunk_skips_the_actions_already_due():
    """Inference took 70 ms: the chunk arrives when its first actions are already past."""
    ex = ChunkExecutor()
    times = np.arange(10) * 0.02
    assert ex.add(ramp(10), times, T0, now_s=T0 + 0.07) is Status.OK
    target, status = ex.target(T0 + 0.07)
    assert status is Status.OK
    np.testing.assert_allclose(target, [3.5, 13.5])  # between points 3 and 4, not point 0
    assert ex.stats.summary().latency_p50_ms == pytest.approx(70.0)


def test_newest_chunk_wins_in_receding_horizon():
    ex = ChunkExecutor()
    times = np.arange(10) * 0.1
    ex.add(ramp(10), times, T0, now_s=T0)
    ex.add(ramp(10, start=100.0), times, T0 + 0.25, now_s=T0 + 0.25)
    target, _ = ex.target(T0 + 0.3)
    np.testing.assert_allclose(target, [100.5, 110.5])
    assert ex.source_stamp_s == T0 + 0.25


def test_running_past_every_chunk_holds_instead_of_extrapolating():
    ex = ChunkExecutor()
    assert ex.target(T0) == (None, Status.HOLD_TIMEOUT)  # nothing received yet
    ex.add(ramp(3), [0.0, 0.1, 0.2], T0, now_s=T0)
    assert ex.target(T0 + 0.2)[1] is Status.OK
    target, status = ex.target(T0 + 0.2 + 2 * TIME_TOLERANCE_S)
    assert target is None and status is Status.HOLD_STALE and status.is_hold
    assert len(ex) == 0 and ex.source_stamp_s is None


def test_pending_chunk_targets_its_first_point_not_before_it():
    ex = ChunkExecutor()
    ex.add(ramp(3), [0.05, 0.1, 0.15], T0, now_s=T0 + 0.01)
    target, status = ex.target(T0 + 0.02)
    np.testing.assert_allclose(target, [0.0, 10.0])
    assert status is Status.OK


@pytest.mark.parametrize("chunk, times, stamp, expected", [
    (ramp(3), [0.0, 0.1], T0, Status.HOLD_WRONG_LENGTH),
    (np.zeros((0, 2)), [], T0, Status.HOLD_WRONG_LENGTH),
    (np.zeros((3, 1, 6)), [0.0, 0.1, 0.2], T0, Status.HOLD_WRONG_LENGTH),
    (ramp(3) * np.nan, [0.0, 0.1, 0.2], T0, Status.HOLD_NON_FINITE),
    (ramp(3), [0.0, 0.1, math.inf], T0, Status.HOLD_NON_FINITE),
    (ramp(3), [0.0, 0.1, 0.1], T0, Status.HOLD_NON_MONOTONIC),
    (ramp(3), [-0.1, 0.1, 0.2], T0, Status.HOLD_NON_MONOTONIC),
    (ramp(3), [0.0, 0.1, 0.2], T0 + 1.0, Status.HOLD_FUTURE_STAMP),
    (ramp(3), [0.0, 0.1, 0.2], T0 - 0.5, Status.HOLD_STALE),  # ran out before it arrived
    (pose_chunk([0, 0, 0], [0, 0, 0]) * 2.0, [0.0, 0.1, 0.2], T0,
     Status.HOLD_INVALID_ROTATION),
])
def test_invalid_chunks_are_dropped(chunk, times, stamp, expected):
    ex = ChunkExecutor()
    assert ex.add(chunk, times, stamp, now_s=T0) is expected
    assert len(ex) == 0 and ex.target(T0)[0] is None


def test_out_of_order_and_reshaped_chunks_are_dropped():
    ex = ChunkExecutor()
    ex.add(ramp(3), [0.0, 0.1, 0.2], T0, now_s=T0)
    assert ex.add(ramp(3), [0.0, 0.1, 0.2], T0, now_s=T0) is Status.HOLD_NON_MONOTONIC
    assert ex.add(ramp(3, joints=3), [0.0, 0.1, 0.2], T0 + 0.01,
                  now_s=T0 + 0.01) is Status.HOLD_WRONG_LENGTH
    assert len(ex) == 1 and ex.stats.holds == {Status.HOLD_NON_MONOTONIC: 1,
                                                Status.HOLD_WRONG_LENGTH: 1}


def test_max_chunks_keeps_the_newest():
    ex = ChunkExecutor("temporal_ensembling", max_chunks=2)
    for k in range(5):
        ex.add(ramp(10, start=k), np.arange(10) * 0.1, T0 + 0.01 * k, now_s=T0 + 0.01 * k)
    assert len(ex) == 2


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="receding_horizon, temporal_ensembling"):
        ChunkExecutor("newest")
    with pytest.raises(ValueError, match="ensemble_decay_per_s"):
        ChunkExecutor(ensemble_decay_per_s=-1.0)
    with pytest.raises(ValueError, match="max_chunks"):
        ChunkExecutor(max_chunks=0)


def test_receipt_time_defaults_to_the_clock():
    clock = FakeClock(T0 + 0.03)
    ex = ChunkExecutor(clock=clock)
    ex.add(ramp(3), [0.0, 0.1, 0.2], T0)
    assert ex.stats.summary().latency_p50_ms == pytest.approx(30.0)


# ---------------------------------------------------------------- temporal ensembling
def test_ensembling_weights_newer_chunks_by_exp_decay():
    decay = 5.0
    ex = ChunkExecutor("temporal_ensembling", ensemble_decay_per_s=decay)
    times = np.arange(11) * 0.1
    ex.add(np.zeros((11, 1)), times, T0, now_s=T0)
    ex.add(np.ones((11, 1)), times, T0 + 0.2, now_s=T0 + 0.2)
    target, status = ex.target(T0 + 0.3)
    # Ages 0.3 s and 0.1 s: weights exp(-1.5) and exp(-0.5).
    w_old, w_new = math.exp(-decay * 0.3), math.exp(-decay * 0.1)
    assert status is Status.OK
    assert target[0] == pytest.approx(w_new / (w_old + w_new))
    assert ex.source_stamp_s == T0 + 0.2


def test_ensembling_with_zero_decay_is_the_plain_mean_of_covering_chunks():
    ex = ChunkExecutor("temporal_ensembling", ensemble_decay_per_s=0.0)
    ex.add(np.full((3, 1), 1.0), [0.0, 0.5, 1.0], T0, now_s=T0)
    ex.add(np.full((3, 1), 3.0), [0.0, 0.5, 1.0], T0 + 0.1, now_s=T0 + 0.1)
    ex.add(np.full((3, 1), 9.0), [0.5, 0.6, 1.0], T0 + 0.2, now_s=T0 + 0.2)  # not started
    target, _ = ex.target(T0 + 0.3)
    assert target[0] == pytest.approx(2.0)


def test_ensembling_averages_quaternions_with_sign_alignment():
    ex = ChunkExecutor("temporal_ensembling", ensemble_decay_per_s=0.0)
    a = pose_chunk([0.2, 0.2], [0.0, 0.0])
    b = pose_chunk([0.4, 0.4], [1.0, 1.0])
    b[:, 0, 3:] *= -1.0  # the same rotations, written with the other sign
    ex.add(a, [0.0, 1.0], T0, now_s=T0)
    ex.add(b, [0.0, 1.0], T0 + 0.1, now_s=T0 + 0.1)
    target, _ = ex.target(T0 + 0.5)
    assert target.shape == (1, 7)
    assert target[0, 0] == pytest.approx(0.5)
    q = target[0, 3:]
    assert np.linalg.norm(q) == pytest.approx(1.0)
    np.testing.assert_allclose(abs(np.dot(q, quat_z(0.3))), 1.0, atol=1e-6)


# ---------------------------------------------------------------- quaternions
@given(st.floats(-3.1, 3.1), st.floats(-3.1, 3.1), st.floats(0.0, 1.0))
def test_slerp_stays_unit_and_rotates_uniformly(a0, a1, u):
    row = interpolate_rows(pose_chunk([a0], [0.0])[0], pose_chunk([a1], [2.0])[0], u)
    q = row[0, 3:]
    assert abs(np.linalg.norm(q) - 1.0) < 1e-9
    assert row[0, 0] == pytest.approx(2.0 * u)
    # Shortest way round: the angle travelled is u times the angle between the ends.
    between = 2 * math.acos(min(1.0, abs(np.dot(quat_z(a0), quat_z(a1)))))
    travelled = 2 * math.acos(min(1.0, abs(np.dot(quat_z(a0), q))))
    assert travelled == pytest.approx(u * between, abs=1e-6)


def test_pose_chunk_interpolates_positions_linearly_and_rotations_by_slerp():
    ex = ChunkExecutor()
    ex.add(pose_chunk([0.0, 1.0], [0.0, 1.0]), [0.0, 0.1], T0, now_s=T0)
    target, _ = ex.target(T0 + 0.025)
    assert target[0, 0] == pytest.approx(0.25)
    np.testing.assert_allclose(target[0, 3:], quat_z(0.25), atol=1e-12)


# ---------------------------------------------------------------- property
chunk_timing = st.tuples(
    st.floats(0.0, 0.3),  # stamp offset of the chunk [s]
    st.lists(st.floats(0.005, 0.2), min_size=1, max_size=6),  # gaps between points [s]
    st.floats(0.0, 0.1),  # time of the first point [s]
)


@given(st.lists(chunk_timing, min_size=1, max_size=4), st.floats(-0.1, 1.5),
       st.sampled_from(["receding_horizon", "temporal_ensembling"]),
       st.integers(0, 2**31 - 1))
def test_target_is_never_extrapolated(timings, now_offset, strategy, seed):
    """The target lies between two consecutive points of one of the chunks (per joint, in the
    hull of the bracketing points of the chunks that can contribute), and is None exactly
    when every chunk ran out."""
    rng = np.random.default_rng(seed)
    ex = ChunkExecutor(strategy, ensemble_decay_per_s=3.0)
    kept = []
    for stamp_offset, gaps, first in sorted(timings, key=lambda t: t[0]):
        times = first + np.concatenate([[0.0], np.cumsum(gaps)])
        rows = rng.uniform(-5.0, 5.0, (len(times), 3))
        stamp = T0 + stamp_offset
        if ex.add(rows, times, stamp, now_s=stamp) is Status.OK:
            kept.append((stamp, times, rows))
    now = T0 + now_offset
    target, status = ex.target(now)
    alive = [(s, t, r) for s, t, r in kept if now - s <= t[-1] + TIME_TOLERANCE_S]
    if not alive:
        assert target is None and status.is_hold
        return
    assert status is Status.OK
    lows, highs = [], []
    for stamp, times, rows in alive:
        t = now - stamp
        i = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1))
        bracket = rows[i:i + 2] if t >= times[0] else rows[:1]
        lows.append(bracket.min(axis=0))
        highs.append(bracket.max(axis=0))
    if strategy == "receding_horizon":  # exactly the newest alive chunk's bracket
        lows, highs = lows[-1:], highs[-1:]
    assert np.all(target >= np.min(lows, axis=0) - 1e-9)
    assert np.all(target <= np.max(highs, axis=0) + 1e-9)


# ---------------------------------------------------------------- gate
def make_gate(clock, timeout=0.1, max_age=0.03):
    return OutputGate(timeout, max_age, clock=clock)


def test_gate_holds_until_state_safety_and_chunk_are_all_fresh():
    clock = FakeClock(10.0)
    gate = make_gate(clock)
    assert gate.decide() == (Status.HOLD_REQUESTED, False)  # no safety state yet
    gate.set_safety_state("ACTIVE")
    assert gate.decide() == (Status.HOLD_INVALID_MEASUREMENT, False)  # no joint state yet
    gate.state_received()
    assert gate.decide() == (Status.HOLD_TIMEOUT, True)  # resume: re-seed once
    gate.chunk_accepted()
    assert gate.decide() == (None, False)
    clock.now += 0.031  # joint states stalled
    assert gate.decide() == (Status.HOLD_INVALID_MEASUREMENT, False)
    gate.state_received()
    assert gate.decide() == (None, False)
    clock.now += 0.07  # 0.101 s after the last chunk
    gate.state_received()
    assert gate.decide() == (Status.HOLD_TIMEOUT, False)
    assert "command age 0.101" in gate.detail()


def test_gate_estop_release_alone_does_not_resume():
    clock = FakeClock(10.0)
    gate = make_gate(clock)
    gate.set_safety_state("ACTIVE")
    gate.state_received()
    gate.decide()
    gate.chunk_accepted()
    assert gate.decide() == (None, False)
    gate.set_estop(True)
    assert gate.decide() == (Status.HOLD_ESTOP, False)
    gate.set_safety_state("ACTIVE")  # ACTIVE while the e-stop is still asserted: no resume
    assert gate.decide() == (Status.HOLD_ESTOP, False)
    gate.set_estop(False)
    assert gate.decide() == (Status.HOLD_ESTOP, False)
    assert "waiting for safety state ACTIVE" in gate.detail()
    gate.chunk_accepted()
    gate.set_safety_state("ACTIVE")
    assert gate.decide() == (Status.HOLD_TIMEOUT, True)  # resumed: old chunks do not count


def test_gate_holds_on_any_safety_state_but_active():
    gate = make_gate(FakeClock(10.0))
    gate.state_received()
    for text in ("HOLD stale observation", "active", " ACTIVE", ""):
        gate.set_safety_state(text)
        assert gate.decide()[0] is Status.HOLD_REQUESTED
    gate.set_safety_state("ACTIVE")
    assert gate.decide() == (Status.HOLD_TIMEOUT, True)
    gate.set_safety_state("ACTIVE")  # a repeated ACTIVE is no resume
    assert gate.decide() == (Status.HOLD_TIMEOUT, False)


@pytest.mark.parametrize("timeout, max_age, field", [
    (0.0, 0.1, "command_timeout_s"), (math.nan, 0.1, "command_timeout_s"),
    (0.1, 0.0, "max_state_age_s"), (0.1, math.inf, "max_state_age_s"),
])
def test_gate_rejects_switched_off_watchdogs(timeout, max_age, field):
    with pytest.raises(LimitsError, match=field):
        OutputGate(timeout, max_age)
    gate = OutputGate(0.1, 0.1)
    with pytest.raises(LimitsError, match=field):
        setattr(gate, field, timeout if field == "command_timeout_s" else max_age)
    assert (gate.command_timeout_s, gate.max_state_age_s) == (0.1, 0.1)


def test_gate_resume_waits_for_the_command_to_rest():
    gate = make_gate(FakeClock(10.0))
    gate.state_received()
    gate.set_safety_state("HOLD stale observation")
    gate.set_safety_state("ACTIVE")  # while the guard still brakes from the hold
    assert gate.decide(at_rest=False) == (Status.HOLD_REQUESTED, False)
    assert gate.decide(at_rest=False) == (Status.HOLD_REQUESTED, False)
    assert gate.decide(at_rest=True) == (Status.HOLD_TIMEOUT, True)
    gate.chunk_accepted()
    assert gate.decide(at_rest=False) == (None, False)  # following: motion is fine
