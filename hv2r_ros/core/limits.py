"""Limit containers shared by the robot profiles, the IK and the safety filters.

Arrays are float64, one entry per joint, in the profile's joint order (the only joint order).
Position limits stored here already include the profile's safety margin.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from hv2r_ros.core.errors import LimitsError


def _vector(name: str, values: Sequence[float], n: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.shape != (n,):
        raise LimitsError(f"expected {n} values, one per joint", field=name, value=list(array))
    if not np.all(np.isfinite(array)):
        raise LimitsError("every value must be finite", field=name, value=list(array))
    array.setflags(write=False)
    return array


@dataclasses.dataclass(frozen=True)
class JointLimits:
    """Per-joint limits of the commanded joints.

    Attributes:
        names: Joint names, the order of every array below.
        position_min: Lower position limits [rad or m], margin included, shape (n,).
        position_max: Upper position limits [rad or m], margin included, shape (n,).
        velocity_max: Speed limits [rad/s or m/s], > 0, shape (n,).
        acceleration_max: Acceleration limits [rad/s^2 or m/s^2], > 0, shape (n,).
        jerk_max: Jerk limits [rad/s^3 or m/s^3], > 0, shape (n,), or None where the robot
            publishes none.
    """

    names: tuple[str, ...]
    position_min: np.ndarray
    position_max: np.ndarray
    velocity_max: np.ndarray
    acceleration_max: np.ndarray
    jerk_max: np.ndarray | None = None

    def __post_init__(self) -> None:
        names = tuple(self.names)
        if len(set(names)) != len(names):
            raise LimitsError("joint names must be unique", field="names", value=names)
        object.__setattr__(self, "names", names)
        n = len(names)
        for field in ("position_min", "position_max", "velocity_max", "acceleration_max"):
            object.__setattr__(self, field, _vector(field, getattr(self, field), n))
        if self.jerk_max is not None:
            object.__setattr__(self, "jerk_max", _vector("jerk_max", self.jerk_max, n))
        bad = np.flatnonzero(self.position_min >= self.position_max)
        if bad.size:
            i = int(bad[0])
            raise LimitsError(
                "position_min must be below position_max",
                field=f"position[{names[i]}]",
                value=(float(self.position_min[i]), float(self.position_max[i])),
            )
        for field in ("velocity_max", "acceleration_max", "jerk_max"):
            array = getattr(self, field)
            if array is not None and np.any(array <= 0.0):
                i = int(np.flatnonzero(array <= 0.0)[0])
                raise LimitsError(
                    "limits must be positive (zero would switch the joint off)",
                    field=f"{field}[{names[i]}]",
                    value=float(array[i]),
                )

    @property
    def size(self) -> int:
        """Number of joints."""
        return len(self.names)


@dataclasses.dataclass(frozen=True)
class CartesianLimits:
    """Workspace box and tool speed limits of one or more end-effector frames.

    Attributes:
        frame: Frame the box is expressed in (the robot base frame).
        box_min: Lower corner of the workspace box [m], shape (3,).
        box_max: Upper corner of the workspace box [m], shape (3,).
        linear_speed_max: Tool linear speed limit [m/s], > 0.
        angular_speed_max: Tool angular speed limit [rad/s], > 0.
        linear_acceleration_max: Tool deceleration used to approach a goal [m/s^2], > 0, or
            None (no approach shaping: the tool arrives at full speed).
        angular_acceleration_max: Same for rotation [rad/s^2], or None.
    """

    frame: str
    box_min: np.ndarray
    box_max: np.ndarray
    linear_speed_max: float
    angular_speed_max: float
    linear_acceleration_max: float | None = None
    angular_acceleration_max: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "box_min", _vector("box_min_m", self.box_min, 3))
        object.__setattr__(self, "box_max", _vector("box_max_m", self.box_max, 3))
        if np.any(self.box_min >= self.box_max):
            raise LimitsError(
                "box_min_m must be below box_max_m on every axis",
                field="workspace",
                value=(list(self.box_min), list(self.box_max)),
            )
        for field in ("linear_speed_max", "angular_speed_max", "linear_acceleration_max",
                      "angular_acceleration_max"):
            if getattr(self, field) is None:
                continue
            value = float(getattr(self, field))
            if not np.isfinite(value) or value <= 0.0:
                raise LimitsError("must be a positive finite speed", field=field, value=value)
            object.__setattr__(self, field, value)
