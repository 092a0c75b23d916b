"""The Unitree G1 arm SDK channel (``rt/arm_sdk``): motor slots, the blend weight, command frames.

On the arm SDK channel a ``unitree_hg`` ``LowCmd`` carries commands for the upper body (waist and
both arms) and, in the position field of the otherwise unused motor slot 29, a blend weight in
[0, 1]: the robot's own controller mixes the upper-body commands with its balance controller's
by that weight and keeps the legs to itself. Unitree's examples (``g1_arm7_sdk_dds_example``)
raise the weight while commanding the measured positions and lower it before they stop; so does
:class:`ArmSdkCommander`.

Everything here is pure numpy: the motor-slot map of the 29-DoF G1, per-slot gains, the blend
ramp and the last check of every frame before it reaches the wire. The vendor-SDK adapter that
turns an :class:`ArmSdkFrame` into a ``LowCmd`` with its CRC is ``hv2r_ros.io.unitree_sdk``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Sequence

import numpy as np

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.limits import JointLimits

__all__ = [
    "ARM_SDK_SLOTS", "DEFAULT_KD", "DEFAULT_KP", "G1_MOTOR_SLOTS", "MOTOR_SLOT_COUNT",
    "WEIGHT_SLOT", "ArmSdkCommander", "ArmSdkFrame", "ArmSdkLayout", "BlendRamp", "FrameCheck",
]

#: URDF joint name -> motor slot of the 29-DoF G1 (Unitree's ``G1JointIndex``). The slots follow
#: the order of the actuated joints in Unitree's ``g1_29dof_rev_1_0.urdf``.
G1_MOTOR_SLOTS: dict[str, int] = {name: slot for slot, name in enumerate((
    "left_hip_pitch_joint", "left_hip_roll_joint", "left_hip_yaw_joint", "left_knee_joint",
    "left_ankle_pitch_joint", "left_ankle_roll_joint",
    "right_hip_pitch_joint", "right_hip_roll_joint", "right_hip_yaw_joint", "right_knee_joint",
    "right_ankle_pitch_joint", "right_ankle_roll_joint",
    "waist_yaw_joint", "waist_roll_joint", "waist_pitch_joint",
    "left_shoulder_pitch_joint", "left_shoulder_roll_joint", "left_shoulder_yaw_joint",
    "left_elbow_joint", "left_wrist_roll_joint", "left_wrist_pitch_joint", "left_wrist_yaw_joint",
    "right_shoulder_pitch_joint", "right_shoulder_roll_joint", "right_shoulder_yaw_joint",
    "right_elbow_joint", "right_wrist_roll_joint", "right_wrist_pitch_joint",
    "right_wrist_yaw_joint",
))}
#: Motor slots blended on the arm SDK channel: waist (12-14) and both arms (15-28).
ARM_SDK_SLOTS: tuple[int, ...] = tuple(range(12, 29))
#: The slot whose position field carries the blend weight ("kNotUsedJoint").
WEIGHT_SLOT = 29
#: ``len(LowCmd_.motor_cmd)`` in ``unitree_hg``.
MOTOR_SLOT_COUNT = 35
#: Gains of Unitree's arm SDK examples [N m/rad], [N m s/rad].
DEFAULT_KP, DEFAULT_KD = 60.0, 1.5
# Typo guards (a kp of 6000 instead of 60), not vendor limits: far above Unitree's G1 examples.
_KP_MAX, _KD_MAX = 500.0, 20.0


class FrameCheck(enum.Enum):
    """The last check of a frame before it is sent; anything but OK is not sent."""

    OK = "ok"
    WRONG_LENGTH = "refused: wrong command length"
    NON_FINITE = "refused: non-finite value in the command"
    POSITION_OUT_OF_RANGE = "refused: position outside the joint limits"
    VELOCITY_OUT_OF_RANGE = "refused: velocity above the joint speed limit"
    NO_MEASUREMENT = "refused: no valid measured state for the joints held in place"


@dataclasses.dataclass(frozen=True)
class ArmSdkFrame:
    """One ``LowCmd`` on the arm SDK channel, slot by slot (arrays of shape (35,)).

    Attributes:
        q: Position targets [rad]; ``q[WEIGHT_SLOT]`` is the blend weight in [0, 1].
        dq: Velocity targets [rad/s].
        tau: Feed-forward torques [N m] (zero: the stack commands positions).
        kp: Position gains [N m/rad]; zero on slots not blended (legs, spare slots).
        kd: Velocity gains [N m s/rad].
    """

    q: np.ndarray
    dq: np.ndarray
    tau: np.ndarray
    kp: np.ndarray
    kd: np.ndarray

    @property
    def weight(self) -> float:
        """The blend weight in [0, 1] (0: balance controller only, 1: these commands only)."""
        return float(self.q[WEIGHT_SLOT])


def _gains(name: str, values: Sequence[float], default: float, top: float,
           n: int) -> np.ndarray:
    array = np.asarray(list(values) or [default] * n, dtype=np.float64)
    if array.shape != (n,):
        raise ConfigError(f"expected {n} values, one per profile joint (or none for "
                          f"{default:g} each)", field=name, value=list(array))
    bad = [v for v in array.tolist() if not (math.isfinite(v) and 0.0 <= v <= top)]
    if bad or (name.endswith("kp") and not array.all()):
        raise ConfigError(f"every value must be finite, in [0, {top:g}]" +
                          (" and kp > 0 (a zero kp leaves a joint limp)"
                           if name.endswith("kp") else ""), field=name, value=array.tolist())
    return array


class ArmSdkLayout:
    """Where the profile's joints sit among the 35 motor slots, with their gains and limits.

    Blended slots the profile does not command (a profile of the arms alone leaves the waist)
    are held where they were measured when the blend began, with the default gains: a zero gain
    there would leave the joint limp once the weight reaches 1.

    Args:
        joint_names: The profile's joints (``RobotProfile.joint_names``), the frame's order.
        limits: The profile's joint limits: every frame is checked against them.
        kp: Position gains per profile joint [N m/rad]; empty: ``DEFAULT_KP`` for each.
        kd: Velocity gains per profile joint [N m s/rad]; empty: ``DEFAULT_KD`` for each.
        file: The profile the joints come from, for error messages (the gains are the
            ``command_output`` parameters ``unitree_kp`` and ``unitree_kd``).

    Raises:
        ConfigError: A joint without a blended motor slot (a leg, a hand, a typo), duplicate
            joints, or gains of the wrong length, non-finite, negative or above the typo guard.
    """

    def __init__(self, joint_names: Sequence[str], limits: JointLimits,
                 kp: Sequence[float] = (), kd: Sequence[float] = (),
                 *, file: str | None = None) -> None:
        self.joint_names = tuple(joint_names)
        choices = [name for name, slot in G1_MOTOR_SLOTS.items() if slot in ARM_SDK_SLOTS]
        for i, name in enumerate(self.joint_names):
            if name not in choices:
                why = ("the legs stay with the robot's balance controller"
                       if name in G1_MOTOR_SLOTS else "no motor slot of the 29-DoF G1")
                raise ConfigError(f"not on the arm SDK channel: {why}", file=file,
                                  field=f"joints[{i}]", value=name, choices=choices)
        if len(set(self.joint_names)) != len(self.joint_names) or not self.joint_names:
            raise ConfigError("joint names must be non-empty and unique", file=file,
                              field="joints", value=self.joint_names)
        if tuple(limits.names) != self.joint_names:
            raise ConfigError("limits must be in the joints' order", file=file,
                              field="limits", value=limits.names)
        n = len(self.joint_names)
        #: Motor slot of each profile joint, shape (n,).
        self.slots = np.array([G1_MOTOR_SLOTS[name] for name in self.joint_names])
        #: Blended slots the profile does not command: held in place, shape (m,).
        self.held_slots = np.array(sorted(set(ARM_SDK_SLOTS) - set(self.slots.tolist())),
                                   dtype=np.int64)
        self.kp = np.zeros(MOTOR_SLOT_COUNT)
        self.kd = np.zeros(MOTOR_SLOT_COUNT)
        self.kp[self.slots] = _gains("unitree_kp", kp, DEFAULT_KP, _KP_MAX, n)
        self.kd[self.slots] = _gains("unitree_kd", kd, DEFAULT_KD, _KD_MAX, n)
        self.kp[self.held_slots], self.kd[self.held_slots] = DEFAULT_KP, DEFAULT_KD
        self.limits = limits

    def measured(self, motor_q: np.ndarray) -> np.ndarray | None:
        """The profile joints' positions [rad], shape (n,), from all 35 slots; None if invalid."""
        q = np.asarray(motor_q, dtype=np.float64)
        if q.shape != (MOTOR_SLOT_COUNT,):
            return None
        picked = q[self.slots]
        return picked if np.isfinite(picked).all() else None

    def frame(self, q_cmd: np.ndarray, dq_cmd: np.ndarray, weight: float,
              held_q: np.ndarray) -> tuple[ArmSdkFrame | None, FrameCheck]:
        """Build and check one frame; ``(None, reason)`` when it must not be sent.

        Args:
            q_cmd: Guarded joint positions [rad], shape (n,), profile order.
            dq_cmd: Their velocities [rad/s], shape (n,) (the guard's own velocity).
            weight: Blend weight in [0, 1].
            held_q: Positions [rad] of all 35 slots measured when the blend began; only the
                held slots are read.
        """
        q = np.asarray(q_cmd, dtype=np.float64)
        dq = np.asarray(dq_cmd, dtype=np.float64)
        n = len(self.joint_names)
        if q.shape != (n,) or dq.shape != (n,):
            return None, FrameCheck.WRONG_LENGTH
        if not (np.isfinite(q).all() and np.isfinite(dq).all() and math.isfinite(weight)
                and 0.0 <= weight <= 1.0):
            return None, FrameCheck.NON_FINITE
        if (q < self.limits.position_min).any() or (q > self.limits.position_max).any():
            return None, FrameCheck.POSITION_OUT_OF_RANGE
        # The guard's velocity is (q_k - q_{k-1}) / T: a few ulp of slack for that division.
        if (np.abs(dq) > self.limits.velocity_max * (1.0 + 1e-9)).any():
            return None, FrameCheck.VELOCITY_OUT_OF_RANGE
        held = np.asarray(held_q, dtype=np.float64)
        if held.shape != (MOTOR_SLOT_COUNT,) or not np.isfinite(held[self.held_slots]).all():
            return None, FrameCheck.NO_MEASUREMENT
        q_out = np.zeros(MOTOR_SLOT_COUNT)
        dq_out = np.zeros(MOTOR_SLOT_COUNT)
        q_out[self.held_slots] = held[self.held_slots]
        q_out[self.slots], dq_out[self.slots] = q, dq
        q_out[WEIGHT_SLOT] = weight
        return ArmSdkFrame(q_out, dq_out, np.zeros(MOTOR_SLOT_COUNT), self.kp.copy(),
                           self.kd.copy()), FrameCheck.OK


