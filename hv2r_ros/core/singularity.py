"""Singularity measure and velocity scaling, MoveIt Servo style.

The measure is the condition number ``sigma_max / sigma_min`` of each end-effector frame's
Jacobian (LOCAL_WORLD_ALIGNED: linear rows in [m/rad], angular rows in [rad/rad]). Two choices
make it meaningful on every robot of the project:

- Only the columns of joints that move the frame (its kinematic chain, ``model.supports``) are
  kept. A humanoid hand's 6x17 Jacobian has zero columns for the other arm, and an SO-100 model
  that keeps its gripper joint has a zero column for it: with those columns the smallest singular
  value would be 0 everywhere and the robot would look singular in every pose.
- Only the ``r = min(6, n_chain)`` singular values that exist are used: ``sigma_1 / sigma_r``.
  For a 5-DOF arm (SO-100) the 6x5 Jacobian has 5 singular values; the frame can only ever move
  on a 5-D manifold of poses, and this is the condition number of that motion (equivalently the
  square root of the condition number of ``J^T J``, i.e. of ``J J^T`` restricted to its rank).
  It grows without bound exactly when the arm loses one of the directions it normally has.

The linear rows are divided by a characteristic length so that the number does not depend on
the robot's size (see ``IKConfig.characteristic_length_m``); with 1 m it is MoveIt Servo's raw
measure. With several frames the worst (largest) condition number counts.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pinocchio as pin


def singularity_scale(condition: float, slowdown: float, halt: float) -> float:
    """Velocity scale for a Jacobian condition number.

    Args:
        condition: Condition number (>= 1; ``inf`` at an exact singularity).
        slowdown: Condition number where scaling starts.
        halt: Condition number where the scale reaches 0 (> slowdown).

    Returns:
        1 below ``slowdown``, falling linearly to 0 at ``halt``, 0 beyond (and for NaN).
    """
    if condition < slowdown:
        return 1.0
    if not condition < halt:  # also catches NaN
        return 0.0
    return (halt - condition) / (halt - slowdown)


class SingularityMonitor:
    """Worst Jacobian condition number over a set of frames.

    Args:
        model: Pinocchio model (the IK's reduced model).
        frame_ids: Ids of the end-effector frames.
        characteristic_length_m: Length [m] dividing the Jacobian's linear rows, > 0.
    """

    def __init__(
        self, model: pin.Model, frame_ids: Sequence[int], characteristic_length_m: float = 1.0
    ) -> None:
        self._model = model
        # A private data: the look-ahead at q + dq must not disturb the solver's kinematics.
        self._data = model.createData()
        self._linear_scale = 1.0 / characteristic_length_m
        self._frames: list[tuple[int, np.ndarray | None, int]] = []
        for frame_id in frame_ids:
            frame = model.frames[frame_id]
            parent = frame.parentJoint if hasattr(frame, "parentJoint") else frame.parent
            columns = [
                v
                for joint_id in model.supports[parent]
                if joint_id > 0
                for v in range(model.joints[joint_id].idx_v,
                               model.joints[joint_id].idx_v + model.joints[joint_id].nv)
            ]
            rank = min(6, len(columns))
            # None: every joint moves the frame, skip the (costly) column gather.
            kept = None if columns == list(range(model.nv)) else np.array(columns, dtype=int)
            self._frames.append((int(frame_id), kept, rank))

    def condition_from_data(self, data: pin.Data) -> float:
        """Worst condition number from kinematics already computed in ``data``.

        ``data`` must hold joint Jacobians and frame placements of the current configuration
        (``pin.computeJointJacobians`` then ``pin.updateFramePlacements``; pink's
        ``Configuration.update`` does both).
        """
        worst = 1.0
        for frame_id, columns, rank in self._frames:
            if rank == 0:  # a frame no joint moves cannot be singular
                continue
            jacobian = pin.getFrameJacobian(
                self._model, data, frame_id, pin.ReferenceFrame.LOCAL_WORLD_ALIGNED
            )
            if columns is not None:
                jacobian = jacobian[:, columns]
            if self._linear_scale != 1.0:
                jacobian[:3] *= self._linear_scale  # a fresh array: safe to scale in place
            singular = np.linalg.svd(jacobian, compute_uv=False)
            smallest = singular[rank - 1]
            condition = singular[0] / smallest if smallest > 0.0 else math.inf
            if not math.isfinite(condition):
                return math.inf
            worst = max(worst, float(condition))
        return worst

    def condition(self, q: np.ndarray) -> float:
        """Worst condition number at configuration ``q`` [rad or m], shape (nq,)."""
        pin.computeJointJacobians(self._model, self._data, q)
        pin.updateFramePlacements(self._model, self._data)
        return self.condition_from_data(self._data)
