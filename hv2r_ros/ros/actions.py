"""Action chunks on ``hv2r/action`` and ``hv2r/action_safe`` <-> numpy.

- Cartesian chunk (H, F, 7), rows ``[x y z qx qy qz qw]`` [m, unit quaternion] per end-effector
  frame, <-> ``trajectory_msgs/MultiDOFJointTrajectory``: ``joint_names`` = frame names, one
  point per chunk step with one ``Transform`` per frame, ``header.frame_id`` = the base frame.
- Joint chunk (H, n) [rad or m] <-> ``trajectory_msgs/JointTrajectory``.
- In both, ``header.stamp`` is the capture time of the observation the chunk was computed from
  and ``time_from_start`` the step's offset from that stamp [s], strictly increasing.

Gripper: rides along on its own topic (``hv2r/gripper``, ``hv2r/gripper_safe``) as a
``JointTrajectory`` with the single joint ``gripper`` (``GRIPPER_JOINT``): positions are the
policy's command in [0, 1] (0 open, 1 closed), one point per chunk step, with the same
``header.stamp`` and ``time_from_start`` as the arm chunk it belongs to (pair them by stamp).
A separate topic keeps the arm messages standard for every consumer, works the same for
Cartesian and joint chunks (a MultiDOFJointTrajectory has no slot for a scalar) and matches
ros2_control, where the gripper is its own controller. Mapping [0, 1] to the gripper joint's
open/closed positions is core's job.

Readers validate names (by name, never index), shapes and finiteness, in that order, and return
``(chunk | None, times_s | None, stamp_s, Status)``; ``stamp_s`` is always returned so the
caller can log the latency of a rejected chunk. Quaternion norms, limits and stamp age are the
safety core's to judge. Writers raise ``ValueError`` on shapes or times that cannot be right.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Quaternion, Transform, Vector3
from trajectory_msgs.msg import (
    JointTrajectory,
    MultiDOFJointTrajectory,
    MultiDOFJointTrajectoryPoint,
)

from hv2r_ros.core.safety.validate import map_by_name
from hv2r_ros.core.status import Status
from hv2r_ros.ros.joints import joint_trajectory
from hv2r_ros.ros.stamps import duration_from_seconds, from_seconds, to_seconds

__all__ = [
    "GRIPPER_JOINT", "cartesian_chunk_to_msg", "gripper_chunk_to_msg", "joint_chunk_to_msg",
    "read_cartesian_chunk", "read_gripper_chunk", "read_joint_chunk",
]

#: The one joint name of a gripper chunk message.
GRIPPER_JOINT = "gripper"

ChunkResult = tuple["np.ndarray | None", "np.ndarray | None", float, Status]


def _check_times(times_s: np.ndarray, steps: int) -> np.ndarray:
    times = np.asarray(times_s, dtype=np.float64)
    if times.shape != (steps,):
        raise ValueError(f"times_s must be ({steps},), got {times.shape}")
    if not np.isfinite(times).all() or times[0] < 0.0 or (np.diff(times) <= 0.0).any():
        raise ValueError(f"times_s must be finite, >= 0 and strictly increasing, got {times}")
    return times


def _read_times(points: Sequence) -> tuple[np.ndarray | None, Status]:
    times = np.array([p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in points])
    if times.size == 0:
        return None, Status.HOLD_WRONG_LENGTH
    if times[0] < 0.0 or (np.diff(times) <= 0.0).any():
        return None, Status.HOLD_NON_MONOTONIC
    return times, Status.OK


def cartesian_chunk_to_msg(
    frames: Sequence[str],
    chunk: np.ndarray,
    times_s: np.ndarray,
    stamp: Time | float,
    frame_id: str,
) -> MultiDOFJointTrajectory:
    """A ``MultiDOFJointTrajectory`` from a Cartesian chunk.

    Args:
        frames: End-effector frame names, one per chunk column (F).
        chunk: Shape (H, F, 7): ``[x y z qx qy qz qw]`` [m, -] in ``frame_id``.
        times_s: Offset of each step from ``stamp`` [s], shape (H,), strictly increasing.
        stamp: Capture time of the observation, a ``Time`` or seconds [s].
        frame_id: The frame the poses are expressed in (the profile's base frame).

    Raises:
        ValueError: Shapes that disagree, non-finite values, or times not strictly increasing.
    """
    frames = list(frames)
    chunk = np.asarray(chunk, dtype=np.float64)
    if chunk.ndim != 3 or chunk.shape[1:] != (len(frames), 7) or chunk.shape[0] == 0:
        raise ValueError(f"chunk must be (H >= 1, {len(frames)}, 7), got {chunk.shape}")
    if not np.isfinite(chunk).all():
        raise ValueError("chunk contains NaN or inf")
    times = _check_times(times_s, chunk.shape[0])
    msg = MultiDOFJointTrajectory()
    msg.header.stamp = stamp if isinstance(stamp, Time) else from_seconds(stamp)
    msg.header.frame_id = frame_id
    msg.joint_names = frames
    values = chunk.tolist()  # Python floats once, instead of one numpy scalar per field
    points = []
    for k, step in enumerate(values):
        point = MultiDOFJointTrajectoryPoint()
        point.transforms = [
            Transform(translation=Vector3(x=x, y=y, z=z),
                      rotation=Quaternion(x=qx, y=qy, z=qz, w=qw))
            for x, y, z, qx, qy, qz, qw in step
        ]
        point.time_from_start = duration_from_seconds(times[k])
        points.append(point)
    msg.points = points
    return msg


def read_cartesian_chunk(
    msg: MultiDOFJointTrajectory, frames: Sequence[str], frame_id: str | None = None
) -> ChunkResult:
    """A Cartesian chunk in the order of ``frames``.

    Args:
        msg: The message.
        frames: The profile's end-effector frames (``RobotProfile.end_effector_frames``).
        frame_id: When given, ``header.frame_id`` must equal it (the profile's base frame).

    Returns:
        ``(chunk (H, F, 7), times_s (H,), stamp_s, OK)`` or ``(None, None, stamp_s, HOLD_*)``:
        ``HOLD_WRONG_NAMES`` (frames or ``frame_id``), ``HOLD_WRONG_LENGTH`` (no points, a
        point without one transform per frame), ``HOLD_NON_FINITE``, ``HOLD_NON_MONOTONIC``
        (``time_from_start`` not strictly increasing).
    """
    stamp_s = to_seconds(msg.header.stamp)
    if frame_id is not None and msg.header.frame_id != frame_id:
        return None, None, stamp_s, Status.HOLD_WRONG_NAMES
    count = len(msg.joint_names)
    points = msg.points
    if any(len(p.transforms) != count for p in points):
        return None, None, stamp_s, Status.HOLD_WRONG_LENGTH
    # (F, H, 7): frames on the first axis, as map_by_name maps it.
    values = np.array(
        [[[t.translation.x, t.translation.y, t.translation.z,
           t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w]
          for t in (p.transforms[f] for p in points)] for f in range(count)],
        dtype=np.float64,
    ).reshape(count, len(points), 7)
    return _finish(msg.joint_names, values, frames, points, stamp_s, lambda v: v.swapaxes(0, 1))


def joint_chunk_to_msg(
    joint_names: Sequence[str],
    chunk: np.ndarray,
    times_s: np.ndarray,
    stamp: Time | float,
) -> JointTrajectory:
    """A ``JointTrajectory`` from a joint chunk (H, n) [rad or m]; see ``joint_trajectory``."""
    return joint_trajectory(joint_names, chunk, times_s, stamp)


def read_joint_chunk(msg: JointTrajectory, joint_names: Sequence[str]) -> ChunkResult:
    """A joint chunk in the order of ``joint_names`` (velocities, if any, are ignored).

    Returns:
        ``(chunk (H, n), times_s (H,), stamp_s, OK)`` or ``(None, None, stamp_s, HOLD_*)`` as
        ``read_cartesian_chunk``.
    """
    stamp_s = to_seconds(msg.header.stamp)
    count = len(msg.joint_names)
    points = msg.points
    if any(len(p.positions) != count for p in points):
        return None, None, stamp_s, Status.HOLD_WRONG_LENGTH
    values = np.array([np.asarray(p.positions, dtype=np.float64) for p in points],
                      dtype=np.float64).reshape(len(points), count)
    return _finish(msg.joint_names, values.T, joint_names, points, stamp_s, lambda v: v.T)


def _finish(names, values, expected, points, stamp_s, to_chunk) -> ChunkResult:
    mapped, status = map_by_name(names, values, expected)
    if mapped is None:
        return None, None, stamp_s, status
    if not points:
        return None, None, stamp_s, Status.HOLD_WRONG_LENGTH
    if not np.isfinite(mapped).all():
        return None, None, stamp_s, Status.HOLD_NON_FINITE
    times, status = _read_times(points)
    if times is None:
        return None, None, stamp_s, status
    return np.ascontiguousarray(to_chunk(mapped)), times, stamp_s, Status.OK


def gripper_chunk_to_msg(
    commands: np.ndarray, times_s: np.ndarray, stamp: Time | float
) -> JointTrajectory:
    """The gripper companion of a chunk: commands (H,) in [0, 1] (0 open) on ``hv2r/gripper``."""
    commands = np.asarray(commands, dtype=np.float64)
    return joint_trajectory([GRIPPER_JOINT], commands.reshape(-1, 1), times_s, stamp)


def read_gripper_chunk(msg: JointTrajectory) -> ChunkResult:
    """Gripper commands (H,) from ``hv2r/gripper``; statuses as ``read_joint_chunk``."""
    chunk, times, stamp_s, status = read_joint_chunk(msg, [GRIPPER_JOINT])
    return (None if chunk is None else chunk[:, 0]), times, stamp_s, status
