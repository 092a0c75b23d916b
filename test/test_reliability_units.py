"""Reliability helpers, and the stack behaviour the process tests exposed, without ROS: the
fault relay's decisions, the command-stream judges (limit violations, HOLD timing), the safety
filter's single action source per activation and joint-state stamp checks, and the command
output's resume readiness.
"""

import numpy as np
import pytest

from action_filter_rig import Rig as FilterRig
from hv2r_ros.core.output_gate import ResumeReadiness
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.safety.joint_guard import JointGuard
from hv2r_ros.core.status import Status
from hv2r_ros.sim.faults import (
    FAULT_KINDS, RelayFaults, count_violations, hold_timing, violation_indices)


@pytest.fixture(scope="module")
def panda():
    return load_robot_profile("panda")


# --- the relay -----------------------------------------------------------------------------

def stream(faults, start_s, count, period_s=0.01):
    """Feed ``count`` messages (payload = index, stamp = time); what came out."""
    out = []
    for i in range(count):
        now = start_s + i * period_s
        out += faults.process(i, now, now)
    return out


def test_relay_passes_then_drops_at_its_rate_and_in_bursts():
    faults = RelayFaults(seed=3)
    assert stream(faults, 0.0, 5) == [(i, i * 0.01) for i in range(5)]
    faults.set(1.0, "drop", duration_s=10.0, rate=0.3)
    kept = len(stream(faults, 1.0, 1000))
    assert 650 < kept < 750  # 30 % dropped, seeded
    faults.set(20.0, "drop", duration_s=1.0, burst_s=0.25, burst_every_s=0.5)
    out = stream(faults, 20.0, 100)
    times = np.array([s for _, s in out]) - 20.0
    assert len(out) == 50 and np.all(times % 0.5 >= 0.25 - 1e-9)
    assert stream(faults, 21.5, 3) == [(i, 21.5 + i * 0.01) for i in range(3)]  # it ended


def test_relay_freeze_repeat_future_duplicate_and_reorder():
    faults = RelayFaults()
    stream(faults, 0.0, 3)
    faults.set(1.0, "freeze", duration_s=0.05)
    out = stream(faults, 1.0, 3)
    assert [p for p, _ in out] == [0, 0, 0] and [s for _, s in out] == [1.0, 1.01, 1.02]
    faults.set(2.0, "repeat", duration_s=0.05)
    assert stream(faults, 2.0, 3) == [(0, 2.0)] * 3  # the first held message, its own stamp
    faults.set(3.0, "future", duration_s=0.05, offset_s=0.5)
    assert stream(faults, 3.0, 2) == [(0, 3.5), (1, 3.51)]
    stream(faults, 4.0, 2)  # passes again: the last valid is (1, 4.01)
    faults.set(5.0, "duplicate", duration_s=0.05)
    assert stream(faults, 5.0, 2) == [(1, 4.01), (1, 4.01)]
    faults.set(6.0, "reorder", duration_s=1.0)
    out = stream(faults, 6.0, 4)
    assert [p for p, _ in out] == [1, 0, 3, 2]
    assert faults.counts["received"] == faults.counts["forwarded"] + faults.counts["dropped"]
    with pytest.raises(ValueError, match="unknown relay mode"):
        faults.set(0.0, "teleport")


# --- judging commands -----------------------------------------------------------------------

def guard_stream(profile, seconds, hold_at_s=None, speed=0.5):
    """Commands of a JointGuard following a moving target, holding from ``hold_at_s``."""
    period = profile.control_period_s
    guard = JointGuard(profile.limits, period)
    guard.reset(profile.home)
    stamps, q = [], []
    for k in range(int(seconds / period)):
        t = k * period
        target = profile.home + speed * t * np.array([1, 0, 1, 0, 1, 0, 1.0])
        hold = Status.HOLD_TIMEOUT if hold_at_s is not None and t >= hold_at_s else None
        cmd, _ = guard.step(None if hold else target, profile.home, hold=hold)
        stamps.append(t)
        q.append(cmd)
    return np.array(stamps), np.array(q)


def test_hold_timing_finds_the_first_braking_command(panda):
    stamps, q = guard_stream(panda, 2.0, hold_at_s=1.0)
    hold = hold_timing(stamps, q, 0.9, panda.limits, panda.control_period_s)
    assert hold.onset_s == pytest.approx(1.0) and hold.latency_s(0.9) == pytest.approx(0.1)
    assert hold.rest_s > hold.onset_s and 0.4 < hold.speed_at_onset <= 0.5 + 1e-9
    stamps, q = guard_stream(panda, 1.0)  # never holds
    assert hold_timing(stamps, q, 0.5, panda.limits, panda.control_period_s).onset_s is None


