"""Pick-and-place plans of the scripted expert: tool waypoints with minimum-jerk timing.

``plan_pick_place`` turns the tool pose, the target cube's pose and the target pad into tool
waypoints: above the cube, down to it, close, lift, carry above the pad, down, open, lift. Each
segment follows a minimum-jerk profile whose duration keeps its peak speed and acceleration at
``SPEED_FRACTION`` of the profile's tool limits (a minimum-jerk move of length D in T seconds
peaks at 1.875 D / T and 5.77 D / T^2), so the Cartesian filter has no reason to scale the
plan itself. The tool keeps the home orientation (pointing down), turned about the vertical to
square the gripper with the cube (a cube is the same every 90 degrees, so the turn is at most
45 degrees).

``ExpertPlan.targets(t)`` gives the absolute tool pose and gripper command at time t;
``expert_chunk`` gives the policy contract's ``ee_delta`` chunk for an observation (rows relative
to the tool pose at the observation, see ``hv2r_ros.core.observation``), so recorded episodes are
behaviour-cloning data. ``hv2r_ros.sim.expert`` runs plans in the simulated world.

Poses are ``[x, y, z, qx, qy, qz, qw]`` in the robot base frame [m], as in the core.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from hv2r_ros.core.limits import CartesianLimits
from hv2r_ros.core.observation import rotvec_to_quat
from hv2r_ros.core.safety.cartesian import quat_conjugate, quat_multiply

#: Peak speed and acceleration of a minimum-jerk segment per unit distance and duration.
MJ_PEAK_SPEED = 1.875
MJ_PEAK_ACCELERATION = 10.0 / math.sqrt(3.0)
#: Share of the tool speed / acceleration limits the expert plans with.
SPEED_FRACTION = 0.9
PHASES = ("approach", "descend", "grasp", "lift", "carry", "lower", "release", "retreat")


def minimum_jerk(s: np.ndarray | float) -> np.ndarray | float:
    """Minimum-jerk progress 10 s^3 - 15 s^4 + 6 s^5 of normalised time ``s`` (clipped to
    [0, 1]); zero velocity and acceleration at both ends."""
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10.0 + s * (-15.0 + 6.0 * s))


def minimum_jerk_duration(distance: float, speed_max: float, acceleration_max: float | None,
                          minimum_s: float = 0.0) -> float:
    """Shortest duration [s] of a minimum-jerk move of ``distance`` whose peak speed and
    acceleration stay within ``speed_max`` and ``acceleration_max`` (units of distance / s)."""
    duration = MJ_PEAK_SPEED * distance / speed_max
    if acceleration_max:
        duration = max(duration, math.sqrt(MJ_PEAK_ACCELERATION * distance / acceleration_max))
    return max(duration, minimum_s)


def quat_to_rotvec(quat: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) (x, y, z, w) -> rotation vectors (..., 3) [rad], angle <= pi."""
    quat = np.asarray(quat, dtype=np.float64)
    quat = np.where(quat[..., 3:] < 0.0, -quat, quat)
    sin_half = np.linalg.norm(quat[..., :3], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, quat[..., 3:])
    small = sin_half < 1e-9
    scale = np.where(small, 2.0, angle / np.where(small, 1.0, sin_half))
    return quat[..., :3] * scale


def yaw_quat(yaw_rad: float) -> np.ndarray:
    """Rotation about the base z axis, (x, y, z, w)."""
    return np.array([0.0, 0.0, math.sin(0.5 * yaw_rad), math.cos(0.5 * yaw_rad)])


def square_yaw(yaw_rad: float) -> float:
    """The cube yaw equivalent to ``yaw_rad`` nearest to 0: in [-pi/4, pi/4] [rad]."""
    return (yaw_rad + math.pi / 4.0) % (math.pi / 2.0) - math.pi / 4.0


@dataclasses.dataclass(frozen=True)
class ExpertPlan:
    """Tool waypoints with minimum-jerk segments between them.

    Attributes:
        times_s: Knot times (K,) [s], from 0, increasing.
        poses: Tool pose at each knot (K, 7) ``[x y z qx qy qz qw]``.
        gripper: Gripper command during each segment (K - 1,) in [0, 1] (1 closed).
        phases: Phase name of each segment (K - 1,), from ``PHASES``.
    """

    times_s: np.ndarray
    poses: np.ndarray
    gripper: np.ndarray
    phases: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        """Time of the last knot [s]."""
        return float(self.times_s[-1])

    def segment(self, t_s: float) -> int:
        """Index of the segment running at ``t_s`` (the last one after the end)."""
        return int(np.clip(np.searchsorted(self.times_s, t_s, side="right") - 1, 0,
                           len(self.phases) - 1))

    def phase(self, t_s: float) -> str:
        """Phase name at ``t_s`` [s]."""
        return self.phases[self.segment(t_s)]

    def targets(self, t_s: float) -> tuple[np.ndarray, float]:
        """Absolute tool pose (7,) and gripper command in [0, 1] at ``t_s`` [s]."""
        k = self.segment(t_s)
        t0, t1 = self.times_s[k], self.times_s[k + 1]
        s = float(minimum_jerk((t_s - t0) / (t1 - t0))) if t1 > t0 else 1.0
        a, b = self.poses[k], self.poses[k + 1]
        pose = np.empty(7)
        pose[:3] = a[:3] + s * (b[:3] - a[:3])
        turn = quat_to_rotvec(quat_multiply(b[3:], quat_conjugate(a[3:])))
        pose[3:] = quat_multiply(rotvec_to_quat(s * turn), a[3:])
        return pose, float(self.gripper[k])


