"""Property tests: adversarial streams never make the safety core break a limit.

Two sources of streams per robot (limits from the shipped robot profiles):

- hypothesis draws event sequences (adversarial values, wrong lengths, wrong or shuffled names,
  future / stale / repeated stamps, resets from odd measurements, holds, e-stops) and runs them
  through the whole chain validator -> watchdog -> e-stop -> authority ramp -> joint guard;
- hypothesis draws seeds that ``hv2r_ros.core.safety.fuzz`` expands into long numpy streams,
  at least 10^5 steps per robot for the joint guard and for the Cartesian filter.

The ``ci`` hypothesis profile (derandomized) is registered in ``conftest.py`` and loaded when
``CI`` is set.
"""

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.safety import (
    AuthorityRamp,
    CommandValidator,
    CommandWatchdog,
    EStopLatch,
    JointGuard,
)
from hv2r_ros.core.safety.fuzz import run_adversarial
from hv2r_ros.core.safety.fuzz_cartesian import run_adversarial_cartesian
from hv2r_ros.core.status import Status

ROBOTS = ("panda", "ur5e", "xarm7", "so100", "g1")
STEPS_PER_ROBOT = 100_000
STREAMS = 4
REL = 1e-9

SPECIAL = [1e30, -1e30, 1e300, math.nan, math.inf, -math.inf, 5e-324, -5e-324, 0.0]
adversarial_float = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.sampled_from(SPECIAL),
    st.floats(-4.0, 4.0),
)


@functools.lru_cache(maxsize=None)
def profile(name):
    return load_robot_profile(name)


class Checker:
    """Checks every output against the limits from the last three outputs."""

    def __init__(self, limits, period_s, seed):
        self.limits, self.T = limits, period_s
        scale = float(np.max(np.abs(np.concatenate([limits.position_min, limits.position_max]))))
        self.tol_v = limits.velocity_max * REL + 8 * np.finfo(float).eps * (scale + 1) / period_s
        self.tol_a = limits.acceleration_max * REL + 2 * self.tol_v / period_s
        self.restart(seed)

    def restart(self, seed):
        self.history = [seed, seed, seed]

    def check(self, q, is_hold):
        lim, T = self.limits, self.T
        q3, q2, q1 = self.history
        assert np.all(q >= lim.position_min) and np.all(q <= lim.position_max), "position"
        v, v1, v2 = (q - q1) / T, (q1 - q2) / T, (q2 - q3) / T
        assert np.all(np.abs(v) <= lim.velocity_max + self.tol_v), "velocity"
        a, a1 = (v - v1) / T, (v1 - v2) / T
        assert np.all(np.abs(a) <= lim.acceleration_max + self.tol_a), "acceleration"
        if lim.jerk_max is not None:
            assert np.all(np.abs(a - a1) / T <= lim.jerk_max + 2 * self.tol_a / T), "jerk"
        if is_hold:  # a hold only ever brakes
            assert np.all(np.abs(v) <= np.abs(v1) + self.tol_v), "hold sped a joint up"
        self.history = [q2, q1, q]


@st.composite
def events(draw, n):
    """One event of the stream and how many control periods it lasts."""
    kind = draw(st.sampled_from(["command"] * 8 + ["none", "hold", "estop", "release", "reset",
                                                   "bad_measurement"]))
    repeat = draw(st.integers(1, 60))
    if kind == "command":
        length = draw(st.sampled_from([n] * 6 + [n - 1, n + 1]))
        values = draw(st.lists(st.floats(-4.0, 4.0) | st.sampled_from(SPECIAL[:3]),
                               min_size=length, max_size=length))
        if draw(st.booleans()) and draw(st.booleans()):  # a quarter carry one odd value
            values[draw(st.integers(0, length - 1))] = draw(adversarial_float)
        names = draw(st.sampled_from(["profile", "shuffled", "shuffled", "shuffled", "wrong"]))
        stamp = draw(st.sampled_from(["fresh"] * 5 + ["future", "stale", "repeat"]))
        return kind, repeat, (values, names, stamp, draw(st.randoms(use_true_random=False)))
    if kind == "reset":
        measured = draw(st.lists(st.one_of(st.floats(-4, 4), st.sampled_from(SPECIAL)),
                                 min_size=n, max_size=n))
        return kind, 1, measured
    return kind, repeat, None


