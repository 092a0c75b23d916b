"""The simulated robot's task and ground truth as JSON text (``std_msgs/String`` payloads).

No ROS here: the sim node publishes these strings, the expert node and evaluators read them.

``sim/task`` (latched, one per episode)::

    {"robot": "panda", "episode": 0, "base_frame": "panda_link0",
     "layout": {"objects": [...], "pads": [...], "target_object": "red_cube",
                "target_pad": "white_pad", "appearance": {...}, "seed": 7},
     "mount": {"grasp_offset_m": [x, y, z], "closing_axis": [x, y, z]}}

``layout`` is ``dataclasses.asdict`` of the ``TaskLayout`` (positions [m] in the base frame,
yaw [rad], colours RGBA in [0, 1]); ``mount`` says where the simulated gripper grasps, in the
end-effector frame.

``sim/ground_truth`` (at the sim's ground-truth rate)::

    {"episode": 0, "stamp_s": 1718000000.12, "time_s": 3.2, "success": false,
     "reason": "red_cube is 0.310 m from white_pad (> 0.05 m)", "grasped": null,
     "target_distance_m": 0.31, "object_poses": {"red_cube": [x, y, z, qw, qx, qy, qz]}}

``stamp_s`` is the node-clock time of the state [s]; ``time_s`` the simulated time since the
episode's reset [s]; object poses are MuJoCo's (x, y, z [m], scalar-first quaternion).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from hv2r_ros.sim.layout import Appearance, SceneObject, TargetPad, TaskLayout
from hv2r_ros.sim.world import GroundTruth

__all__ = ["SimTask", "TruthSample", "ground_truth_from_json", "ground_truth_to_json",
           "task_from_json", "task_to_json"]


@dataclasses.dataclass(frozen=True, eq=False)
class SimTask:
    """One episode's task as the sim announces it.

    Attributes:
        robot: Robot profile name the sim runs.
        episode: Episode index since the node started (0, 1, ...).
        base_frame: Frame of every position.
        layout: Cubes, pads and the goal pair.
        grasp_offset_m: Grasp point in the end-effector frame [m], shape (3,).
        closing_axis: Direction the fingers close along, end-effector frame, shape (3,).
    """

    robot: str
    episode: int
    base_frame: str
    layout: TaskLayout
    grasp_offset_m: np.ndarray
    closing_axis: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class TruthSample:
    """A ground-truth message: the state, when it held, and which episode it belongs to."""

    episode: int
    stamp_s: float
    truth: GroundTruth


def _vector(value, length: int, field: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (length,) or not np.isfinite(array).all():
        raise ValueError(f"{field} must be {length} finite numbers, got {value!r}")
    return array


def task_to_json(robot: str, episode: int, base_frame: str, layout: TaskLayout,
                 grasp_offset_m: np.ndarray, closing_axis: np.ndarray) -> str:
    """The ``sim/task`` text of an episode (module docstring)."""
    return json.dumps({
        "robot": robot, "episode": int(episode), "base_frame": base_frame,
        "layout": dataclasses.asdict(layout),
        "mount": {"grasp_offset_m": [float(v) for v in grasp_offset_m],
                  "closing_axis": [float(v) for v in closing_axis]},
    })


def _tuples(value):
    """JSON lists back to the tuples the frozen layout dataclasses hold."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def task_from_json(text: str) -> SimTask:
    """Parse a ``sim/task`` text.

    Raises:
        ValueError: Not JSON, a missing or malformed field (the message names it).
    """
    try:
        data = json.loads(text)
        layout = data["layout"]
        parsed = TaskLayout(
            objects=tuple(SceneObject(**_tuples(o)) for o in layout["objects"]),
            pads=tuple(TargetPad(**_tuples(p)) for p in layout["pads"]),
            target_object=layout["target_object"], target_pad=layout["target_pad"],
            appearance=Appearance(**_tuples(layout["appearance"])), seed=layout["seed"])
        mount = data["mount"]
        return SimTask(str(data["robot"]), int(data["episode"]), str(data["base_frame"]), parsed,
                       _vector(mount["grasp_offset_m"], 3, "mount.grasp_offset_m"),
                       _vector(mount["closing_axis"], 3, "mount.closing_axis"))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"sim/task message lacks or mistypes a field: {exc!r}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"sim/task message is not JSON: {exc}") from exc


def ground_truth_to_json(truth: GroundTruth, episode: int, stamp_s: float) -> str:
    """The ``sim/ground_truth`` text of a state (module docstring)."""
    return json.dumps({
        "episode": int(episode), "stamp_s": float(stamp_s), "time_s": float(truth.time_s),
        "success": bool(truth.success), "reason": truth.reason, "grasped": truth.grasped,
        "target_distance_m": float(truth.target_distance_m),
        "object_poses": {name: [float(v) for v in pose]
                         for name, pose in truth.object_poses.items()},
    })


def ground_truth_from_json(text: str) -> TruthSample:
    """Parse a ``sim/ground_truth`` text.

    Raises:
        ValueError: Not JSON, a missing field or a non-finite pose.
    """
    try:
        data = json.loads(text)
        poses = {str(name): _vector(pose, 7, f"object_poses.{name}")
                 for name, pose in data["object_poses"].items()}
        truth = GroundTruth(poses, data["grasped"], bool(data["success"]),
                            float(data["target_distance_m"]), str(data["reason"]),
                            float(data["time_s"]))
        stamp_s = float(data["stamp_s"])
        if not math.isfinite(stamp_s):
            raise ValueError(f"stamp_s must be finite, got {stamp_s!r}")
        return TruthSample(int(data["episode"]), stamp_s, truth)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"sim/ground_truth message lacks or mistypes a field: {exc!r}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"sim/ground_truth message is not JSON: {exc}") from exc
