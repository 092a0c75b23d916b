"""Cartesian safety filter on end-effector pose targets: workspace box and tool speed.

A pose is 7 floats ``[x, y, z, qx, qy, qz, qw]``: position [m] in the robot base frame and a
unit quaternion in geometry_msgs order (x, y, z, w). Several end-effector frames (a humanoid's
two hands) are an array of shape (F, 7) in the profile's frame order.

Per step, against the previous output pose: the target position is clamped into the workspace
box, then the whole motion (every frame's translation and rotation) is scaled by one factor
``s`` in [0, 1] so that ``|dp| / dt <= linear_speed_max`` and ``angle / dt <=
angular_speed_max`` on every frame. One factor for all frames keeps the motion's direction
(and two hands' coordination); rotation is scaled by slerp.

Box outside the measured pose: the first output after a reset equals the measured pose (design
§5.5), even outside the box. Later targets are clamped into the box, so the output moves
straight toward the box at most at the speed limit and never further out: per axis, the
distance outside the box never grows.

HOLD moves toward the last valid measured pose (clamped into the box) within the speed limits;
with no valid measurement it stops at the last output. Accelerations are the joint guard's job.
"""

from __future__ import annotations

import math

import numpy as np

from hv2r_ros.core.errors import LimitsError
from hv2r_ros.core.limits import CartesianLimits
from hv2r_ros.core.status import Status

#: Accepted deviation of a quaternion's norm from 1 before it is normalised.
QUATERNION_NORM_TOLERANCE = 0.01


# Hamilton product a * b as L(a) @ b, with L(a) gathered from a's (x, y, z, w) components.
_LEFT_INDEX = np.array([[3, 2, 1, 0], [2, 3, 0, 1], [1, 0, 3, 2], [0, 1, 2, 3]])
_LEFT_SIGN = np.array([[1.0, -1, 1, 1], [1, 1, -1, 1], [-1, 1, 1, 1], [-1, -1, -1, 1]])


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of (x, y, z, w) quaternions, shapes (..., 4)."""
    return ((a[..., _LEFT_INDEX] * _LEFT_SIGN) @ b[..., None])[..., 0]


def _norm(x: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis (cheaper than np.linalg.norm for tiny arrays)."""
    return np.sqrt(np.einsum("...i,...i->...", x, x))


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """Inverse of unit (x, y, z, w) quaternions, shape (..., 4)."""
    return q * np.array([-1.0, -1.0, -1.0, 1.0])


