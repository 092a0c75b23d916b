"""Robot profiles: one YAML per robot under ``config/robots/``, loaded and validated.

A profile is everything robot-specific the stack needs: the URDF source, the joints (the only
joint order anywhere), limits no looser than the URDF's or the vendor's, end-effector and base
frames, the workspace box, safety timeouts, the command interface, cameras and the home pose.
Validation happens once, here, before anything moves; ``docs/robots.md`` documents every field.
"""

from __future__ import annotations

import dataclasses
import os
import types
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hv2r_ros.core import profile_sections as sections
from hv2r_ros.core.errors import FrameNotFoundError, RobotProfileError, UrdfError
from hv2r_ros.core.kinematics import KinematicModel, build_kinematic_model
from hv2r_ros.core.limits import CartesianLimits, JointLimits
from hv2r_ros.core.profile_limits import VendorLimits, build_joint_limits, read_vendor_limits
from hv2r_ros.core.profile_schema import ProfileReader, read_yaml
from hv2r_ros.core.profile_sections import Camera, CommandInterface, EndEffector, Gripper
from hv2r_ros.core.urdf import (
    package_share_dir,
    parse_frame_names,
    parse_joint_limits,
    resolve_urdf,
)

__all__ = [
    "Camera", "CommandInterface", "EndEffector", "Gripper", "RobotProfile", "VendorLimits",
    "list_robot_profiles", "load_robot_profile", "profile_dir",
]


@dataclasses.dataclass(frozen=True, eq=False)
class RobotProfile:
    """A validated robot profile. Arrays are read-only and in ``joint_names`` order.

    Attributes:
        name: Profile name (``panda``).
        file: The YAML file it was loaded from.
        joint_names: Commanded joints, in URDF kinematic-tree order (the only joint order).
        limits: Operational joint limits, position margin already applied.
        end_effectors: Named end-effector frames.
        base_frame: Frame in which end-effector poses and the workspace box are expressed.
        workspace: Workspace box [m] in ``base_frame`` and tool speed limits.
        home: Home pose [rad], shape (n,), inside ``limits``.
        command_timeout_s: Command watchdog [s]: HOLD when no fresh command arrived for this long.
        observation_max_age_s: Oldest usable observation (joint state, image) [s].
        singularity_slowdown_condition: Jacobian condition number where motion starts slowing.
        singularity_halt_condition: Jacobian condition number where motion stops.
        singularity_length_scale_m: Length [m] dividing the Jacobian's linear rows before the
            condition number is taken (1 m, as MoveIt Servo, unless the profile says otherwise).
        control_rate_hz: Control loop rate [Hz]; ``control_period_s`` is its inverse [s].
        urdf_xml: The URDF document.
        urdf_source: Where the URDF came from, in words.
        locked_joints: URDF joints locked in the kinematic model -> position [rad or m]; every
            other non-commanded joint is locked at 0 clipped into its URDF range.
        command_interface: Controller type and topic.
        cameras: Camera name -> Camera.
        gripper: The gripper, or None.
        vendor_limits: The vendor's published limits, or None.
        raw: The parsed YAML document.
    """

    name: str
    file: str
    joint_names: tuple[str, ...]
    limits: JointLimits
    end_effectors: tuple[EndEffector, ...]
    base_frame: str
    workspace: CartesianLimits
    home: np.ndarray
    command_timeout_s: float
    observation_max_age_s: float
    singularity_slowdown_condition: float
    singularity_halt_condition: float
    singularity_length_scale_m: float
    control_rate_hz: float
    urdf_xml: str = dataclasses.field(repr=False)
    urdf_source: str
    locked_joints: Mapping[str, float]
    command_interface: CommandInterface
    cameras: Mapping[str, Camera]
    gripper: Gripper | None
    vendor_limits: VendorLimits | None
    raw: Mapping[str, Any] = dataclasses.field(repr=False)
    _model: KinematicModel | None = dataclasses.field(default=None, repr=False)

    @property
    def end_effector_frames(self) -> tuple[str, ...]:
        """End-effector frame names, in ``end_effectors`` order."""
        return tuple(ee.frame for ee in self.end_effectors)

    @property
    def control_period_s(self) -> float:
        """Control loop period [s]."""
        return 1.0 / self.control_rate_hz

    def kinematic_model(self) -> KinematicModel:
        """The reduced pinocchio model of ``joint_names`` with ``limits`` installed (cached)."""
        if self._model is None:
            try:
                model = build_kinematic_model(
                    self.urdf_xml, self.joint_names, base_frame=self.base_frame,
                    locked_positions=self.locked_joints, limits=self.limits,
                    source=self.urdf_source,
                )
                for i, frame in enumerate(self.end_effector_frames):
                    model.frame_id(frame, file=self.file, field=f"end_effectors[{i}].frame")
            except UrdfError as exc:
                raise type(exc)(f"{exc.reason} (URDF: {self.urdf_source})", file=self.file,
                                field=exc.field, value=exc.value, choices=exc.choices) from exc
            object.__setattr__(self, "_model", model)
        return self._model


