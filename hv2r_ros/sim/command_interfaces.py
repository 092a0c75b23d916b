"""What the simulated robot's controllers do with commands, as ros2_control's would. No ROS here.

- ``joint_trajectory_controller``: a trajectory (points with ``time_from_start`` after the
  header stamp; a zero stamp means "now") replaces the one being executed. The target moves
  linearly in time from the current target, at receipt, to the first point still ahead, then
  from point to point, and stays on the last point (a position-only JointTrajectoryController
  interpolates linearly too). Points already in the past are skipped; a stamped trajectory
  whose last point is already past is refused, as the JointTrajectoryController refuses it
  ("ends in the past").
- ``forward_position_controller``: an array of one position per joint, in the controller's
  joint order (the profile's), becomes the target at once.
- The gripper: a trajectory of the one joint ``gripper`` with commands in [0, 1] (0 open),
  executed in time like the arm's.

A command that is not finite, has the wrong length or puts any point outside the robot's hard
position range is refused as a whole: the target being executed stays and nothing moves toward
the refused one. ``refusals`` counts refusals by kind (``trajectory``, ``forward``, ``gripper``,
and ``late`` for a trajectory that ended before it arrived); ``last_refusal`` says why.
``SimWorld`` checks every target again (it never sees a refused one).
"""

from __future__ import annotations

import collections

import numpy as np

from hv2r_ros.core.errors import ConfigError

__all__ = ["CommandInterface", "TimedTrajectory", "range_refusal"]

_TOLERANCE = 1e-9  # float noise of a target computed exactly at a limit


def range_refusal(positions: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                  names: tuple[str, ...]) -> str:
    """Why ``positions`` (H, n) cannot be commanded ('' when it can): non-finite or out of range.

    Args:
        positions: Targets [rad or m], shape (H, n), profile order.
        lower: Lowest valid target per joint, shape (n,).
        upper: Highest valid target per joint, shape (n,).
        names: Joint names, for the message.
    """
    bad = ~np.isfinite(positions)
    if bad.any():
        k, j = map(int, np.argwhere(bad)[0])
        return f"non-finite target for {names[j]} (point {k})"
    outside = (positions < lower - _TOLERANCE) | (positions > upper + _TOLERANCE)
    if outside.any():
        k, j = map(int, np.argwhere(outside)[0])
        return (f"target {positions[k, j]:.4f} for {names[j]} (point {k}) outside "
                f"[{lower[j]:.4f}, {upper[j]:.4f}]")
    return ""


def _ended(times_s: np.ndarray, start_s: float, now_s: float) -> str:
    """Why a stamped trajectory is refused for ending before ``now_s`` ('' when it is not)."""
    late_s = now_s - start_s - float(times_s[-1])
    return f"trajectory ended {late_s * 1e3:.1f} ms ago" if start_s != 0.0 and late_s > 0.0 \
        else ""


class TimedTrajectory:
    """A target that follows time-stamped points, linearly in time.

    Args:
        initial: The target before any trajectory [rad, m or gripper command], shape (n,).
    """

    def __init__(self, initial: np.ndarray) -> None:
        self.reset(initial)

    def reset(self, target: np.ndarray) -> None:
        """Stand on ``target`` (n,) with no trajectory."""
        target = np.array(target, dtype=np.float64).reshape(-1)
        self._times = np.array([-np.inf])
        self._points = target[None, :]

    def start(self, positions: np.ndarray, times_s: np.ndarray, start_s: float,
              now_s: float) -> None:
        """Execute a new trajectory from now.

        Args:
            positions: Points, shape (H, n).
            times_s: ``time_from_start`` of each point [s], shape (H,), strictly increasing.
            start_s: The trajectory's start (header stamp) [s]; 0: ``now_s``.
            now_s: Receipt time on the same clock [s].
        """
        start_s = now_s if start_s == 0.0 else start_s
        due = start_s + np.asarray(times_s, dtype=np.float64)
        ahead = due > now_s
        if not ahead.any():  # every point is past: go to the last one
            self.reset(positions[-1])
            return
        current = self.sample(now_s)
        self._times = np.concatenate([[now_s], due[ahead]])
        self._points = np.vstack([current, np.asarray(positions, dtype=np.float64)[ahead]])

    def sample(self, now_s: float) -> np.ndarray:
        """The target at ``now_s`` [s], shape (n,)."""
        times, points = self._times, self._points
        if now_s >= times[-1]:
            return points[-1].copy()
        if now_s <= times[0]:
            return points[0].copy()
        k = int(np.searchsorted(times, now_s, side="right")) - 1
        s = (now_s - times[k]) / (times[k + 1] - times[k])
        return points[k] + s * (points[k + 1] - points[k])