class BlendRamp:
    """The blend weight: 0 -> 1 over ``ramp_s`` after :meth:`engage`, back after :meth:`release`.

    The weight moves in ``N = ceil(ramp_s / period_s)`` equal steps of ``1 / N`` per period, so
    it reaches exactly 1 and exactly 0.

    Args:
        ramp_s: Time for the full swing [s], finite and > 0.
        period_s: Time between two :meth:`step` calls [s], finite and > 0.

    Raises:
        ConfigError: A duration that is not positive and finite (names the field).
    """

    def __init__(self, ramp_s: float, period_s: float) -> None:
        for field, value in (("unitree_blend_ramp_s", ramp_s), ("control_period_s", period_s)):
            if not (math.isfinite(float(value)) and float(value) > 0.0):
                raise ConfigError("must be a positive finite duration", field=field, value=value)
        # The 1e-9 keeps 0.1 / 0.02 = 5.000000000000001 at 5 steps.
        self.steps = max(1, math.ceil(float(ramp_s) / float(period_s) - 1e-9))
        self._step = self._previous = 0
        self._direction = 0

    @property
    def weight(self) -> float:
        """The current weight in [0, 1]."""
        return self._step / self.steps

    def engage(self) -> None:
        """Raise the weight toward 1 from the next step on."""
        self._direction = 1

    def release(self) -> None:
        """Lower the weight toward 0 from the next step on."""
        self._direction = -1

    def step(self) -> float:
        """Advance one period; the weight to send now."""
        self._previous = self._step
        self._step = min(self.steps, max(0, self._step + self._direction))
        return self.weight

    def undo(self) -> None:
        """Take back the last :meth:`step` (its frame was not sent)."""
        self._step = self._previous

    @property
    def engaged(self) -> bool:
        """The weight is 1 and not being released: the commands alone drive the upper body."""
        return self._step == self.steps and self._direction > 0

    @property
    def released(self) -> bool:
        """The weight is back at 0 after :meth:`release` (or was never raised)."""
        return self._step == 0 and self._direction <= 0


