"""One control step from Cartesian targets to a guarded joint command.

    end-effector targets (F, 7) -> CartesianFilter (workspace box, tool speed)
                                -> DifferentialIK (joint limits, velocity, singularities)
                                -> JointGuard (position, velocity, acceleration, braking)

The IK integrates from the guard's previous command, not from the measured state: a
position-controlled joint lags its command by a few milliseconds, and feeding that lag back into
the IK would make every step start behind the guard's own trajectory and brake. The measured
state seeds the chain on start and reset, and must stay valid (a non-finite measurement holds).

The Cartesian filter is re-seeded every step from the pose of the previous joint command, so its
tool-speed limit applies to the motion actually commanded: when the joint guard or the IK slows
the robot (acceleration, singularity), the filter does not run ahead on a virtual pose.

Poses are rows ``[x, y, z, qx, qy, qz, qw]`` in the profile's base frame [m], one per end-effector
frame in profile order.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pinocchio as pin

from hv2r_ros.core.ik import DifferentialIK
from hv2r_ros.core.safety.cartesian import CartesianFilter
from hv2r_ros.core.safety.joint_guard import JointGuard
from hv2r_ros.core.status import Status


@dataclasses.dataclass(frozen=True)
class ChainStatus:
    """What each stage did in one step; ``final`` is the one that matters to the robot."""

    cartesian: Status
    ik: Status
    guard: Status

    @property
    def final(self) -> Status:
        """The first hold of the chain, else the first modification, else OK."""
        stages = (self.cartesian, self.ik, self.guard)
        for status in stages:
            if status.is_hold:
                return status
        for status in stages:
            if status.is_modified:
                return status
        return Status.OK


class CartesianCommandChain:
    """Cartesian filter, IK and joint guard of one robot profile, stepped together.

    Args:
        profile: A loaded ``RobotProfile``.
        **ik_overrides: ``IKConfig`` fields to override (e.g. ``posture_cost``).
    """

    def __init__(self, profile, **ik_overrides) -> None:
        self.profile = profile
        self.period_s = profile.control_period_s
        self.ik = DifferentialIK.from_profile(profile, **ik_overrides)
        self.cartesian = CartesianFilter(
            profile.workspace, profile.end_effector_frames, self.period_s
        )
        self.guard = JointGuard(profile.limits, self.period_s)
        self._poses = np.zeros((len(profile.end_effector_frames), 7))

    def poses(self, q: np.ndarray) -> np.ndarray:
        """End-effector poses (F, 7) at joint positions ``q`` [rad or m]."""
        for i, pose in enumerate(self.ik.forward_kinematics(q).values()):
            self._poses[i] = pin.SE3ToXYZQUAT(pose)
        return self._poses.copy()

    def reset(self, q_measured: np.ndarray) -> tuple[np.ndarray | None, Status]:
        """Re-seed every stage from the measured state; the returned command equals it."""
        q_cmd, status = self.guard.reset(q_measured)
        if q_cmd is None:
            return None, status
        self.cartesian.reset(self.poses(q_cmd))
        return q_cmd, status

    def step(
        self,
        targets: np.ndarray | None,
        q_measured: np.ndarray,
        *,
        hold: Status | None = None,
        authority: float = 1.0,
    ) -> tuple[np.ndarray | None, ChainStatus]:
        """One control period.

        Args:
            targets: End-effector targets (F, 7), or None when there is no valid command.
            q_measured: Measured joint positions [rad or m], shape (n,), profile order.
            hold: A hold reason decided upstream (stale command, e-stop...).
            authority: Factor in [0, 1] on the joint velocity limit (authority ramp).

        Returns:
            ``(q_cmd, ChainStatus)``; ``q_cmd`` is None only while the chain cannot be seeded
            (invalid measurement): publish nothing then.
        """
        if self.guard.position is None:
            q_cmd, status = self.reset(q_measured)
            seeded = Status.HOLD_NOT_STARTED if q_cmd is not None else status
            return q_cmd, ChainStatus(seeded, seeded, seeded)
        q_from = self.guard.position
        commanded_poses = self.poses(q_from)
        poses, cart_status = self.cartesian.step(targets, commanded_poses, hold=hold, follow=True)
        if cart_status.is_hold or poses is None:
            q_cmd, guard_status = self.guard.step(None, q_measured, hold=cart_status)
            return q_cmd, ChainStatus(cart_status, Status.OK, guard_status)
        q_target, ik_status = self.ik.step(q_from, poses)
        if ik_status.is_hold:
            q_cmd, guard_status = self.guard.step(None, q_measured, hold=ik_status)
        else:
            q_cmd, guard_status = self.guard.step(q_target, q_measured, authority=authority)
        return q_cmd, ChainStatus(cart_status, ik_status, guard_status)
