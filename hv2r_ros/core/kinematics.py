"""Kinematic model of the commanded joints, built with pinocchio from a URDF string.

The full URDF is reduced to the profile's joints: every other joint (fingers, a humanoid's legs)
is locked at a fixed value, so the model's configuration vector is exactly the profile's joint
order. Joint limits of the model are replaced by the profile's (tighter) limits, so that every
consumer of the model (IK, guards) sees one set of limits.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
import pinocchio as pin

from hv2r_ros.core.errors import FrameNotFoundError, UrdfError
from hv2r_ros.core.limits import JointLimits


def _exist_joint(model: pin.Model, name: str) -> bool:
    # pinocchio 4 renamed existJoint to existJointName; 2.x/3.x users still have the old name.
    exists = getattr(model, "existJointName", None) or getattr(model, "existJoint")
    return bool(exists(name))


@dataclasses.dataclass
class KinematicModel:
    """A pinocchio model whose configuration is the profile's joint vector.

    Attributes:
        model: Reduced pinocchio model (nq == nv == number of commanded joints).
        data: Matching pinocchio data.
        joint_names: Commanded joints, in the model's (and the profile's) order.
        base_frame: Frame in which end-effector poses are expressed.
    """

    model: pin.Model
    data: pin.Data
    joint_names: tuple[str, ...]
    base_frame: str

    def frame_id(self, frame: str, *, file: str | None = None, field: str | None = None) -> int:
        """Return the id of ``frame``, raising a clear error when the model lacks it.

        Checked with ``existFrame`` first: asking pinocchio for a missing frame can crash.
        """
        if not self.model.existFrame(frame):
            names = sorted({f.name for f in self.model.frames})
            raise FrameNotFoundError(
                "frame not found in the URDF", file=file, field=field, value=frame, choices=names
            )
        return int(self.model.getFrameId(frame))

    def frame_pose(self, q: np.ndarray, frame_id: int) -> pin.SE3:
        """Pose of a frame in the base frame at configuration ``q`` [rad or m], shape (nq,)."""
        pin.framesForwardKinematics(self.model, self.data, q)
        return self.base_inverse(q) * self.data.oMf[frame_id]

    def base_inverse(self, q: np.ndarray) -> pin.SE3:
        """Inverse pose of the base frame in the model root; call after forward kinematics."""
        if self._base_inverse is not None:
            return self._base_inverse
        return self.data.oMf[self._base_id].inverse()

    def __post_init__(self) -> None:
        self._base_id = self.frame_id(self.base_frame, field="base_frame")
        frame = self.model.frames[self._base_id]
        parent = frame.parentJoint if hasattr(frame, "parentJoint") else frame.parent
        # A base frame fixed to the root has a constant pose: invert it once.
        self._base_inverse = frame.placement.inverse() if parent == 0 else None


def _rename_colliding_joints(model: pin.Model, joint_ids: Sequence[int]) -> None:
    """Rename joints to lock whose name is also a link's name (SO-100: link and joint "gripper").

    pinocchio looks frames up by name while reducing the model and refuses an ambiguous name;
    the locked joint vanishes from the reduced model, so renaming it loses nothing.
    """
    for joint_id in joint_ids:
        name = model.names[joint_id]
        if sum(frame.name == name for frame in model.frames) < 2:
            continue
        new_name = f"{name}__locked_joint"
        model.names[joint_id] = new_name
        for i, frame in enumerate(model.frames):
            if frame.name == name and frame.type == pin.FrameType.JOINT:
                frame.name = new_name
                model.frames[i] = frame


def build_kinematic_model(
    urdf_xml: str,
    joint_names: Sequence[str],
    *,
    base_frame: str,
    locked_positions: Mapping[str, float] | None = None,
    limits: JointLimits | None = None,
    source: str | None = None,
) -> KinematicModel:
    """Build the reduced kinematic model of ``joint_names`` from a URDF.

    Args:
        urdf_xml: URDF document as a string.
        joint_names: Joints to keep, in the order the configuration vector must have.
        base_frame: Frame in which end-effector poses are expressed.
        locked_positions: Positions [rad or m] at which to lock joints not in ``joint_names``;
            unlisted ones are locked at 0 (clipped into their URDF limits).
        limits: Limits to install in the model (position, velocity); defaults to the URDF's.
        source: Where the URDF came from, for error messages.

    Returns:
        The reduced model.

    Raises:
        UrdfError: the URDF does not parse, or lacks a joint.
    """
    try:
        full = pin.buildModelFromXML(urdf_xml)
    except Exception as exc:  # pinocchio raises plain RuntimeError / ValueError
        raise UrdfError(f"URDF does not parse: {exc}", file=source) from exc
    all_joints = [name for name in full.names[1:]]
    for i, name in enumerate(joint_names):
        if not _exist_joint(full, name):
            raise UrdfError(
                "joint not found in the URDF",
                file=source,
                field=f"joints[{i}]",
                value=name,
                choices=all_joints,
            )
    for joint_id in range(1, full.njoints):
        if full.joints[joint_id].nq != 1 and full.names[joint_id] in joint_names:
            raise UrdfError(
                "only single-DOF (revolute or prismatic) joints can be commanded",
                file=source,
                value=full.names[joint_id],
            )
    locked_positions = dict(locked_positions or {})
    for name in locked_positions:
        if not _exist_joint(full, name):
            raise UrdfError(
                "locked joint not found in the URDF",
                file=source,
                field="locked_joints",
                value=name,
                choices=all_joints,
            )
    q_ref = pin.neutral(full)
    lock_ids = []
    for joint_id in range(1, full.njoints):
        name = full.names[joint_id]
        if name in joint_names:
            continue
        lock_ids.append(joint_id)
        joint = full.joints[joint_id]
        if joint.nq == 1:
            value = float(locked_positions.get(name, 0.0))
            lo = full.lowerPositionLimit[joint.idx_q]
            hi = full.upperPositionLimit[joint.idx_q]
            if lo < hi:
                value = float(np.clip(value, lo, hi))
            q_ref[joint.idx_q] = value
    _rename_colliding_joints(full, lock_ids)
    model = pin.buildReducedModel(full, lock_ids, q_ref) if lock_ids else full
    # Reorder check: the reduced model keeps URDF tree order, which must be the profile order.
    reduced_names = tuple(model.names[1:])
    if reduced_names != tuple(joint_names):
        raise UrdfError(
            "joints must be listed in the URDF's kinematic-tree order "
            f"({', '.join(reduced_names)})",
            file=source,
            field="joints",
            value=list(joint_names),
        )
    if limits is not None:
        model.lowerPositionLimit = np.array(limits.position_min, dtype=np.float64)
        model.upperPositionLimit = np.array(limits.position_max, dtype=np.float64)
        model.velocityLimit = np.array(limits.velocity_max, dtype=np.float64)
    return KinematicModel(model, model.createData(), tuple(joint_names), base_frame)
