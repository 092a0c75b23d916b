"""Joint messages <-> numpy, always mapped by joint name into the profile's order.

- ``JointStateReader`` reads ``sensor_msgs/JointState`` into profile order. Joints the profile
  does not command (fingers, a mobile base, the legs of a humanoid) are ignored. The name ->
  index map is computed once per distinct name tuple, so the hot path is one fancy index.
- ``joint_trajectory`` builds the ``JointTrajectory`` a JointTrajectoryController reads on
  ``<controller>/joint_trajectory``; ``float64_multi_array`` the ``Float64MultiArray`` a forward
  position controller reads on ``<controller>/commands`` (it carries no names, so
  ``check_controller_joint_order`` must hold at start-up).
"""

from __future__ import annotations

import array
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.status import Status
from hv2r_ros.ros.stamps import duration_from_seconds, from_seconds

__all__ = [
    "JointStateReader", "check_controller_joint_order", "float64_array", "float64_multi_array",
    "joint_trajectory",
]

_CACHE_SIZE = 8  # distinct name tuples remembered; a robot sends one, a bridge maybe two


def float64_array(values: np.ndarray) -> array.array:
    """``array.array('d')`` of ``values`` (flattened): the type rclpy stores ``float64[]`` in.

    Assigning it to a message field skips the per-element checks a list or ndarray gets.
    """
    out = array.array("d")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float64).reshape(-1).view(np.uint8))
    return out


class JointStateReader:
    """Reads ``JointState`` messages into the profile's joint order.

    Args:
        joint_names: The profile's joint names (``RobotProfile.joint_names``), the only order.

    Raises:
        ConfigError: ``joint_names`` is empty or has duplicates.
    """

    def __init__(self, joint_names: Sequence[str]) -> None:
        self.joint_names = tuple(joint_names)
        if not self.joint_names or len(set(self.joint_names)) != len(self.joint_names):
            raise ConfigError("joint names must be non-empty and unique", field="joint_names",
                              value=self.joint_names)
        self._cache: dict[tuple[str, ...], np.ndarray | None] = {}

    def _index(self, names: tuple[str, ...]) -> np.ndarray | None:
        if names in self._cache:
            return self._cache[names]
        index: np.ndarray | None = None
        if len(set(names)) == len(names):
            where = {name: i for i, name in enumerate(names)}
            if all(name in where for name in self.joint_names):
                index = np.array([where[name] for name in self.joint_names], dtype=np.intp)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[names] = index
        return index

    def read(self, msg: JointState) -> tuple[np.ndarray | None, np.ndarray | None, Status]:
        """Positions and velocities of the profile's joints.

        Args:
            msg: A joint state; ``position`` must have one entry per name, ``velocity`` one
                per name or none.

        Returns:
            ``(positions [rad or m] (n,), velocities [rad/s or m/s] (n,) or None, OK)``, or
            ``(None, None, HOLD_WRONG_NAMES)`` (a profile joint missing, duplicate names),
            ``HOLD_WRONG_LENGTH`` (arrays not matching the names) or
            ``HOLD_INVALID_MEASUREMENT`` (a NaN or inf in a profile joint's position or
            velocity; values of other joints are not looked at).
        """
        names = msg.name
        index = self._index(names if isinstance(names, tuple) else tuple(names))
        if index is None:
            return None, None, Status.HOLD_WRONG_NAMES
        count = len(names)
        position = np.asarray(msg.position, dtype=np.float64)
        velocity = np.asarray(msg.velocity, dtype=np.float64)
        if position.shape != (count,) or velocity.shape not in ((count,), (0,)):
            return None, None, Status.HOLD_WRONG_LENGTH
        positions = position[index]
        velocities = velocity[index] if velocity.size else None
        if not np.isfinite(positions).all() or (
                velocities is not None and not np.isfinite(velocities).all()):
            return None, None, Status.HOLD_INVALID_MEASUREMENT
        return positions, velocities, Status.OK


