"""Kinematic grasping: the gripper's closure and the cubes it picks up, by rule.

There are no contacts. The drawn gripper closes (command >= 0.5) or opens (< 0.5) at a
constant rate. While it closes, when the fingers reach the width of the cube nearest the grasp
point and that cube's centre is within the grasp radius of the grasp point, the cube attaches
rigidly to the end effector and the fingers stop on it; fingers that close on nothing close
fully, and fingers that are already closed grasp nothing. When the fingers open past the cube
it is released and settles on the table at its table-plane position: upright, its centre half
its size above z = 0, its yaw kept (it never lands on another cube).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pinocchio as pin

from hv2r_ros.sim.layout import TaskLayout


def _upright(yaw_rad: float, xy: np.ndarray, size_m: float) -> pin.SE3:
    """Pose of a cube resting on the table: rotated about z only, centre at half its size."""
    return pin.SE3(pin.exp3(np.array([0.0, 0.0, yaw_rad])), np.array([*xy, 0.5 * size_m]))


class KinematicGripper:
    """Closure of the drawn gripper and the poses of the layout's cubes.

    Args:
        open_width_m: Opening between the fingers when fully open [m].
        grasp_radius_m: Largest grasp-point-to-cube-centre distance that grasps [m].
        stroke_s: Time to go fully open <-> fully closed [s].
    """

    def __init__(self, open_width_m: float, grasp_radius_m: float, stroke_s: float) -> None:
        self.open_width_m = float(open_width_m)
        self.grasp_radius_m = float(grasp_radius_m)
        self.stroke_s = float(stroke_s)

    def reset(self, layout: TaskLayout) -> None:
        """Open, holding nothing, the cubes where ``layout`` puts them."""
        self.layout = layout
        self.command = 0.0
        self.closure = 0.0
        self.grasped: str | None = None
        self._in_hand = pin.SE3.Identity()
        self.objects = {o.name: _upright(o.yaw_rad, np.array(o.position_m[:2]), o.size_m)
                        for o in layout.objects}

    def set_command(self, value: object) -> str:
        """Take a command in [0, 1]; returns '' or why it was refused (the old one stays)."""
        number = math.nan
        if np.size(value) == 1:
            try:
                number = float(np.asarray(value, dtype=np.float64).reshape(-1)[0])
            except (TypeError, ValueError):
                pass
        if not (math.isfinite(number) and 0.0 <= number <= 1.0):
            return f"gripper command {value!r} not in [0, 1]"
        self.command = number
        return ""

    def contact_closure(self, name: str) -> float:
        """Closure in [0, 1] at which the fingers touch cube ``name``."""
        size = self.layout.object(name).size_m
        return float(np.clip(1.0 - size / self.open_width_m, 0.0, 1.0))

    def step(self, dt_s: float, ee_pose: Callable[[], pin.SE3],
             grasp_point: Callable[[], np.ndarray]) -> None:
        """Move the fingers for ``dt_s`` [s]; grasp or release by the rules above.

        Args:
            dt_s: Time step [s].
            ee_pose: The end-effector pose now (called only when a cube attaches).
            grasp_point: The grasp point [m] in the base frame now (called while closing).
        """
        closing = self.command >= 0.5
        rate = dt_s / self.stroke_s
        previous = self.closure
        self.closure = min(1.0, previous + rate) if closing else max(0.0, previous - rate)
        if self.grasped is not None:
            contact = self.contact_closure(self.grasped)
            if closing:
                self.closure = min(self.closure, contact)
            elif self.closure < contact - 1e-9:
                self._release()
            return
        if not closing or self.closure == previous:
            return
        point = grasp_point()
        best, best_distance = None, self.grasp_radius_m
        for name, pose in self.objects.items():
            distance = float(np.linalg.norm(pose.translation - point))
            if distance <= best_distance and self.layout.object(name).size_m < self.open_width_m:
                best, best_distance = name, distance
        if best is not None and previous <= self.contact_closure(best) <= self.closure:
            self.grasped = best
            self._in_hand = ee_pose().inverse() * self.objects[best]
            self.closure = self.contact_closure(best)

    def carry(self, ee_pose: pin.SE3) -> None:
        """Move the grasped cube (if any) with the end effector at ``ee_pose``."""
        if self.grasped is not None:
            self.objects[self.grasped] = ee_pose * self._in_hand

    def _release(self) -> None:
        name, self.grasped = self.grasped, None
        pose = self.objects[name]
        yaw = math.atan2(pose.rotation[1, 0], pose.rotation[0, 0])
        self.objects[name] = _upright(yaw, pose.translation[:2], self.layout.object(name).size_m)