@dataclasses.dataclass(frozen=True)
class PlanSettings:
    """Heights and pauses of the pick-and-place plan.

    Heights are capped by the reach of small arms: no waypoint goes above the home pose's
    grasp point, and the approach height is at most 80 % of the way up to it.

    Attributes:
        approach_height_m: Height of the pre-grasp and pre-place poses above the grasp [m].
        carry_height_m: Height of the grasp point during the carry above the table [m].
        place_drop_m: The cube is released this far above its resting height [m].
        close_s: Pause while the gripper closes [s].
        open_s: Pause while the gripper opens [s].
        minimum_segment_s: Shortest move [s].
        return_home: End at the reference (home) pose, out of the overhead camera's way, so
            the last frames show the result as a human demo's last frames do.
    """

    approach_height_m: float = 0.10
    carry_height_m: float = 0.16
    place_drop_m: float = 0.004
    close_s: float = 0.6
    open_s: float = 0.5
    minimum_segment_s: float = 0.4
    return_home: bool = True


def plan_pick_place(start_pose: np.ndarray, object_position_m: np.ndarray,
                    object_yaw_rad: float, place_position_m: np.ndarray,
                    limits: CartesianLimits, settings: PlanSettings = PlanSettings(),
                    *, reference_pose: np.ndarray | None = None, grasped: bool = False,
                    grasp_offset_m: np.ndarray | None = None,
                    closing_axis: np.ndarray | None = None, turn_with_base: bool = False,
                    return_pose: np.ndarray | None = None) -> ExpertPlan:
    """Waypoints that move a cube from its pose to a place position.

    Args:
        start_pose: Current tool pose (7,).
        object_position_m: Cube centre (3,) [m] in the base frame: the grasp point.
        object_yaw_rad: Cube yaw about the vertical [rad].
        place_position_m: Where the cube's centre should come to rest (3,) [m].
        limits: The profile's workspace (tool speed and acceleration limits, box).
        settings: Heights and pauses.
        reference_pose: The tool-down pose (7,) (the home pose); ``start_pose`` by default.
        grasped: The cube is already in the gripper: start with the carry.
        grasp_offset_m: Grasp point in the tool frame (3,) [m] (zero: the tool frame is
            between the fingertips); waypoints put the grasp point, not the tool, on the cube.
        closing_axis: Direction the fingers close along, in the tool frame (3,); the tool
            turns about the vertical to square it with the cube's faces. None: the x axis.
        turn_with_base: The tool's yaw follows the direction of the grasp point from the base
            axis instead (arms with fewer than six joints cannot hold one orientation across
            the table; the cube is not squared then).
        return_pose: Where the tool goes at the end; by default it stays above the place.

    Returns:
        The plan; every waypoint's tool position is inside the workspace box.
    """
    start = np.asarray(start_pose, dtype=np.float64)
    reference = start if reference_pose is None else np.asarray(reference_pose, float)
    offset = np.zeros(3) if grasp_offset_m is None else np.asarray(grasp_offset_m, float)
    grasp = np.asarray(object_position_m, dtype=np.float64)
    place = np.asarray(place_position_m, dtype=np.float64) + [0.0, 0.0, settings.place_drop_m]
    # A small arm's reach ends not far above its home pose: no waypoint goes higher.
    home = reference[:3] + _rotate(reference[3:], offset)
    approach = min(settings.approach_height_m, 0.8 * (home[2] - max(grasp[2], place[2])))
    carry_z = min(max(settings.carry_height_m, grasp[2] + approach, place[2] + approach),
                  max(home[2], grasp[2] + approach, place[2] + approach))
    if turn_with_base:
        home_yaw = math.atan2(home[1], home[0])
    else:
        axis = _rotate(reference[3:], np.array([1.0, 0.0, 0.0]) if closing_axis is None
                       else np.asarray(closing_axis, float))
        turn = square_yaw(object_yaw_rad - math.atan2(axis[1], axis[0]))
        squared = quat_multiply(yaw_quat(turn), reference[3:])

    def at(position, z=None, keep=None):
        """Tool pose putting the grasp point at ``position`` (height ``z``)."""
        xyz = np.array(position, dtype=np.float64)
        xyz[2] = xyz[2] if z is None else z
        if keep is not None:  # holding the cube: it turns with the tool, so keep turning
            quat = keep
        elif turn_with_base:
            quat = quat_multiply(yaw_quat(math.atan2(xyz[1], xyz[0]) - home_yaw), reference[3:])
        else:
            quat = squared
        tool = np.clip(xyz - _rotate(quat, offset), limits.box_min, limits.box_max)
        return np.concatenate([tool, quat])

    knots = [(start, None, None)]
    if grasped:
        hold = None if turn_with_base else start[3:]
        knots += [(at(start[:3] + _rotate(start[3:], offset), carry_z, hold), 1.0, "lift")]
    else:
        knots += [(at(grasp, grasp[2] + approach), 0.0, "approach"),
                  (at(grasp), 0.0, "descend"), (at(grasp), 1.0, "grasp"),
                  (at(grasp, carry_z), 1.0, "lift")]
    hold = None if turn_with_base else knots[-1][0][3:]
    knots += [(at(place, carry_z, hold), 1.0, "carry"), (at(place, None, hold), 1.0, "lower"),
              (at(place, None, hold), 0.0, "release"), (at(place, carry_z, hold), 0.0, "retreat")]
    if return_pose is not None:
        knots.append((np.asarray(return_pose, dtype=np.float64), 0.0, "retreat"))
    pauses = {"grasp": settings.close_s, "release": settings.open_s}
    times, poses, gripper, phases = [0.0], [knots[0][0]], [], []
    for pose, command, phase in knots[1:]:
        duration = pauses.get(phase) or _move_s(poses[-1], pose, limits,
                                                settings.minimum_segment_s)
        times.append(times[-1] + duration)
        poses.append(pose)
        gripper.append(command)
        phases.append(phase)
    return ExpertPlan(np.array(times), np.array(poses), np.array(gripper), tuple(phases))