def test_violations_are_counted_per_step(panda):
    stamps, q = guard_stream(panda, 2.0, hold_at_s=1.0)
    clean = count_violations(q, panda.limits, panda.control_period_s)
    assert clean.total == 0 and clean.acceleration == 0 and clean.commands == len(q)
    bad = q.copy()
    bad[50:] += 0.02  # a jump: one velocity and two acceleration violations
    bad[120, 0] = panda.limits.position_max[0] + 0.1
    counted = count_violations(bad, panda.limits, panda.control_period_s)
    assert (counted.position, counted.velocity) == (1, 3) and counted.acceleration >= 2
    assert {50, 120, 121} <= set(violation_indices(bad, panda.limits, panda.control_period_s))
    assert count_violations(bad[:100], panda.limits, panda.control_period_s,
                            segments=[50]).velocity == 0  # a new process starts there


def test_the_soak_draws_no_camera_fault():
    assert dict(FAULT_KINDS)["camera_stall"] == 0  # its expert has no cameras: tests cover them


# --- the safety filter: one source per activation, joint-state stamps ---------------------

def test_a_new_action_publisher_latches_until_the_next_activation(panda):
    rig = FilterRig(panda)
    rig.filter.note_sources({"policy"})
    assert rig.send(rig.step())[1] is Status.OK  # binds {"policy"}
    assert not rig.filter.note_sources({"policy"})  # the same publisher: fine
    assert not rig.filter.note_sources(set())  # gone (killed): the watchdog holds, no latch
    assert rig.filter.note_sources({"policy-restarted"})
    status, text = rig.filter.state()
    assert status is Status.HOLD_REQUESTED and "new publisher" in text
    assert rig.send(rig.step()) == (None, Status.HOLD_REQUESTED)
    rig.filter.deactivate()
    rig.filter.activate()  # the operator accepts the new source
    rig.filter.note_sources({"policy-restarted"})
    rig.advance(0.0)
    assert rig.send(rig.step())[1] is Status.OK and rig.filter.state()[0] is Status.OK


def test_stale_repeated_and_future_joint_states_are_not_used(panda):
    rig = FilterRig(panda, max_state_age_s=0.1)
    now = rig.clock.now
    assert rig.filter.on_joint_state(rig.q, Status.OK, now - 0.2, now) is Status.HOLD_STALE
    assert rig.filter.on_joint_state(rig.q, Status.OK, now - 0.01, now) is Status.OK
    assert rig.filter.on_joint_state(rig.q, Status.OK, now - 0.01, now) is \
        Status.HOLD_NON_MONOTONIC  # the same message again
    assert rig.filter.on_joint_state(rig.q, Status.OK, now + 0.5, now) is \
        Status.HOLD_FUTURE_STAMP
    assert rig.filter.state_rejections == {"HOLD_NON_MONOTONIC": 1, "HOLD_STALE": 1,
                                           "HOLD_FUTURE_STAMP": 1}
    rig.clock.now += 0.11  # only rejected ones since: the measurement is stale
    assert rig.send(rig.step()) == (None, Status.HOLD_INVALID_MEASUREMENT)
    assert rig.filter.on_joint_state(rig.q) is Status.OK  # unstamped: judged at receipt
    assert rig.send(rig.step())[1] is Status.OK


# --- the command output: resume readiness ---------------------------------------------------

def test_resume_waits_for_the_robot_to_stop_near_the_command(panda):
    period = panda.control_period_s
    step = np.full(7, 1e-4)
    ready = ResumeReadiness(panda.limits.velocity_max, period, step, settle_periods=2)
    command = panda.home.copy()
    lagging = command - 0.005  # within v_max * T, still approaching
    results = []
    for k in range(6):
        ready.measured(lagging + 0.001 * k)  # moves 1e-3 per sample: not stopped
        results.append(ready.period(command, commanding_motion=False))
    assert not any(results)
    for _ in range(3):
        ready.measured(command)
    assert [ready.period(command, False) for _ in range(4)] == [False, False, True, True]
    assert not ready.period(command, commanding_motion=True)  # the command moves again
    # The re-seed: to the measured state when inside the acceleration step, else the command.
    np.testing.assert_array_equal(ready.seed(command, command + 5e-5), command + 5e-5)
    np.testing.assert_array_equal(ready.seed(command, command + 5e-3), command)
    far = command + 2 * panda.limits.velocity_max * period  # robot refused commands: far off
    for _ in range(5):
        ready.measured(far)
    assert not any(ready.period(command, False) for _ in range(5))
