"""Adversarial streams for the joint guard, and violation counters.

Used by the property tests (long streams) and by ``hv2r bench fuzz``; the Cartesian filter's
counterpart is :mod:`hv2r_ros.core.safety.fuzz_cartesian`. A numpy generator
expands a seed into segments of adversarial regimes: targets far outside the limits, +-1e30,
NaN and +-inf, subnormals, wrong lengths, bang-bang between huge opposite targets, smooth
sweeps, no target, e-stop and hold requests, resets from random (possibly out-of-limit or
non-finite) measurements and random authority. Every output is checked against the limits.

Tolerances are float resolution only: ``1e-9`` of the limit plus the round-off of differencing
positions (``8 eps max|q| / T`` for velocity, ``/ T`` again for acceleration).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from hv2r_ros.core.limits import JointLimits
from hv2r_ros.core.safety.fuzz_cartesian import (  # re-exported: one import for the bench
    _BAD,
    _HUGE,
    _RELATIVE_TOLERANCE,
    CartesianFuzzReport,
    run_adversarial_cartesian,
)
from hv2r_ros.core.safety.joint_guard import JointGuard
from hv2r_ros.core.status import Status

__all__ = ["CartesianFuzzReport", "FuzzReport", "run_adversarial", "run_adversarial_cartesian"]

_EPS = np.finfo(np.float64).eps


@dataclasses.dataclass
class FuzzReport:
    """Counts from one adversarial run of the joint guard.

    Attributes:
        steps: Guard steps taken (resets not counted).
        violations_position: Outputs outside [position_min, position_max].
        violations_velocity: Outputs with |v| above velocity_max.
        violations_acceleration: Outputs with |a| above acceleration_max.
        violations_jerk: Outputs with |jerk| above jerk_max (robots with a jerk limit).
        violations_hold: HOLD steps that sped a joint up or reversed it (a hold only brakes).
        violations_braking: Outputs from which full braking would cross a position limit
            (the invariant that keeps the admissible set non-empty).
        holds: Steps whose status is a HOLD.
        resets: Resets attempted (some refused on purpose with invalid measurements).
        statuses: Count of every status name seen.
    """

    steps: int = 0
    violations_position: int = 0
    violations_velocity: int = 0
    violations_acceleration: int = 0
    violations_jerk: int = 0
    violations_hold: int = 0
    violations_braking: int = 0
    holds: int = 0
    resets: int = 0
    statuses: Counter = dataclasses.field(default_factory=Counter)

    @property
    def violations(self) -> int:
        """Total violations of every kind."""
        return (self.violations_position + self.violations_velocity
                + self.violations_acceleration + self.violations_jerk + self.violations_hold
                + self.violations_braking)


def _segment_targets(rng: np.random.Generator, limits: JointLimits, length: int,
                     period_s: float) -> np.ndarray:
    """Targets (length, n) of one random regime; may hold NaN, inf and huge values."""
    n, low, high = limits.size, limits.position_min, limits.position_max
    span = high - low
    # Durations log-uniform from one step to 3 s: jitter as well as full-speed travel.
    steps_per_switch = max(1, int(np.exp(rng.uniform(0.0, np.log(max(2.0, 3.0 / period_s))))))
    regime = int(rng.choice(8, p=(0.08, 0.16, 0.08, 0.16, 0.14, 0.08, 0.1, 0.2)))
    if regime == 0:  # white noise, half a range beyond each limit
        return rng.uniform(low - 0.5 * span, high + 0.5 * span, (length, n))
    if regime == 1:  # bang-bang between huge opposite targets
        sign = np.where((np.arange(length) // steps_per_switch) % 2 == 0, 1.0, -1.0)
        return sign[:, None] * rng.choice(_HUGE[:4], n) * rng.choice((1.0, -1.0), n)
    if regime == 2:  # huge values mixed with NaN / inf entries
        out = np.tile(rng.choice(_HUGE, n), (length, 1))
        mask = rng.random((length, n)) < 0.1
        out[mask] = rng.choice(_BAD, int(mask.sum()))
        return out
    if regime == 3:  # one far target held
        return np.tile(rng.uniform(low - span, high + span), (length, 1))
    if regime == 4:  # smooth sweep past the limits, 0.1 to 20 rad/s
        t = np.arange(length)[:, None] * period_s * rng.uniform(0.1, 20.0)
        return low + span * (0.5 + 0.7 * np.sin(t + rng.uniform(0, 6.3, n)))
    if regime == 5:  # at a limit, with subnormal dither
        edge = np.where(rng.random(n) < 0.5, low, high)
        return edge + rng.choice((0.0, 5e-324, -5e-324, 1e-310), (length, n))
    if regime == 6:  # a reachable target held
        return np.tile(rng.uniform(low, high), (length, 1))
    # piecewise-constant targets anywhere in and beyond the range, switching at random
    switches = rng.uniform(low - 0.3 * span, high + 0.3 * span, (length // steps_per_switch + 1, n))
    return switches[np.arange(length) // steps_per_switch]


def _check_joint_outputs(report: FuzzReport, history: np.ndarray, holds: np.ndarray,
                         limits: JointLimits, period_s: float, tol_v: np.ndarray,
                         tol_a: np.ndarray) -> None:
    """Count violations in outputs (m, 4, n): q three, two and one steps back, then q."""
    q_ppp, q_pp, q_prev, q = history[:, 0], history[:, 1], history[:, 2], history[:, 3]
    v = (q - q_prev) / period_s
    v_prev = (q_prev - q_pp) / period_s
    a = (v - v_prev) / period_s
    if limits.jerk_max is not None:
        a_prev = (v_prev - (q_pp - q_ppp) / period_s) / period_s
        report.violations_jerk += int(np.count_nonzero(
            np.any(np.abs(a - a_prev) / period_s > limits.jerk_max + 2.0 * tol_a / period_s,
                   axis=1)))
    speeds_up = (np.abs(v) > np.abs(v_prev) + tol_v) | (v * v_prev < -tol_v * tol_v)
    report.violations_hold += int(np.count_nonzero(np.any(speeds_up, axis=1) & holds))
    report.violations_position += int(np.count_nonzero(
        np.any((q < limits.position_min) | (q > limits.position_max), axis=1)))
    report.violations_velocity += int(np.count_nonzero(
        np.any(np.abs(v) > limits.velocity_max + tol_v, axis=1)))
    report.violations_acceleration += int(np.count_nonzero(
        np.any(np.abs(a) > limits.acceleration_max + tol_a, axis=1)))
    # Distance still covered when braking at a_max from v: T * sum_{j>=1} max(|v| - j b, 0).
    b = limits.acceleration_max * period_s
    speed = np.abs(v)
    m = np.floor(speed / b)
    stop = period_s * (m * speed - b * m * (m + 1.0) * 0.5)
    tol_p = (limits.position_max - limits.position_min) * _RELATIVE_TOLERANCE
    beyond = np.where(v > 0.0, q + stop - limits.position_max, limits.position_min - (q - stop))
    report.violations_braking += int(np.count_nonzero(np.any(beyond > tol_p, axis=1)))


def run_adversarial(limits: JointLimits, period_s: float, steps: int, seed: int) -> FuzzReport:
    """Drive a :class:`JointGuard` with an adversarial stream and count limit violations.

    Args:
        limits: The robot's joint limits.
        period_s: Control period [s].
        steps: Number of guard steps.
        seed: Seed of the numpy generator (same seed, same stream).

    Returns:
        A :class:`FuzzReport`; a correct guard has zero violations.
    """
    rng = np.random.default_rng(seed)
    guard = JointGuard(limits, period_s)
    report = FuzzReport()
    n, low, high = limits.size, limits.position_min, limits.position_max
    span = high - low
    scale = float(np.max(np.maximum(np.abs(low), np.abs(high)))) + 1.0
    tol_v = limits.velocity_max * _RELATIVE_TOLERANCE + 8.0 * _EPS * scale / period_s
    tol_a = limits.acceleration_max * _RELATIVE_TOLERANCE + 2.0 * tol_v / period_s
    q_prev, _ = guard.reset(rng.uniform(low, high))
    q_ppp = q_pp = q_prev
    held = False
    # Resets about every 2 s of stream time, and about 50 ms after a hold request (resume).
    reset_rate, reset_held = min(0.5, period_s / 2.0), min(1.0, period_s / 0.05)
    bad_measurement = min(0.05, period_s / 0.5)
    while report.steps < steps:
        # Segments up to 4 s of stream time: long enough to cross the range at full speed.
        length = min(int(rng.integers(1, max(400, int(4.0 / period_s)))), steps - report.steps)
        targets = _segment_targets(rng, limits, length, period_s)
        if rng.random() < 0.1:  # a whole segment without valid commands
            kinds = rng.choice(5, length, p=(0.0, 0.4, 0.2, 0.3, 0.1))
        else:  # odd commands sprinkled about every 0.1 s of stream time, hold() every 2 s
            odd = min(0.2, period_s / 0.1)
            hold_rate = min(0.05, period_s / 2.0)
            kinds = rng.choice(5, length, p=(1.0 - odd - hold_rate, 0.3 * odd, 0.3 * odd,
                                             0.4 * odd, hold_rate))
        authority = 1.0 if rng.random() < 0.7 else float(rng.uniform(0.0, 1.0))
        history: list[tuple[np.ndarray, ...]] = []
        held_steps: list[bool] = []
        for k in range(length):
            # A hold() lasts until a reset (resume); resume soon so holds stay a minority.
            if rng.random() < (reset_held if held else reset_rate):
                report.resets += 1
                measured = rng.uniform(low - 0.1 * span, high + 0.1 * span)
                if rng.random() < 0.2:
                    measured[int(rng.integers(n))] = rng.choice(_BAD)
                seed_q, _ = guard.reset(measured)
                held = seed_q is None  # a refused reset holds until one succeeds
                if seed_q is not None:
                    report.violations_position += int(np.any((seed_q < low) | (seed_q > high)))
                    q_ppp = q_pp = q_prev = seed_q  # at rest before the next step
            kind = kinds[k]
            # kinds: 0 target, 1 none, 2 wrong length, 3 e-stop (target ignored), 4 hold()
            target = (targets[k], None, targets[k][:-1], targets[k], None)[kind]
            if kind == 4:
                guard.hold()
                held = True
            measured = q_prev if rng.random() > bad_measurement else np.full(n, rng.choice(_BAD))
            hold = Status.HOLD_ESTOP if kind == 3 else None
            q, status = guard.step(target, measured, hold=hold, authority=authority)
            report.steps += 1
            report.statuses[status.name] += 1
            report.holds += status.is_hold
            if q is not None:
                history.append((q_ppp, q_pp, q_prev, q))
                held_steps.append(status.is_hold)
                q_ppp, q_pp, q_prev = q_pp, q_prev, q
        if history:
            _check_joint_outputs(report, np.array(history), np.array(held_steps), limits,
                                 period_s, tol_v, tol_a)
    return report