def _rotate(quat: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``vector`` (3,) rotated by the unit quaternion ``quat`` (x, y, z, w)."""
    return quat_multiply(quat_multiply(quat, np.array([*vector, 0.0])), quat_conjugate(quat))[:3]


def _move_s(a: np.ndarray, b: np.ndarray, limits: CartesianLimits, minimum_s: float) -> float:
    """Duration [s] of a minimum-jerk move between poses within the tool limits."""
    angle = float(np.linalg.norm(quat_to_rotvec(quat_multiply(b[3:], quat_conjugate(a[3:])))))
    linear = minimum_jerk_duration(float(np.linalg.norm(b[:3] - a[:3])),
                                   SPEED_FRACTION * limits.linear_speed_max,
                                   _scaled(limits.linear_acceleration_max), minimum_s)
    angular = minimum_jerk_duration(angle, SPEED_FRACTION * limits.angular_speed_max,
                                    _scaled(limits.angular_acceleration_max), minimum_s)
    return max(linear, angular)


def _scaled(value: float | None) -> float | None:
    return None if value is None else SPEED_FRACTION * value


def expert_chunk(plan: ExpertPlan, t_obs_s: float, tool_pose_obs: np.ndarray, horizon: int,
                 control_rate_hz: float) -> np.ndarray:
    """The expert's action chunk in the policy contract's ``ee_delta`` form with a gripper.

    Args:
        plan: The plan being executed.
        t_obs_s: Plan time of the observation [s].
        tool_pose_obs: Measured tool pose (7,) at the observation.
        horizon: Chunk length H.
        control_rate_hz: The policy's control rate [Hz]: row i is meant for
            ``t_obs_s + (i + 1) / control_rate_hz``.

    Returns:
        (H, 7): ``[dx dy dz rx ry rz gripper]`` per row, translation [m] and rotation vector
        [rad] in the base frame relative to ``tool_pose_obs`` (not cumulative), gripper in
        [0, 1]. ``chunk_to_targets`` turns it back into the plan's absolute poses.
    """
    obs = np.asarray(tool_pose_obs, dtype=np.float64)
    rows = np.empty((horizon, 7))
    for i in range(horizon):
        pose, gripper = plan.targets(t_obs_s + (i + 1) / control_rate_hz)
        rows[i, :3] = pose[:3] - obs[:3]
        rows[i, 3:6] = quat_to_rotvec(quat_multiply(pose[3:], quat_conjugate(obs[3:])))
        rows[i, 6] = gripper
    return rows
