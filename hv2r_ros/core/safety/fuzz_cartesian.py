"""Adversarial streams for the Cartesian filter, and violation counters.

The counterpart of :mod:`hv2r_ros.core.safety.fuzz` for end-effector poses: targets far outside
the box, +-1e30, NaN and +-inf, non-unit and flipped quaternions, targets within a step (the OK
and box-clamp paths), resets from odd measurements, no target and e-stops. Every output is
checked: never further outside the box than the previous one, tool speed, unit quaternion.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from hv2r_ros.core.limits import CartesianLimits
from hv2r_ros.core.safety.cartesian import CartesianFilter, quat_angle
from hv2r_ros.core.status import Status

# Shared with the joint fuzz (hv2r_ros.core.safety.fuzz imports them from here).
_RELATIVE_TOLERANCE = 1e-9
_HUGE = (1e30, -1e30, 1e300, -1e300, 1e3, -1e3)
_BAD = (np.nan, np.inf, -np.inf)


@dataclasses.dataclass
class CartesianFuzzReport:
    """Counts from one adversarial run of the Cartesian filter.

    Attributes:
        steps: Filter steps taken.
        violations_workspace: Outputs further outside the box than the previous output.
        violations_linear_speed: Outputs moving faster than linear_speed_max.
        violations_angular_speed: Outputs rotating faster than angular_speed_max.
        violations_rotation: Output quaternions that are not unit.
        holds: Steps whose status is a HOLD.
        statuses: Count of every status name seen.
    """

    steps: int = 0
    violations_workspace: int = 0
    violations_linear_speed: int = 0
    violations_angular_speed: int = 0
    violations_rotation: int = 0
    holds: int = 0
    statuses: Counter = dataclasses.field(default_factory=Counter)

    @property
    def violations(self) -> int:
        """Total violations of every kind."""
        return (self.violations_workspace + self.violations_linear_speed
                + self.violations_angular_speed + self.violations_rotation)


def _random_poses(rng: np.random.Generator, limits: CartesianLimits, frames: int,
                  outside: float) -> np.ndarray:
    """Random poses (frames, 7); positions up to ``outside`` box sizes beyond the box."""
    size = limits.box_max - limits.box_min
    position = rng.uniform(limits.box_min - outside * size, limits.box_max + outside * size,
                           (frames, 3))
    quaternion = rng.normal(size=(frames, 4))
    quaternion /= np.sqrt(np.einsum("ij,ij->i", quaternion, quaternion))[:, None]
    return np.concatenate((position, quaternion), axis=1)


def _corrupt(rng: np.random.Generator, poses: np.ndarray) -> np.ndarray:
    """Make a pose target adversarial: huge, non-finite, non-unit, flipped or subnormal."""
    out = poses.copy()
    trick = int(rng.integers(6))
    if trick == 0:
        out[:, :3] = rng.choice(_HUGE, out[:, :3].shape)
    elif trick == 1:
        out.flat[int(rng.integers(out.size))] = rng.choice(_BAD)
    elif trick == 2:
        out[:, 3:] *= rng.choice((0.0, 0.5, 1.005, 2.0, 1e30))
    elif trick == 3:
        out[:, 3:] *= -1.0  # same rotation, other hemisphere
    elif trick == 4:
        out[:, :3] += 5e-324
    return out


def run_adversarial_cartesian(limits: CartesianLimits, frames: int, period_s: float,
                              steps: int, seed: int) -> CartesianFuzzReport:
    """Drive a :class:`CartesianFilter` with an adversarial stream and count violations."""
    rng = np.random.default_rng(seed)
    flt = CartesianFilter(limits, tuple(f"frame{i}" for i in range(frames)), period_s)
    report = CartesianFuzzReport()
    prev, _ = flt.reset(_random_poses(rng, limits, frames, 0.3))
    # Event rates per second of stream time, so every control rate sees the same mix.
    reset_rate, switch_rate = min(0.5, period_s / 2.0), min(0.5, period_s / 1.0)
    while report.steps < steps:
        length = min(int(rng.integers(1, max(200, int(4.0 / period_s)))), steps - report.steps)
        base = _random_poses(rng, limits, frames, float(rng.choice((0.0, 0.5, 1e3))))
        near = rng.random() < 0.3  # targets within a step or two: OK and box-clamp paths
        odd = rng.choice((0.02, 0.3))
        pairs: list[tuple[np.ndarray, np.ndarray]] = []
        for _ in range(length):
            if rng.random() < reset_rate:
                seed_pose, _ = flt.reset(_corrupt(rng, _random_poses(rng, limits, frames, 0.3)))
                prev = seed_pose if seed_pose is not None else prev
            if near:
                base = prev.copy()
                base[:, :3] += rng.normal(0.0, limits.linear_speed_max * period_s, (frames, 3))
            elif rng.random() < switch_rate:
                base = _random_poses(rng, limits, frames, 0.5)
            roll = rng.random()
            target = None if roll < 0.1 * odd else _corrupt(rng, base) if roll < odd else base
            measured = _random_poses(rng, limits, frames, 0.5) if rng.random() < 0.1 else prev
            hold = Status.HOLD_ESTOP if rng.random() < 0.1 * odd else None
            pose, status = flt.step(target, measured, hold=hold)
            report.steps += 1
            report.statuses[status.name] += 1
            report.holds += status.is_hold
            pairs.append((prev, pose))
            prev = pose
        _check_pose_pairs(report, np.array(pairs), limits, period_s)
    return report


def _outside_box(poses: np.ndarray, limits: CartesianLimits) -> np.ndarray:
    """Per-axis distance [m] outside the box (0 inside), shape (..., 3)."""
    position = poses[..., :3]
    return np.maximum(np.maximum(limits.box_min - position, position - limits.box_max), 0.0)


def _check_pose_pairs(report: CartesianFuzzReport, pairs: np.ndarray, limits: CartesianLimits,
                      period_s: float) -> None:
    """Count violations in outputs (m, 2, F, 7): (previous pose, pose)."""
    prev, pose = pairs[:, 0], pairs[:, 1]
    outside = _outside_box(pose, limits)
    before = _outside_box(prev, limits)
    report.violations_workspace += int(np.count_nonzero(
        np.any(outside > before + 1e-12, axis=(1, 2))))
    delta = pose[..., :3] - prev[..., :3]
    step_length = np.hypot(np.hypot(delta[..., 0], delta[..., 1]), delta[..., 2])
    linear = limits.linear_speed_max * period_s
    report.violations_linear_speed += int(np.count_nonzero(
        np.any(step_length > linear * (1 + _RELATIVE_TOLERANCE) + 1e-12, axis=1)))
    angle = quat_angle(prev[..., 3:], pose[..., 3:])
    angular = limits.angular_speed_max * period_s
    report.violations_angular_speed += int(np.count_nonzero(
        np.any(angle > angular * (1 + _RELATIVE_TOLERANCE) + 1e-12, axis=1)))
    norm = np.sqrt(np.einsum("...i,...i->...", pose[..., 3:], pose[..., 3:]))
    report.violations_rotation += int(np.count_nonzero(np.any(np.abs(norm - 1.0) > 1e-12, axis=1)))