def quat_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation angle [rad] in [0, pi] from ``a`` to ``b`` (unit quaternions, (..., 4))."""
    rel = quat_multiply(quat_conjugate(a), b)
    return 2.0 * np.arctan2(_norm(rel[..., :3]), np.abs(rel[..., 3]))


def check_poses(poses: object, frames: int,
                tolerance: float = QUATERNION_NORM_TOLERANCE) -> tuple[np.ndarray | None, Status]:
    """Validate poses and normalise near-unit quaternions.

    Args:
        poses: Shape (..., frames, 7) ``[x, y, z, qx, qy, qz, qw]``.
        frames: Expected number of frames.
        tolerance: Largest accepted ``| |q| - 1 |``.

    Returns:
        ``(normalised float64 copy, OK)`` or ``(None, HOLD_WRONG_LENGTH | HOLD_NON_FINITE |
        HOLD_INVALID_ROTATION)``.
    """
    try:
        array = np.array(poses, dtype=np.float64)
    except (TypeError, ValueError):
        return None, Status.HOLD_WRONG_LENGTH
    if array.ndim < 2 or array.shape[-2:] != (frames, 7):
        return None, Status.HOLD_WRONG_LENGTH
    if array.ndim == 2:
        return _check_pose_rows(array, tolerance)
    if not np.isfinite(array).all():
        return None, Status.HOLD_NON_FINITE
    norm = _norm(array[..., 3:])[..., None]
    if not (np.abs(norm - 1.0) <= tolerance).all():
        return None, Status.HOLD_INVALID_ROTATION
    array[..., 3:] /= norm
    return array, Status.OK


def _check_pose_rows(array: np.ndarray, tolerance: float) -> tuple[np.ndarray | None, Status]:
    """check_poses for one pose per frame (F, 7), in plain floats: it runs every period."""
    rows = array.tolist()
    for row in rows:
        if not all(map(math.isfinite, row)):
            return None, Status.HOLD_NON_FINITE
    for i, row in enumerate(rows):
        norm = math.sqrt(row[3] * row[3] + row[4] * row[4] + row[5] * row[5] + row[6] * row[6])
        if not abs(norm - 1.0) <= tolerance:
            return None, Status.HOLD_INVALID_ROTATION
        array[i, 3:] /= norm
    return array, Status.OK


def limit_pose_step(previous: np.ndarray, target: np.ndarray, limits: CartesianLimits,
                    dt_s: float, goal_speeds: list[tuple[float, float]] | None = None
                    ) -> tuple[np.ndarray, Status]:
    """One filter step from ``previous`` toward a validated ``target``, both shape (F, 7).

    Plain floats per frame: for one or two frames this is several times faster than numpy.

    Args:
        goal_speeds: Per frame, the speed at which the target itself moves ([m/s], [rad/s]).
            When given and ``limits`` has tool accelerations, the speed is also capped at
            ``goal speed + sqrt(2 a d)`` for the distance ``d`` left: a fixed goal is approached
            with a deceleration the joints can follow (no overshoot past it), while a streamed
            target is followed at its own speed. ``None``: speed limits only.

    Returns:
        ``(pose, status)`` with status ``OK``, ``CLAMPED_WORKSPACE`` or ``SCALED_TOOL_SPEED``.
    """
    low, high = limits.box_min.tolist(), limits.box_max.tolist()
    linear, angular = limits.linear_speed_max * dt_s, limits.angular_speed_max * dt_s
    a_lin, a_ang = limits.linear_acceleration_max, limits.angular_acceleration_max
    approach = goal_speeds is not None and a_lin is not None and a_ang is not None
    scale, clamped, moves = 1.0, False, []
    for f, (p, t) in enumerate(zip(previous.tolist(), target.tolist())):
        goal = [min(max(t[i], low[i]), high[i]) for i in range(3)]
        clamped = clamped or goal != t[:3]
        delta = [goal[i] - p[i] for i in range(3)]
        distance = math.hypot(*delta)  # no overflow, unlike a sum of squares
        px, py, pz, pw = p[3:]
        tx, ty, tz, tw = t[3:]
        # Relative rotation conj(p) * t, on the shortest way round.
        rx = pw * tx - px * tw - py * tz + pz * ty
        ry = pw * ty + px * tz - py * tw - pz * tx
        rz = pw * tz - px * ty + py * tx - pz * tw
        rw = pw * tw + px * tx + py * ty + pz * tz
        if rw < 0.0:
            rx, ry, rz, rw = -rx, -ry, -rz, -rw
        sin_half = math.sqrt(rx * rx + ry * ry + rz * rz)
        half = math.atan2(sin_half, rw)
        step_linear, step_angular = linear, angular
        if approach:
            goal_linear, goal_angular = goal_speeds[f]
            step_linear = min(linear, (goal_linear + math.sqrt(2.0 * a_lin * distance)) * dt_s)
            step_angular = min(angular,
                               (goal_angular + math.sqrt(4.0 * a_ang * half)) * dt_s)
        if distance > step_linear:
            scale = min(scale, step_linear / distance)
        if 2.0 * half > step_angular:
            scale = min(scale, step_angular / (2.0 * half))
        moves.append((p, delta, (rx, ry, rz), sin_half, half))
    out = np.empty_like(previous)
    for row, (p, delta, axis, sin_half, half) in zip(out, moves):
        k = math.sin(scale * half) / sin_half if sin_half > 0.0 else 0.0
        sx, sy, sz, sw = axis[0] * k, axis[1] * k, axis[2] * k, math.cos(scale * half)
        px, py, pz, pw = p[3:]
        qx = pw * sx + px * sw + py * sz - pz * sy
        qy = pw * sy - px * sz + py * sw + pz * sx
        qz = pw * sz + px * sy - py * sx + pz * sw
        qw = pw * sw - px * sx - py * sy - pz * sz
        norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
        row[:] = (p[0] + scale * delta[0], p[1] + scale * delta[1], p[2] + scale * delta[2],
                  qx / norm, qy / norm, qz / norm, qw / norm)
    if scale < 1.0:
        return out, Status.SCALED_TOOL_SPEED
    return out, Status.CLAMPED_WORKSPACE if clamped else Status.OK


_SEVERITY = (Status.OK, Status.CLAMPED_WORKSPACE, Status.SCALED_TOOL_SPEED)


def filter_pose_chunk(start: np.ndarray, chunk: np.ndarray, limits: CartesianLimits,
                      dt_s: float) -> tuple[np.ndarray, Status]:
    """Filter a validated chunk of H pose targets, shape (H, F, 7), starting from ``start``.

    Each step is limited against the previous filtered step, so the whole chunk respects the
    box and the tool speed at the chunk's own step ``dt_s`` [s].

    Returns:
        ``(filtered chunk (H, F, 7), the most severe step status)``.
    """
    out = np.empty_like(chunk)
    previous, worst = start, 0
    for k in range(len(chunk)):
        previous, status = limit_pose_step(previous, chunk[k], limits, dt_s)
        out[k] = previous
        worst = max(worst, _SEVERITY.index(status))
    return out, _SEVERITY[worst]


class CartesianFilter:
    """Stateful workspace and tool-speed filter for one or more end-effector frames.

    Args:
        limits: Workspace box (base frame) and tool speed limits.
        frames: End-effector frame names, the order of the (F, 7) pose arrays.
        period_s: Time between two :meth:`step` calls [s], finite and > 0.
        quaternion_tolerance: Largest accepted ``| |q| - 1 |`` of a target quaternion.

    Raises:
        LimitsError: ``period_s`` is not positive and finite, or ``frames`` is empty.
    """

    def __init__(self, limits: CartesianLimits, frames: tuple[str, ...], period_s: float,
                 quaternion_tolerance: float = QUATERNION_NORM_TOLERANCE) -> None:
        if not math.isfinite(float(period_s)) or float(period_s) <= 0.0:
            raise LimitsError("must be a positive finite period", field="control_period_s",
                              value=period_s)
        if not frames:
            raise LimitsError("at least one end-effector frame is needed",
                              field="end_effector_frames", value=frames)
        self.limits = limits
        self.frames = tuple(frames)
        self.period_s = float(period_s)
        self.quaternion_tolerance = float(quaternion_tolerance)
        self._pose: np.ndarray | None = None
        self._measured: np.ndarray | None = None
        self._goal: list[list[float]] | None = None  # last accepted target, box-clamped

    @property
    def pose(self) -> np.ndarray | None:
        """Last output poses, shape (F, 7), or None before seeding."""
        return None if self._pose is None else self._pose.copy()

    def reset(self, measured_poses: np.ndarray) -> tuple[np.ndarray | None, Status]:
        """Re-seed from the measured poses (F, 7); the returned command equals them.

        Returns ``(None, HOLD_*)`` and keeps the previous state when the measurement is invalid.
        """
        measured, _ = check_poses(measured_poses, len(self.frames), self.quaternion_tolerance)
        if measured is None:
            return None, Status.HOLD_INVALID_MEASUREMENT
        self._pose = measured.copy()
        self._measured = measured
        self._goal = None
        return measured.copy(), Status.OK

    def follow(self, commanded_poses: np.ndarray) -> Status:
        """Move the filter's previous output to the poses actually commanded (F, 7).

        Unlike :meth:`reset` it keeps the memory of the last target, so the speed of a streamed
        target is still known. Call it when a later stage (IK, joint guard) did not follow the
        filter's output exactly, so the tool-speed limit applies to the commanded motion.
        """
        poses, _ = check_poses(commanded_poses, len(self.frames), self.quaternion_tolerance)
        if poses is None:
            return Status.HOLD_INVALID_MEASUREMENT
        self._pose = poses
        return Status.OK

    def _goal_speeds(self, target: np.ndarray) -> list[tuple[float, float]]:
        """Per frame, the linear [m/s] and angular [rad/s] speed of the (box-clamped) target.

        A move faster than the tool speed limits is a jump to a new goal, not a stream: 0.
        Plain floats: this runs every control period.
        """
        low, high = self.limits.box_min.tolist(), self.limits.box_max.tolist()
        goal = []
        for row in target.tolist():
            goal.append([min(max(row[i], low[i]), high[i]) for i in range(3)] + row[3:])
        previous, self._goal = self._goal, goal
        if previous is None:
            return [(0.0, 0.0)] * len(goal)
        speeds = []
        for a, b in zip(previous, goal):
            v = math.dist(a[:3], b[:3]) / self.period_s
            dot = abs(sum(x * y for x, y in zip(a[3:], b[3:])))
            w = 2.0 * math.acos(min(1.0, dot)) / self.period_s
            jump = v > self.limits.linear_speed_max or w > self.limits.angular_speed_max
            speeds.append((0.0, 0.0) if jump else (v, w))
        return speeds

    def step(self, target: np.ndarray | None, measured: np.ndarray | None, *,
             hold: Status | None = None, follow: bool = False) -> tuple[np.ndarray | None, Status]:
        """Filter one target (F, 7) at ``period_s``.

        Args:
            target: Pose targets (F, 7), frame order of ``frames``, or None (hold).
            measured: Measured poses (F, 7) or None; the hold target when valid.
            hold: A hold reason from the caller (e-stop, stale command...).
            follow: The measured poses are the poses actually commanded: start this step from
                them (as :meth:`follow` does) instead of from the previous output.

        Returns:
            ``(poses (F, 7), status)``; poses are None only while unseeded with no valid
            measurement.
        """
        meas = None
        if measured is not None:
            meas, _ = check_poses(measured, len(self.frames), self.quaternion_tolerance)
        if self._pose is None:
            if meas is None:
                return None, Status.HOLD_INVALID_MEASUREMENT
            seed, _ = self.reset(meas)
            return seed, Status.HOLD_NOT_STARTED
        if meas is not None:
            self._measured = meas
            if follow:
                self._pose = meas
        reason, checked = hold, None
        if reason is None and meas is None:
            reason = Status.HOLD_INVALID_MEASUREMENT
        if reason is None and target is None:
            reason = Status.HOLD_REQUESTED
        if reason is None:
            checked, reason = check_poses(target, len(self.frames), self.quaternion_tolerance)
            if checked is not None:
                reason = None
        if reason is None:
            self._pose, status = limit_pose_step(self._pose, checked, self.limits, self.period_s,
                                                 self._goal_speeds(checked))
            return self._pose.copy(), status
        self._goal = None
        goal = self._measured if meas is not None else self._pose
        self._pose, _ = limit_pose_step(self._pose, goal, self.limits, self.period_s)
        return self._pose.copy(), reason

    def filter_chunk(self, chunk: np.ndarray, dt_s: float) -> tuple[np.ndarray | None, Status]:
        """Filter a whole action chunk (H, F, 7) from the current output, without stepping.

        Any invalid step invalidates the whole chunk (``(None, HOLD_*)``).

        Args:
            chunk: H pose targets per frame, the policy's chunk.
            dt_s: Time between chunk steps [s] (the policy's control period), > 0.
        """
        if self._pose is None:
            return None, Status.HOLD_NOT_STARTED
        if not (math.isfinite(dt_s) and dt_s > 0.0):
            return None, Status.HOLD_NON_FINITE
        checked, status = check_poses(chunk, len(self.frames), self.quaternion_tolerance)
        if checked is None or checked.ndim != 3:
            return None, status if checked is None else Status.HOLD_WRONG_LENGTH
        return filter_pose_chunk(self._pose, checked, self.limits, dt_s)