def profile_dir() -> Path:
    """``config/robots`` of a source checkout, or of the installed ``share/hv2r_ros``."""
    share = package_share_dir("hv2r_ros")
    if share is None or not (share / "config" / "robots").is_dir():
        raise RobotProfileError("config/robots not found: neither a source checkout nor an "
                                "installed share/hv2r_ros (colcon build / pip install)")
    return share / "config" / "robots"


def list_robot_profiles() -> list[str]:
    """Names of the shipped profiles (the YAML file stems), sorted."""
    return sorted(path.stem for path in profile_dir().glob("*.yaml"))


def _profile_path(name_or_path: str | os.PathLike[str]) -> Path:
    text = os.fspath(name_or_path)
    if os.sep in text or "/" in text or text.endswith((".yaml", ".yml")):
        path = Path(text).expanduser()
        if not path.is_file():
            raise RobotProfileError("profile file not found", file=str(path))
        return path
    path = profile_dir() / f"{text}.yaml"
    if not path.is_file():
        raise RobotProfileError("unknown robot profile", field="robot", value=text,
                                choices=list_robot_profiles())
    return path


def load_robot_profile(
    name_or_path: str | os.PathLike[str], *, robot_description: str | None = None
) -> RobotProfile:
    """Load and validate a robot profile.

    Args:
        name_or_path: A shipped profile's name (``panda``; see ``list_robot_profiles()``) or
            the path of a profile YAML.
        robot_description: URDF XML for profiles with ``urdf: {source: robot_description}``.

    Returns:
        The validated profile; its kinematic model is already built (and cached).

    Raises:
        RobotProfileError: the YAML is malformed, has unknown keys or misses fields.
        UrdfError: the URDF is missing, or lacks a joint or frame the profile names.
        LimitsError: a limit is malformed, switches a check off, or is looser than the URDF's
            or the vendor's.
    """
    path = _profile_path(name_or_path)
    file = str(path)
    reader = ProfileReader(read_yaml(path), file)
    raw = reader.raw
    name = reader.string(raw, "name", "name")
    urdf_spec = reader.section("urdf", raw["urdf"], "urdf")
    urdf_xml, urdf_source = resolve_urdf(urdf_spec, profile_file=file,
                                         robot_description=robot_description)
    try:
        urdf = parse_joint_limits(urdf_xml)
        frames = parse_frame_names(urdf_xml)
    except UrdfError as exc:
        raise UrdfError(f"{exc.reason} ({urdf_source})", file=file, field="urdf") from exc

    def frame(value: str, field: str) -> str:
        if value not in frames:
            raise FrameNotFoundError("frame not found in the URDF", file=file, field=field,
                                     value=value, choices=sorted(frames))
        return value

    joints = reader.string_list(raw, "joints", "joints")
    for i, joint in enumerate(joints):
        sections.check_joint(file, urdf, joint, f"joints[{i}]")
    base_frame = frame(reader.string(raw, "base_frame", "base_frame"), "base_frame")
    vendor = read_vendor_limits(reader, joints)
    limits = build_joint_limits(reader, joints, urdf, vendor)
    profile = RobotProfile(
        name=name, file=file, joint_names=joints, limits=limits,
        end_effectors=sections.end_effectors(reader, frame), base_frame=base_frame,
        workspace=sections.workspace(reader, base_frame, frame),
        home=sections.home(reader, limits), **sections.safety(reader),
        control_rate_hz=sections.control_rate(reader), urdf_xml=urdf_xml,
        urdf_source=urdf_source,
        locked_joints=types.MappingProxyType(sections.locked_joints(reader, urdf, joints)),
        command_interface=sections.command_interface(reader),
        cameras=types.MappingProxyType(sections.cameras(reader, frame)),
        gripper=sections.gripper(reader, urdf, joints), vendor_limits=vendor, raw=raw,
    )
    profile.kinematic_model()  # the model must build: joint order, frames, locked joints
    return profile