def joint_trajectory(
    names: Sequence[str],
    positions: np.ndarray,
    times_s: np.ndarray,
    stamp: Time | float,
    velocities: np.ndarray | None = None,
    frame_id: str = "",
) -> JointTrajectory:
    """A ``JointTrajectory`` with one point per row.

    Args:
        names: Joint names, one per column.
        positions: Shape (H, n) [rad or m].
        times_s: ``time_from_start`` of each point [s], shape (H,), strictly increasing, >= 0.
        stamp: ``header.stamp``, a ``Time`` or seconds [s]. Zero means "start now" to a
            JointTrajectoryController; hv2r stamps the capture time of the observation.
        velocities: Optional, shape (H, n) [rad/s or m/s].
        frame_id: ``header.frame_id``.

    Raises:
        ValueError: Shapes that disagree, non-finite values, or times not strictly increasing
            (a programming error: validated commands never look like that).
    """
    names = list(names)
    positions = np.asarray(positions, dtype=np.float64)
    times = np.asarray(times_s, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != len(names) or positions.shape[0] == 0:
        raise ValueError(f"positions must be (H >= 1, {len(names)}), got {positions.shape}")
    if times.shape != (positions.shape[0],):
        raise ValueError(f"times_s must be ({positions.shape[0]},), got {times.shape}")
    if not np.isfinite(times).all() or times[0] < 0.0 or (np.diff(times) <= 0.0).any():
        raise ValueError(f"times_s must be finite, >= 0 and strictly increasing, got {times}")
    if not np.isfinite(positions).all():
        raise ValueError("positions contain NaN or inf")
    if velocities is not None:
        velocities = np.asarray(velocities, dtype=np.float64)
        if velocities.shape != positions.shape or not np.isfinite(velocities).all():
            raise ValueError(f"velocities must be finite with shape {positions.shape}, "
                             f"got {velocities.shape}")
    msg = JointTrajectory()
    msg.header.stamp = stamp if isinstance(stamp, Time) else from_seconds(stamp)
    msg.header.frame_id = frame_id
    msg.joint_names = names
    points = []
    for k in range(positions.shape[0]):
        point = JointTrajectoryPoint()
        point.positions = float64_array(positions[k])
        if velocities is not None:
            point.velocities = float64_array(velocities[k])
        point.time_from_start = duration_from_seconds(times[k])
        points.append(point)
    msg.points = points
    return msg


def float64_multi_array(
    positions: np.ndarray, out: Float64MultiArray | None = None
) -> Float64MultiArray:
    """The forward position controller's command: one dim, label ``joints``, size n.

    Args:
        positions: Shape (n,) [rad or m], in the controller's ``joints`` order (= the profile's
            order, see ``check_controller_joint_order``).
        out: A message to refill instead of allocating one.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1)
    msg = Float64MultiArray() if out is None else out
    size = int(positions.shape[0])
    if len(msg.layout.dim) != 1 or msg.layout.dim[0].size != size:
        msg.layout.dim = [MultiArrayDimension(label="joints", size=size, stride=size)]
        msg.layout.data_offset = 0
    msg.data = float64_array(positions)
    return msg


def check_controller_joint_order(
    profile_names: Sequence[str],
    controller_joint_names: Sequence[str],
    parameter: str = "joints",
    file: str | None = None,
) -> None:
    """Require a name-less controller (forward position) to use exactly the profile's order.

    Args:
        profile_names: ``RobotProfile.joint_names``.
        controller_joint_names: The controller's ``joints`` parameter.
        parameter: The controller parameter's name, for the message.
        file: The controller's parameter file, for the message.

    Raises:
        ConfigError: The lists differ in content or order.
    """
    profile, controller = tuple(profile_names), tuple(controller_joint_names)
    if profile == controller:
        return
    extra, missing = set(controller) - set(profile), set(profile) - set(controller)
    if extra or missing:
        problem = f"has joints the profile lacks {sorted(extra)} and lacks {sorted(missing)}"
    elif len(profile) != len(controller):
        problem = "repeats joints"
    else:
        problem = "lists the profile's joints in another order; a Float64MultiArray carries " \
                  "no names, so every command would go to the wrong joint"
    raise ConfigError(f"the controller's joint list {problem}; it must be exactly the "
                      "profile's joint_names in order", file=file, field=parameter,
                      value=list(controller), choices=list(profile))