class CommandInterface:
    """The arm's controller (trajectory or forward position) and the gripper's, for one robot.

    Args:
        kind: ``joint_trajectory_controller`` or ``forward_position_controller``.
        joint_names: The profile's joints (the controllers' order).
        lower: Hard lower position limits, shape (n,) (``ControllerLimits.position_min``).
        upper: Hard upper position limits, shape (n,).
        initial: Starting target, shape (n,).
        file: The robot profile, for the error message.

    Raises:
        ConfigError: ``kind`` is neither controller.
    """

    KINDS = ("joint_trajectory_controller", "forward_position_controller")

    def __init__(self, kind: str, joint_names, lower: np.ndarray, upper: np.ndarray,
                 initial: np.ndarray, *, file: str | None = None) -> None:
        if kind not in self.KINDS:
            raise ConfigError("the simulated robot has no such controller", file=file,
                              field="command_interface.type", value=kind, choices=self.KINDS)
        self.kind, self.joint_names = kind, tuple(joint_names)
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        self.arm = TimedTrajectory(initial)
        self.gripper = TimedTrajectory(np.zeros(1))
        self.accepted = 0
        self.refusals: collections.Counter[str] = collections.Counter()
        self.last_refusal = ""

    def reset(self, q: np.ndarray) -> None:
        """Stand on ``q`` (n,) with the gripper open; counters are kept."""
        self.arm.reset(q)
        self.gripper.reset(np.zeros(1))

    def _refuse(self, kind: str, reason: str) -> str:
        self.refusals[kind] += 1
        self.last_refusal = reason
        return reason

    def trajectory(self, positions: np.ndarray | None, times_s: np.ndarray | None,
                   start_s: float, now_s: float, problem: str = "") -> str:
        """A JointTrajectory's points (H, n) in profile order; '' when accepted, else why not.

        Args:
            positions: Points mapped by name into profile order, or None when the message was
                already invalid (``problem`` says why).
            times_s: ``time_from_start`` [s], shape (H,).
            start_s: Header stamp [s] (0: now); now_s: receipt time [s].
            problem: The reader's reason for an invalid message.
        """
        if positions is None:
            return self._refuse("trajectory", problem or "invalid trajectory")
        reason = range_refusal(positions, self.lower, self.upper, self.joint_names)
        if reason:
            return self._refuse("trajectory", reason)
        reason = _ended(times_s, start_s, now_s)
        if reason:
            return self._refuse("late", reason)
        self.arm.start(positions, times_s, start_s, now_s)
        self.accepted += 1
        return ""

    def forward(self, values: np.ndarray) -> str:
        """A forward position command (n,) in profile order; '' when accepted, else why not."""
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape != (len(self.joint_names),):
            return self._refuse("forward", f"{values.size} values, the controller has "
                                           f"{len(self.joint_names)} joints")
        reason = range_refusal(values[None, :], self.lower, self.upper, self.joint_names)
        if reason:
            return self._refuse("forward", reason)
        self.arm.reset(values)
        self.accepted += 1
        return ""

    def gripper_trajectory(self, commands: np.ndarray | None, times_s: np.ndarray | None,
                           start_s: float, now_s: float, problem: str = "") -> str:
        """Gripper commands (H,) in [0, 1]; '' when accepted, else why not."""
        if commands is None:
            return self._refuse("gripper", problem or "invalid gripper trajectory")
        reason = range_refusal(np.asarray(commands, float).reshape(-1, 1), np.zeros(1),
                               np.ones(1), ("gripper",))
        if reason:
            return self._refuse("gripper", reason)
        reason = _ended(times_s, start_s, now_s)
        if reason:
            return self._refuse("late", reason)
        self.gripper.start(np.asarray(commands, float).reshape(-1, 1), times_s, start_s, now_s)
        return ""

    def targets(self, now_s: float) -> tuple[np.ndarray, float]:
        """Arm target (n,) and gripper command in [0, 1] at ``now_s`` [s]."""
        return self.arm.sample(now_s), float(self.gripper.sample(now_s)[0])