class ArmSdkCommander:
    """The arm SDK stream: blend ramp, joints held in place, and the last check of each frame.

    The first :meth:`command` engages the blend and records the held slots' measured positions;
    the caller commands the measured state (HOLD) until :attr:`engaged`. :meth:`release_step`
    lowers the weight while the caller brakes to rest.

    Args:
        layout: The profile's slots, gains and limits.
        ramp_s: Blend ramp duration [s], both ways.
        period_s: Control period [s].
    """

    def __init__(self, layout: ArmSdkLayout, ramp_s: float, period_s: float) -> None:
        self.layout = layout
        self.ramp = BlendRamp(ramp_s, period_s)
        self._held_q: np.ndarray | None = None

    @property
    def engaged(self) -> bool:
        """The blend weight has reached 1: the commands may follow the policy."""
        return self.ramp.engaged

    @property
    def started(self) -> bool:
        """A frame has been built: the robot has seen a non-zero weight."""
        return self._held_q is not None

    def command(self, q_cmd: np.ndarray, dq_cmd: np.ndarray,
                motor_q: np.ndarray) -> tuple[ArmSdkFrame | None, FrameCheck]:
        """The next frame while running (weight rising to 1, then 1).

        Args:
            q_cmd: Guarded joint positions [rad], shape (n,).
            dq_cmd: Their velocities [rad/s], shape (n,).
            motor_q: Latest measured positions of all 35 slots [rad].
        """
        if self._held_q is None:
            held = np.asarray(motor_q, dtype=np.float64)
            if held.shape != (MOTOR_SLOT_COUNT,) or not np.isfinite(
                    held[self.layout.held_slots]).all():
                return None, FrameCheck.NO_MEASUREMENT
            self._held_q = held.copy()
            self.ramp.engage()
        return self._build(q_cmd, dq_cmd)

    def release_step(self, q_cmd: np.ndarray,
                     dq_cmd: np.ndarray) -> tuple[ArmSdkFrame | None, FrameCheck]:
        """The next frame while stopping (weight falling to 0); ``released`` tells when done."""
        self.ramp.release()
        if self._held_q is None:
            return None, FrameCheck.NO_MEASUREMENT
        return self._build(q_cmd, dq_cmd)

    @property
    def released(self) -> bool:
        """Nothing more to send: the weight is back at 0 (or was never raised)."""
        return self.ramp.released

    def _build(self, q_cmd, dq_cmd):
        frame, check = self.layout.frame(q_cmd, dq_cmd, self.ramp.step(), self._held_q)
        if frame is None:
            self.ramp.undo()  # a refused frame never moved the weight
        return frame, check
