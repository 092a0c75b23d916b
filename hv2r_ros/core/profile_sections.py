"""Readers of the robot profile sections other than the joint limits.

Each takes the ``ProfileReader`` (which names the file and field in every error) and returns
a small frozen value object; ``robot_profile.load_robot_profile`` assembles them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import numpy as np

from hv2r_ros.core.errors import LimitsError, UrdfError
from hv2r_ros.core.limits import CartesianLimits, JointLimits
from hv2r_ros.core.profile_schema import ProfileReader
from hv2r_ros.core.urdf import SINGLE_DOF_TYPES, UrdfJointLimit

FrameCheck = Callable[[str, str], str]
"""``frame(name, field) -> name``, raising FrameNotFoundError when the URDF lacks it."""

COMMAND_INTERFACES = ("joint_trajectory_controller", "forward_position_controller",
                      "unitree_arm_sdk")
MAX_TIMEOUT_S = 1.0  # a longer watchdog is no watchdog for a 100 Hz loop
MAX_RATE_HZ = 1000.0


@dataclasses.dataclass(frozen=True)
class EndEffector:
    """A named end-effector frame (``hand``, ``left_hand``, ...)."""

    name: str
    frame: str


@dataclasses.dataclass(frozen=True)
class CommandInterface:
    """Where joint commands go: controller ``type`` (one of COMMAND_INTERFACES) and ``topic``."""

    type: str
    topic: str


@dataclasses.dataclass(frozen=True)
class Camera:
    """A camera: image ``topic`` and, for a robot-mounted camera, its URDF ``frame``."""

    name: str
    topic: str
    frame: str | None = None


@dataclasses.dataclass(frozen=True)
class Gripper:
    """Gripper joint (locked in the kinematic model) and its open/closed positions [rad or m]."""

    joint: str
    open_position: float
    closed_position: float


def check_joint(file: str, urdf: Mapping[str, UrdfJointLimit], joint: str, field: str) -> None:
    if joint not in urdf:
        raise UrdfError("joint not found in the URDF", file=file, field=field, value=joint,
                        choices=[j for j, lim in urdf.items() if lim.type in SINGLE_DOF_TYPES])
    if urdf[joint].type not in SINGLE_DOF_TYPES:
        raise UrdfError(f"joint is {urdf[joint].type}; only revolute, continuous or prismatic "
                        "joints can be commanded or locked", file=file, field=field, value=joint)


def locked_joints(reader: ProfileReader, urdf: Mapping[str, UrdfJointLimit], joints: tuple[str, ...]
                   ) -> dict[str, float]:
    section = reader.raw.get("locked_joints") or {}
    if not isinstance(section, dict):
        reader.error("must be a mapping joint -> position", "locked_joints", value=section)
    locked = {}
    for joint in section:
        field = f"locked_joints.{joint}"
        check_joint(reader.file, urdf, joint, field)
        if joint in joints:
            reader.error("a commanded joint cannot also be locked", field, value=joint)
        value = reader.number(section, joint, field)
        lim = urdf[joint]
        if not lim.lower <= value <= lim.upper:
            raise LimitsError(f"outside the URDF range [{lim.lower:g}, {lim.upper:g}]",
                              file=reader.file, field=field, value=value)
        locked[joint] = value
    return locked


def end_effectors(reader: ProfileReader, frame: FrameCheck) -> tuple[EndEffector, ...]:
    items = reader.get(reader.raw, "end_effectors", "end_effectors")
    if not isinstance(items, list) or not items:
        reader.error("must be a non-empty list of {name, frame}", "end_effectors", value=items)
    out: list[EndEffector] = []
    for i, item in enumerate(items):
        field = f"end_effectors[{i}]"
        reader.section("end_effectors[]", item, field)
        ee = EndEffector(reader.string(item, "name", f"{field}.name"),
                         frame(reader.string(item, "frame", f"{field}.frame"), f"{field}.frame"))
        if any(ee.name == o.name or ee.frame == o.frame for o in out):
            reader.error("duplicate end-effector name or frame", field, value=item)
        out.append(ee)
    return tuple(out)


def _positive_seconds(reader: ProfileReader, section: Mapping[str, Any], key: str) -> float:
    field = f"safety.{key}"
    value = section.get(key)
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                         and (not math.isfinite(value) or value <= 0.0)):
        raise LimitsError(f"must be in (0, {MAX_TIMEOUT_S:g}] s: null, 0, negative or inf "
                          "would switch the watchdog off", file=reader.file, field=field,
                          value=value)
    value = reader.number(section, key, field)
    if value > MAX_TIMEOUT_S:
        raise LimitsError(f"must be at most {MAX_TIMEOUT_S:g} s: a longer timeout leaves the "
                          "robot moving on stale commands", file=reader.file, field=field,
                          value=value)
    return value


def safety(reader: ProfileReader) -> dict[str, float]:
    section = reader.section("safety", reader.raw["safety"], "safety")
    slow = reader.number(section, "singularity_slowdown_condition",
                         "safety.singularity_slowdown_condition")
    halt = reader.number(section, "singularity_halt_condition", "safety.singularity_halt_condition")
    if not 1.0 < slow < halt:
        raise LimitsError("need 1 < singularity_slowdown_condition < singularity_halt_condition",
                          file=reader.file, field="safety.singularity_slowdown_condition",
                          value=(slow, halt))
    # Divides the Jacobian's linear rows before the condition number is taken, so that metres
    # and radians weigh alike on a small arm (MoveIt Servo uses 1 m, which suits a 0.8 m arm).
    length = 1.0
    if "singularity_length_scale_m" in section:
        field = "safety.singularity_length_scale_m"
        length = reader.number(section, "singularity_length_scale_m", field)
        if not 0.01 <= length <= 10.0:
            raise LimitsError("must be between 0.01 and 10 m", file=reader.file, field=field,
                              value=length)
    return {
        "singularity_length_scale_m": length,
        "command_timeout_s": _positive_seconds(reader, section, "command_timeout_s"),
        "observation_max_age_s": _positive_seconds(reader, section, "observation_max_age_s"),
        "singularity_slowdown_condition": slow,
        "singularity_halt_condition": halt,
    }


def workspace(reader: ProfileReader, base_frame: str, frame: FrameCheck) -> CartesianLimits:
    section = reader.section("workspace", reader.raw["workspace"], "workspace")
    box_frame = section.get("frame", base_frame)
    if box_frame != base_frame:
        frame(reader.string(section, "frame", "workspace.frame"), "workspace.frame")
        reader.error("the workspace box is checked in base_frame: it must be expressed there",
                     "workspace.frame", value=box_frame, choices=[base_frame])
    lo = reader.vector(section, "min_m", "workspace.min_m", 3, ("x", "y", "z"))
    hi = reader.vector(section, "max_m", "workspace.max_m", 3, ("x", "y", "z"))
    if np.any(lo >= hi):
        raise LimitsError("min_m must be below max_m on every axis (x, y, z)", file=reader.file,
                          field="workspace.min_m", value=(lo.tolist(), hi.tolist()))
    speeds = {}
    for key in ("tool_linear_speed_m_s", "tool_angular_speed_rad_s",
                "tool_linear_acceleration_m_s2", "tool_angular_acceleration_rad_s2"):
        speeds[key] = reader.number(section, key, f"workspace.{key}")
        if speeds[key] <= 0.0:
            raise LimitsError("must be > 0", file=reader.file, field=f"workspace.{key}",
                              value=speeds[key])
    return CartesianLimits(base_frame, lo, hi, speeds["tool_linear_speed_m_s"],
                           speeds["tool_angular_speed_rad_s"],
                           speeds["tool_linear_acceleration_m_s2"],
                           speeds["tool_angular_acceleration_rad_s2"])


def command_interface(reader: ProfileReader) -> CommandInterface:
    section = reader.section("command_interface", reader.raw["command_interface"],
                             "command_interface")
    kind = reader.string(section, "type", "command_interface.type")
    if kind not in COMMAND_INTERFACES:
        reader.error("unknown command interface", "command_interface.type", value=kind,
                     choices=COMMAND_INTERFACES)
    return CommandInterface(kind, reader.topic(section, "topic", "command_interface.topic"))


def cameras(reader: ProfileReader, frame: FrameCheck) -> dict[str, Camera]:
    section = reader.raw.get("cameras") or {}
    if not isinstance(section, dict):
        reader.error("must be a mapping camera name -> {topic, frame}", "cameras", value=section)
    cameras = {}
    for name, item in section.items():
        field = f"cameras.{name}"
        reader.section("cameras.*", item, field)
        cam_frame = item.get("frame")
        if cam_frame is not None:
            frame(reader.string(item, "frame", f"{field}.frame"), f"{field}.frame")
        cameras[name] = Camera(str(name), reader.topic(item, "topic", f"{field}.topic"), cam_frame)
    return cameras


def gripper(reader: ProfileReader, urdf: Mapping[str, UrdfJointLimit], joints: tuple[str, ...]
             ) -> Gripper | None:
    section = reader.raw.get("gripper")
    if section is None:
        return None
    reader.section("gripper", section, "gripper")
    joint = reader.string(section, "joint", "gripper.joint")
    check_joint(reader.file, urdf, joint, "gripper.joint")
    if joint in joints:
        reader.error("the gripper joint is commanded separately, not by the arm IK: "
                     "remove it from joints", "gripper.joint", value=joint)
    positions = []
    for key in ("open_position", "closed_position"):
        value = reader.number(section, key, f"gripper.{key}")
        if not urdf[joint].lower <= value <= urdf[joint].upper:
            raise LimitsError(f"outside the URDF range [{urdf[joint].lower:g}, "
                              f"{urdf[joint].upper:g}]", file=reader.file,
                              field=f"gripper.{key}", value=value)
        positions.append(value)
    return Gripper(joint, *positions)


def home(reader: ProfileReader, limits: JointLimits) -> np.ndarray:
    """The ``home_rad`` pose [rad], checked inside the operational limits (margin included)."""
    joints = limits.names
    pose = reader.vector(reader.raw, "home_rad", "home_rad", len(joints), joints)
    for i, joint in enumerate(joints):
        if not limits.position_min[i] <= pose[i] <= limits.position_max[i]:
            raise LimitsError(
                f"home of joint {joint} is outside its limits [{limits.position_min[i]:.4f}, "
                f"{limits.position_max[i]:.4f}] (margin included)", file=reader.file,
                field=f"home_rad[{i}]", value=float(pose[i]))
    return pose


def control_rate(reader: ProfileReader) -> float:
    """``control.rate_hz`` [Hz], in (0, MAX_RATE_HZ]."""
    section = reader.section("control", reader.raw["control"], "control")
    rate_hz = reader.number(section, "rate_hz", "control.rate_hz")
    if not 0.0 < rate_hz <= MAX_RATE_HZ:
        reader.error(f"must be in (0, {MAX_RATE_HZ:g}] Hz", "control.rate_hz", value=rate_hz)
    return rate_hz