def _names(profile_names, how, rng):
    names = list(profile_names)
    if how == "shuffled":
        rng.shuffle(names)
    elif how == "wrong":
        names[rng.randrange(len(names))] = "not_a_joint"
    return names


@pytest.mark.parametrize("robot", ROBOTS)
@settings(max_examples=40)
@given(data=st.data())
def test_validated_chain_never_breaks_joint_limits(robot, data):
    p = profile(robot)
    n, T, limits = p.limits.size, p.control_period_s, p.limits
    clock = [1000.0]
    validator = CommandValidator(p.joint_names, timeout_s=p.command_timeout_s)
    watchdog = CommandWatchdog(p.command_timeout_s, clock=lambda: clock[0])
    ramp = AuthorityRamp(0.5, clock=lambda: clock[0])
    estop = EStopLatch()
    guard = JointGuard(limits, T)
    start = np.clip(p.home, limits.position_min, limits.position_max)
    seed, _ = guard.reset(start)
    ramp.activate()
    checker = Checker(limits, T, seed)
    target, measured_ok = None, True
    stream = data.draw(st.lists(events(n), min_size=1, max_size=40))
    for kind, repeat, payload in stream:
        if kind == "reset":
            seed, status = guard.reset(np.array(payload))
            if seed is not None:
                expected = np.clip(payload, limits.position_min, limits.position_max)
                assert np.array_equal(seed, expected)  # first command = measured state
                checker.restart(seed)
                validator.reset()
                watchdog.reset()
                ramp.activate()
            continue
        if kind == "hold":
            guard.hold()
        elif kind == "estop":
            estop.update(True)
        elif kind == "release":
            estop.update(False)
            estop.reset(operator_confirmed=True)
        elif kind == "bad_measurement":
            measured_ok = not measured_ok
        for k in range(repeat):
            clock[0] += T
            reason = None
            if kind == "command":
                values, how, stamp_mode, rng = payload
                names = _names(p.joint_names, how, rng)
                order = [list(p.joint_names).index(x) if x in p.joint_names else 0 for x in names]
                sent = [values[i] if i < len(values) else 0.0 for i in order][: len(values)]
                stamp = clock[0] - 0.2 * T
                if k == 0 and stamp_mode == "future":
                    stamp = clock[0] + 0.01
                elif k == 0 and stamp_mode == "stale":
                    stamp = clock[0] - 10 * p.command_timeout_s
                elif k == 0 and stamp_mode == "repeat" and validator.previous_stamp_s:
                    stamp = validator.previous_stamp_s
                valid, status = validator.validate(names, sent, stamp, clock[0])
                if valid is not None:
                    watchdog.feed()
                    target = valid
                else:
                    reason = status
            if watchdog.expired():
                reason = reason or Status.HOLD_TIMEOUT
            if estop.latched:
                reason = Status.HOLD_ESTOP
            measured = checker.history[-1] if measured_ok else np.full(n, np.nan)
            q, status = guard.step(target, measured, hold=reason, authority=ramp.value())
            if reason is not None:
                assert status is reason
            checker.check(q, status.is_hold)


@pytest.mark.parametrize("robot", ROBOTS)
@settings(max_examples=1)
@given(seeds=st.lists(st.integers(0, 2**32 - 1), min_size=STREAMS, max_size=STREAMS))
def test_long_adversarial_streams_never_break_joint_limits(robot, seeds):
    p = profile(robot)
    total = 0
    for seed in seeds:
        report = run_adversarial(p.limits, p.control_period_s, STEPS_PER_ROBOT // STREAMS, seed)
        assert report.violations == 0, report
        assert report.holds < report.steps  # the stream also exercises motion
        total += report.steps
    assert total >= STEPS_PER_ROBOT


@pytest.mark.parametrize("robot", ROBOTS)
@settings(max_examples=1)
@given(seeds=st.lists(st.integers(0, 2**32 - 1), min_size=STREAMS, max_size=STREAMS))
def test_long_adversarial_streams_never_break_cartesian_limits(robot, seeds):
    p = profile(robot)
    frames = len(p.end_effector_frames)
    total = 0
    for seed in seeds:
        report = run_adversarial_cartesian(p.workspace, frames, p.control_period_s,
                                           STEPS_PER_ROBOT // STREAMS, seed)
        assert report.violations == 0, report
        total += report.steps
    assert total >= STEPS_PER_ROBOT
