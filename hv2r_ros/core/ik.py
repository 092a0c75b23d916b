"""Differential inverse kinematics: pink's QP with joint limits and singularity scaling.

One :meth:`DifferentialIK.step` per control period turns end-effector targets into the next
joint position command. The QP (pink) weighs one frame task per end-effector and a posture task
toward a reference (the home pose), subject to joint position limits and ``velocity_max * dt``
per step. Around it, MoveIt Servo-style guards:

1. Validate: a non-finite or malformed measurement or target holds (``q_next = q_measured``).
2. A measured state slightly outside the position limits is clipped into them before solving,
   so the solver never starts outside and never commands further outward.
3. Singularity: near a singular pose the step is scaled down linearly from condition number
   ``slowdown`` to ``halt`` and held beyond, unless the step lowers the condition number (else a
   robot that reached a singularity could never leave it).
4. Final guard: the step from the measured state is scaled uniformly (keeping its direction)
   to respect ``velocity_max * dt`` per joint, then clipped to the limits against float noise.

Invariant of every returned ``q_next``: ``|q_next - q_measured| <= velocity_max * dt`` per
joint, and each joint is inside ``[position_min, position_max]`` or, if it was measured outside,
no further outside than measured.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np
import pinocchio as pin
import pink
import qpsolvers
from pink.exceptions import PinkError
from pink.limits import ConfigurationLimit, VelocityLimit
from pink.tasks import FrameTask, PostureTask

from hv2r_ros.core.errors import LimitsError
from hv2r_ros.core.ik_config import IKConfig
from hv2r_ros.core.ik_targets import pose_error, targets_from_array, validate_targets
from hv2r_ros.core.kinematics import KinematicModel
from hv2r_ros.core.limits import JointLimits
from hv2r_ros.core.singularity import SingularityMonitor, singularity_scale
from hv2r_ros.core.status import Status

# QP solvers meet their bounds to a relative tolerance of about 1e-5: scales closer to 1 than
# this are solver noise, not a modification worth reporting.
_SCALE_REPORT_THRESHOLD = 1.0 - 1e-3
# Steps are bounded by (1 - this) * velocity_max * dt: see DifferentialIK._guard.
_STEP_SHRINK = 1e-9
_SOLVER_ERRORS = (PinkError, qpsolvers.QPError, ValueError, ArithmeticError, np.linalg.LinAlgError)


@dataclasses.dataclass(frozen=True)
class IKDiagnostics:
    """What the last step saw and did; NaN where the step held before computing it.

    Attributes:
        condition_number: Worst end-effector Jacobian condition number at the (clipped)
            measured state [unitless].
        singularity_scale: Factor applied to the QP step for the singularity, in [0, 1].
        velocity_scale: Factor of the final velocity guard, in (0, 1].
        position_error_m: Largest end-effector position error before the step [m].
        orientation_error_rad: Largest end-effector orientation error before the step [rad].
    """

    condition_number: float = math.nan
    singularity_scale: float = math.nan
    velocity_scale: float = math.nan
    position_error_m: float = math.nan
    orientation_error_rad: float = math.nan


class DifferentialIK:
    """Differential IK of one robot, built once and stepped every control period.

    Args:
        kinematic_model: Reduced model of the commanded joints (``build_kinematic_model``).
        limits: Joint limits in the model's joint order (margin included); they replace the
            model's own limits inside the IK.
        config: IK settings; ``config.frames`` are the end-effector frames.
        posture_reference: Posture task target [rad or m], shape (n,), inside the limits
            (usually the profile's home pose).

    Raises:
        FrameNotFoundError: a frame of ``config.frames`` (or the base frame) is not in the
            model; the message lists the model's frames.
        LimitsError: ``limits`` does not match the model's joints, or the posture reference is
            malformed or outside the limits.
    """

    def __init__(
        self,
        kinematic_model: KinematicModel,
        limits: JointLimits,
        config: IKConfig,
        posture_reference: np.ndarray,
    ) -> None:
        if tuple(limits.names) != tuple(kinematic_model.joint_names):
            raise LimitsError(
                "limits must list the model's joints in the model's order "
                f"({', '.join(kinematic_model.joint_names)})",
                file=config.source, field="limits.names", value=list(limits.names),
            )
        self.config = config
        self.limits = limits
        self.kinematic_model = kinematic_model
        self._frame_ids = [
            kinematic_model.frame_id(frame, file=config.source, field=f"frames[{i}]")
            for i, frame in enumerate(config.frames)
        ]
        self._base_id = kinematic_model.frame_id(
            kinematic_model.base_frame, file=config.source, field="base_frame"
        )
        reference = np.asarray(posture_reference, dtype=np.float64).reshape(-1)
        if reference.shape != (limits.size,) or not np.all(np.isfinite(reference)):
            raise LimitsError(
                f"posture reference must be {limits.size} finite values",
                file=config.source, field="posture_reference", value=list(reference),
            )
        outside = np.flatnonzero(
            (reference < limits.position_min) | (reference > limits.position_max)
        )
        if outside.size:
            i = int(outside[0])
            raise LimitsError(
                "posture reference is outside the position limits "
                f"[{limits.position_min[i]:.4f}, {limits.position_max[i]:.4f}]",
                file=config.source, field=f"posture_reference[{limits.names[i]}]",
                value=float(reference[i]),
            )
        # A private copy of the model carries exactly these limits: pink reads them from it.
        model = pin.Model(kinematic_model.model)
        model.lowerPositionLimit = limits.position_min.copy()
        model.upperPositionLimit = limits.position_max.copy()
        model.velocityLimit = limits.velocity_max.copy()
        self._model = model
        self._configuration = pink.Configuration(model, model.createData(), reference)
        self._frame_tasks = [
            FrameTask(
                frame,
                position_cost=config.position_cost,
                orientation_cost=config.orientation_cost,
                lm_damping=config.lm_damping,
                gain=config.frame_task_gain,
            )
            for frame in config.frames
        ]
        self._tasks: list[Any] = list(self._frame_tasks)
        if config.posture_cost > 0.0:
            posture = PostureTask(cost=config.posture_cost)
            posture.set_target(reference)
            self._tasks.append(posture)
        self._limits = [
            ConfigurationLimit(model, config_limit_gain=config.config_limit_gain),
            VelocityLimit(model, limits.velocity_max),
        ]
        self._monitor = SingularityMonitor(model, self._frame_ids, config.characteristic_length_m)
        self._fk_data = model.createData()
        self.last_diagnostics = IKDiagnostics()

    @classmethod
    def from_profile(cls, profile: Any, **config_overrides: Any) -> "DifferentialIK":
        """Build the IK of a ``RobotProfile``: its model, limits, frames and home posture."""
        config = IKConfig.from_profile(profile, **config_overrides)
        return cls(profile.kinematic_model(), profile.limits, config, profile.home)

    @property
    def frames(self) -> tuple[str, ...]:
        """End-effector frames, the order of array targets."""
        return self.config.frames

    def step(
        self,
        q_measured: np.ndarray,
        targets: Mapping[str, pin.SE3] | np.ndarray,
        dt_s: float | None = None,
    ) -> tuple[np.ndarray, Status]:
        """Compute the next joint position command toward the targets. Never raises.

        Args:
            q_measured: Measured joint positions [rad or m], shape (n,), model joint order.
            targets: Either a mapping ``frame -> pin.SE3`` covering exactly ``self.frames``, or
                an array of shape (len(frames), 7) with rows ``[x, y, z, qx, qy, qz, qw]``
                (see :func:`targets_from_array`). Poses are in the model's base frame [m].
            dt_s: Period of this step [s]; ``None`` uses ``config.dt_s``.

        Returns:
            ``(q_next, status)``: the command [rad or m], shape (n,), and what happened:
            ``OK``; ``SCALED_SINGULARITY`` or ``SCALED_VELOCITY`` (step shortened, direction
            kept); or a hold (``HOLD_*``) with ``q_next`` equal to ``q_measured``. Details of the
            step are in :attr:`last_diagnostics`.
        """
        self.last_diagnostics = IKDiagnostics()
        try:
            q = np.array(q_measured, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            return np.asarray(q_measured), Status.HOLD_INVALID_MEASUREMENT
        if q.shape != (self.limits.size,):
            return q, Status.HOLD_WRONG_LENGTH
        if not np.all(np.isfinite(q)):
            return q, Status.HOLD_INVALID_MEASUREMENT
        try:
            dt = float(self.config.dt_s if dt_s is None else dt_s)
        except (TypeError, ValueError):
            return q, Status.HOLD_NON_FINITE
        if not math.isfinite(dt):
            return q, Status.HOLD_NON_FINITE
        if dt <= 0.0:
            return q, Status.HOLD_NON_MONOTONIC
        if isinstance(targets, Mapping):
            status = validate_targets(self.frames, targets)
        else:
            targets, status = targets_from_array(self.frames, targets)
        if status.is_hold:
            return q, status
        return self._solve(q, targets, dt)

    def _solve(
        self, q: np.ndarray, targets: Mapping[str, pin.SE3], dt: float
    ) -> tuple[np.ndarray, Status]:
        limits = self.limits
        q_start = np.clip(q, limits.position_min, limits.position_max)
        configuration = self._configuration
        configuration.update(q_start)
        data = configuration.data
        world_to_base = data.oMf[self._base_id]
        worst_position = worst_orientation = 0.0
        for task, frame_id in zip(self._frame_tasks, self._frame_ids):
            target_in_world = world_to_base * targets[task.frame]
            task.set_target(target_in_world)
            position, orientation = pose_error(data.oMf[frame_id], target_in_world)
            worst_position = max(worst_position, position)
            worst_orientation = max(worst_orientation, orientation)
        condition = self._monitor.condition_from_data(data)
        try:
            velocity = pink.solve_ik(
                configuration, self._tasks, dt, solver=self.config.solver,
                damping=self.config.damping, limits=self._limits,
            )
        except _SOLVER_ERRORS:
            self.last_diagnostics = IKDiagnostics(
                condition, math.nan, math.nan, worst_position, worst_orientation
            )
            return q, Status.HOLD_IK_FAILED
        dq = velocity * dt
        if not np.all(np.isfinite(dq)):
            return q, Status.HOLD_IK_FAILED
        status = Status.OK
        scale = 1.0
        slowdown = self.config.singularity_slowdown_condition
        if condition >= slowdown and self._monitor.condition(q_start + dq) >= condition:
            # Moving toward (or along) the singularity: slow down, then stop.
            scale = singularity_scale(condition, slowdown, self.config.singularity_halt_condition)
            if scale <= 0.0:
                self.last_diagnostics = IKDiagnostics(
                    condition, 0.0, math.nan, worst_position, worst_orientation
                )
                return q, Status.HOLD_SINGULAR
            status = Status.SCALED_SINGULARITY
        q_inside = bool(np.array_equal(q_start, q))
        q_next, velocity_scale = self._guard(q, q_start + scale * dq, dt, q_inside)
        if velocity_scale < _SCALE_REPORT_THRESHOLD and status is Status.OK:
            status = Status.SCALED_VELOCITY
        self.last_diagnostics = IKDiagnostics(
            condition, scale, velocity_scale, worst_position, worst_orientation
        )
        return q_next, status

    def _guard(
        self, q: np.ndarray, q_next: np.ndarray, dt: float, q_inside: bool
    ) -> tuple[np.ndarray, float]:
        """Enforce the step invariant on ``q_next``; return it and the uniform scale used.

        ``q_inside`` says whether the measured ``q`` is inside the position limits.
        """
        limits = self.limits
        # The shrunk bound leaves room for the rounding of q + step (~1e-16 rad), so the
        # invariant holds exactly in floating point, not just up to rounding.
        step_max = limits.velocity_max * (dt * (1.0 - _STEP_SHRINK))
        delta = q_next - q
        worst = float(np.max(np.abs(delta) / step_max))
        scale = 1.0 / worst if worst > 1.0 else 1.0
        q_next = q + scale * delta
        # Only removes the QP's tolerance (~1e-9) at a position limit: the step is already
        # bounded, so this cannot change its direction noticeably.
        if q_inside:
            return np.clip(q_next, limits.position_min, limits.position_max, out=q_next), scale
        lower = np.minimum(limits.position_min, q)
        upper = np.maximum(limits.position_max, q)
        return np.clip(q_next, lower, upper, out=q_next), scale

    def forward_kinematics(self, q: np.ndarray) -> dict[str, pin.SE3]:
        """Poses of the end-effector frames in the base frame at ``q`` [rad or m], shape (n,)."""
        model, data = self._model, self._fk_data
        pin.framesForwardKinematics(model, data, np.asarray(q, dtype=np.float64))
        base_inverse = data.oMf[self._base_id].inverse()
        return {
            frame: base_inverse * data.oMf[frame_id]
            for frame, frame_id in zip(self.frames, self._frame_ids)
        }

    def condition_number(self, q: np.ndarray) -> float:
        """Worst end-effector Jacobian condition number at ``q`` (see :mod:`singularity`)."""
        return self._monitor.condition(np.asarray(q, dtype=np.float64))
