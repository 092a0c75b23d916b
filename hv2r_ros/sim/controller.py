"""The simulated robot's joint position controller, as ros2_control's position interface sees it.

A real position-controlled arm accepts a target per joint and moves there within its own
limits; a target that is not finite, has the wrong length or lies outside the joint range is
refused and the previous target stays (franka_ros2 and the UR driver reject such commands;
forward_command_controller drops wrong-length arrays). This controller does the same:

- position: the hard limits (URDF range intersected with the vendor's published range, no
  safety margin), beyond which every target is refused;
- velocity and acceleration: the vendor's published limits where the profile lists them
  (``vendor_limits``), else the URDF velocity, else the profile's operational limit.

Each joint moves toward its target as fast as its limits allow and stops on it without
overshoot: the speed never exceeds what braking at full deceleration can still take to zero
within the remaining distance (exactly, in discrete time), so a fixed target is reached and a
moving target is followed one step behind.
"""

from __future__ import annotations

import dataclasses
import numpy as np

from hv2r_ros.core.robot_profile import RobotProfile
from hv2r_ros.core.urdf import parse_joint_limits


@dataclasses.dataclass(frozen=True, eq=False)
class ControllerLimits:
    """Limits the simulated controller enforces, shape (n,) each, profile joint order.

    Attributes:
        position_min: Hard lower limits [rad or m].
        position_max: Hard upper limits [rad or m].
        velocity_max: Speed limits [rad/s or m/s], > 0.
        acceleration_max: Acceleration limits [rad/s^2 or m/s^2], > 0.
        source: Where the velocity and acceleration limits come from, in words.
    """

    position_min: np.ndarray
    position_max: np.ndarray
    velocity_max: np.ndarray
    acceleration_max: np.ndarray
    source: str

    @classmethod
    def from_profile(cls, profile: RobotProfile) -> "ControllerLimits":
        """The robot's own limits: hard position range, vendor velocity and acceleration."""
        urdf = parse_joint_limits(profile.urdf_xml)
        joints = profile.joint_names
        lo = np.array([urdf[j].lower for j in joints])
        hi = np.array([urdf[j].upper for j in joints])
        velocity = np.array([urdf[j].velocity for j in joints])
        velocity = np.where(np.isfinite(velocity), velocity, profile.limits.velocity_max)
        acceleration = np.array(profile.limits.acceleration_max, dtype=np.float64)
        sources = ["velocity: URDF", "acceleration: profile (no vendor figure)"]
        vendor = profile.vendor_limits
        if vendor is not None:
            if vendor.position_min is not None:
                lo, hi = np.maximum(lo, vendor.position_min), np.minimum(hi, vendor.position_max)
            if vendor.velocity_max is not None:
                velocity, sources[0] = np.array(vendor.velocity_max), "velocity: vendor"
            if vendor.acceleration_max is not None:
                acceleration = np.array(vendor.acceleration_max)
                sources[1] = "acceleration: vendor"
        # Continuous joints have no hard range: the profile's (finite, validated) range stands in.
        lo = np.where(np.isfinite(lo), lo, profile.limits.position_min)
        hi = np.where(np.isfinite(hi), hi, profile.limits.position_max)
        return cls(lo, hi, velocity, acceleration, ", ".join(sources))


class PositionController:
    """Per-joint position tracking within velocity and acceleration limits.

    Args:
        limits: The enforced limits.
        q_initial: Initial positions [rad or m], shape (n,); also the initial target.
    """

    def __init__(self, limits: ControllerLimits, q_initial: np.ndarray) -> None:
        self.limits = limits
        self.refusals = 0
        self.last_refusal = ""
        self.reset(q_initial)

    def reset(self, q: np.ndarray) -> None:
        """Stand still at ``q`` with the target on it (refusal count kept)."""
        self._q = np.array(q, dtype=np.float64)
        self._qd = np.zeros_like(self._q)
        self._target = self._q.copy()

    @property
    def q(self) -> np.ndarray:
        """Positions [rad or m], shape (n,) (a copy)."""
        return self._q.copy()

    @property
    def qd(self) -> np.ndarray:
        """Velocities [rad/s or m/s], shape (n,) (a copy)."""
        return self._qd.copy()

    @property
    def target(self) -> np.ndarray:
        """The target being tracked [rad or m], shape (n,) (a copy)."""
        return self._target.copy()

    def command(self, q_target: np.ndarray) -> bool:
        """Accept a new target, or refuse it and keep the previous one.

        Returns:
            Whether the target was accepted; on refusal ``refusals`` grows by one and
            ``last_refusal`` says why.
        """
        reason = self._check(q_target)
        if reason:
            self.refusals += 1
            self.last_refusal = reason
            return False
        self._target = np.array(q_target, dtype=np.float64).reshape(-1)
        return True

    def _check(self, q_target: np.ndarray) -> str:
        try:
            target = np.asarray(q_target, dtype=np.float64)
        except (TypeError, ValueError):
            return "target is not a numeric array"
        n = self._q.size
        if target.shape != (n,):
            return f"target has shape {target.shape}, expected ({n},)"
        if not np.all(np.isfinite(target)):
            index = int(np.flatnonzero(~np.isfinite(target))[0])
            return f"non-finite target at joint index {index}"
        tolerance = 1e-9  # float noise of a target computed exactly at a limit
        outside = ((target < self.limits.position_min - tolerance)
                   | (target > self.limits.position_max + tolerance))
        if np.any(outside):
            i = int(np.flatnonzero(outside)[0])
            return (f"target {target[i]:.4f} of joint index {i} outside its position limits "
                    f"[{self.limits.position_min[i]:.4f}, {self.limits.position_max[i]:.4f}]")
        return ""

    def step(self, dt_s: float) -> None:
        """Advance by ``dt_s`` [s] toward the target."""
        dv = self.limits.acceleration_max * dt_s
        error = self._target - self._q
        reach = np.abs(error) / dt_s
        # The fastest step v that braking by dv per step can still stop within |error|:
        # with m = floor(v / dv), dt * ((m + 1) v - dv m (m + 1) / 2) <= |error|.
        m = np.floor(np.sqrt(0.25 + 2.0 * reach / dv) - 0.5 + 1e-12)
        brake = np.minimum((reach + dv * m * (m + 1.0) / 2.0) / (m + 1.0), (m + 1.0) * dv)
        wanted = np.sign(error) * np.minimum(self.limits.velocity_max, brake)
        self._qd = self._qd + np.clip(wanted - self._qd, -dv, dv)
        self._q = np.clip(self._q + self._qd * dt_s, self.limits.position_min,
                          self.limits.position_max)


