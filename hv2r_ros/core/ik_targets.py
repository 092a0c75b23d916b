"""End-effector targets of the IK: validation, array conversion, forward kinematics, errors.

Targets are ``pin.SE3`` poses of the end-effector frames expressed in the robot's base frame.
A policy or a ROS message produces them as rows ``[x, y, z, qx, qy, qz, qw]`` (position [m],
unit quaternion in ROS/pinocchio ``xyzw`` order); :func:`targets_from_array` converts those.
The validators never raise: they return a :class:`Status`, so the control loop can hold.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pinocchio as pin

from hv2r_ros.core.kinematics import KinematicModel
from hv2r_ros.core.status import Status

# A quaternion further than this from unit norm is not a rotation someone meant: hold.
QUATERNION_NORM_TOLERANCE = 1e-3
# Max |R^T R - I| entry accepted for a rotation matrix (float noise of a composed pose).
ROTATION_TOLERANCE = 1e-6
_IDENTITY = np.eye(3)


def targets_from_array(
    frames: Sequence[str], poses: Any
) -> tuple[dict[str, pin.SE3] | None, Status]:
    """Convert pose rows to targets, one row per frame.

    Args:
        frames: Frame names, the order of the rows.
        poses: Array-like of shape (len(frames), 7): ``[x, y, z, qx, qy, qz, qw]`` per row,
            position [m], quaternion ``xyzw`` (normalised here when within tolerance).

    Returns:
        ``(targets, Status.OK)``, or ``(None, hold status)`` for a wrong shape, a non-finite
        value, or a quaternion that is not unit norm.
    """
    try:
        array = np.array(poses, dtype=np.float64)
    except (TypeError, ValueError):
        return None, Status.HOLD_WRONG_LENGTH
    if array.shape != (len(frames), 7):
        return None, Status.HOLD_WRONG_LENGTH
    # Plain floats: for one or two rows this is several times cheaper than numpy reductions.
    rows = array.tolist()
    for row in rows:
        if not all(map(math.isfinite, row)):
            return None, Status.HOLD_NON_FINITE
    targets = {}
    for frame, row, values in zip(frames, array, rows):
        norm = math.sqrt(sum(x * x for x in values[3:]))
        if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
            return None, Status.HOLD_INVALID_ROTATION
        row[3:] /= norm
        # XYZQUATToSE3 takes the same [x, y, z, qx, qy, qz, qw] layout, in C++.
        targets[frame] = pin.XYZQUATToSE3(row)
    return targets, Status.OK


def validate_targets(frames: Sequence[str], targets: Any) -> Status:
    """Check that ``targets`` maps exactly ``frames`` to finite, proper rigid transforms.

    Returns:
        ``Status.OK``, ``HOLD_WRONG_NAMES`` (not a mapping of exactly these frames),
        ``HOLD_WRONG_LENGTH`` (a value is not a ``pin.SE3``), ``HOLD_NON_FINITE`` or
        ``HOLD_INVALID_ROTATION`` (rotation not orthonormal with determinant +1).
    """
    if not isinstance(targets, Mapping) or set(targets) != set(frames) or len(targets) != len(
        frames
    ):
        return Status.HOLD_WRONG_NAMES
    for frame in frames:
        pose = targets[frame]
        if not isinstance(pose, pin.SE3):
            return Status.HOLD_WRONG_LENGTH
        matrix = pose.homogeneous
        if not np.isfinite(matrix).all():
            return Status.HOLD_NON_FINITE
        rotation = matrix[:3, :3]
        if not np.abs(rotation.T @ rotation - _IDENTITY).max() <= ROTATION_TOLERANCE:
            return Status.HOLD_INVALID_ROTATION
        # Orthonormal rows: a proper rotation (det +1) has row0 x row1 == row2; a reflection
        # has row0 x row1 == -row2, so the sign of this dot product is the determinant.
        (a, b, c), (d, e, f), (g, h, i) = rotation.tolist()
        if (b * f - c * e) * g + (c * d - a * f) * h + (a * e - b * d) * i <= 0.0:
            return Status.HOLD_INVALID_ROTATION
    return Status.OK


def pose_error(current: pin.SE3, target: pin.SE3) -> tuple[float, float]:
    """Distance between two poses expressed in the same frame.

    Returns:
        ``(position_error_m, orientation_error_rad)``: Euclidean distance of the origins [m]
        and angle of the relative rotation ``current.R^T target.R`` via ``log3`` [rad].
    """
    # math.hypot on three scalars is several times cheaper than np.linalg.norm here (hot loop).
    position = math.hypot(*(target.translation - current.translation).tolist())
    orientation = math.hypot(*pin.log3(current.rotation.T @ target.rotation).tolist())
    return position, orientation


def forward_kinematics(
    kinematic_model: KinematicModel, q: np.ndarray, frames: Sequence[str]
) -> dict[str, pin.SE3]:
    """Poses of ``frames`` in the base frame at configuration ``q`` [rad or m], shape (nq,).

    Raises:
        FrameNotFoundError: a frame is not in the model.
    """
    ids = [kinematic_model.frame_id(frame) for frame in frames]
    q = np.asarray(q, dtype=np.float64)
    return {frame: kinematic_model.frame_pose(q, i).copy() for frame, i in zip(frames, ids)}
