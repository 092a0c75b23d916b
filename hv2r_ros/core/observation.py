"""Observation consistency gate, policy step and action-chunk conversion (pure core, no ROS).

``ObservationGate`` decides whether the latest camera frames and joint states form one usable
observation: every input present, none older than ``max_age_s``, none stamped in the future
(``FUTURE_TOLERANCE_S``), all captured within ``max_skew_s`` of each other, and every camera
showing a frame not already used for a previous chunk (a frozen camera never yields a second
action). Joint states are buffered, and the sample nearest the cameras' capture is used, so the
proprioception matches the images.

``chunk_to_targets`` turns a de-normalised policy chunk (H, A) into what ``hv2r/action``
carries (see ``hv2r_ros.ros.actions``):

- ``ee_delta``: per frame ``[dx dy dz rx ry rz]``, translation [m] and rotation vector [rad] in
  the base frame. **Every row is relative to the tool pose AT THE OBSERVATION, not to the
  previous row** (not cumulative): ``p_i = p_obs + d_i``, ``R_i = exp(r_i) R_obs``. An all-zero
  row therefore means "stay at the observed pose".
- ``ee_absolute``: per frame ``[x y z qx qy qz qw]`` in the base frame; quaternions normalised.
- ``joint_position``: one position per joint [rad or m], in ``spec.joint_order``.

Step ``i`` (0-based) is meant for ``(i + 1) / spec.control_rate_hz`` seconds after the capture
stamp. With ``spec.gripper`` the last column is the gripper command, clipped to [0, 1].

``PolicyRunner`` chains gate -> encoder (all cameras in one batch) -> policy -> finiteness
check -> targets, and keeps the timing statistics; it never raises on data, it returns a status.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Callable, Sequence

import numpy as np

from hv2r_ros.core.safety.cartesian import quat_conjugate, quat_multiply
from hv2r_ros.core.stats import StageStats
from hv2r_ros.core.status import Status

__all__ = [
    "FUTURE_TOLERANCE_S", "ChunkTargets", "Observation", "ObservationGate", "PolicyOutput",
    "PolicyRunner", "chunk_to_targets", "default_max_age_s", "rotvec_to_quat",
]

#: Stamps up to this far ahead of the clock are accepted (clock jitter between hosts) [s].
FUTURE_TOLERANCE_S = 0.002
_JOINT_BUFFER = 64  # joint samples kept for matching to the camera capture (0.3 s at 200 Hz)


def default_max_age_s(profile_max_age_s: float, frame_rate_hz: float | None = None) -> float:
    """Observation age limit: the profile's (design §5.6, 100 ms) or 3 frame periods if longer."""
    if frame_rate_hz:
        return max(profile_max_age_s, 3.0 / frame_rate_hz)
    return profile_max_age_s


@dataclasses.dataclass(frozen=True)
class Observation:
    """One consistent observation.

    Attributes:
        images: One uint8 RGB (h, w, 3) image per camera, in the gate's camera order.
        q: Joint positions (n,) [rad or m] of the joint sample nearest the capture.
        stamp_s: Capture time [s]: the oldest camera stamp.
        camera_stamps_s: Each camera's stamp [s], in camera order.
        joint_stamp_s: Stamp of the joint sample used [s].
    """

    images: tuple[np.ndarray, ...]
    q: np.ndarray
    stamp_s: float
    camera_stamps_s: tuple[float, ...]
    joint_stamp_s: float


class ObservationGate:
    """Latest inputs and the rules that make them one observation (thread-safe).

    Args:
        camera_names: Cameras in the policy's ``camera_order``.
        max_age_s: Oldest usable input at ``observation`` time [s] (> 0).
        max_skew_s: Largest spread between the stamps of the cameras and the joint sample [s].

    A frame whose pixels equal the previous frame's of the same camera (compared exactly with a
    copy kept per camera) keeps the stamp of the first frame with that content: a driver that
    re-sends one image with fresh stamps (a frozen pipeline) ages like a stalled camera and is
    refused after ``max_age_s``. A real sensor's noise makes consecutive frames differ, so
    bit-identical frames mean nothing new was seen; a simulated camera must add noise (the sim
    node's ``image_noise_std``). Cost (2-core CPU here): about 0.13 ms per new 640x480 frame
    (compare and copy), 0.08 ms per repeated one, 0.015 ms per 224x224; a CRC-32 of the bytes
    took 0.25 ms and 0.04 ms, a BLAKE2b 1.1 ms and 0.18 ms.

    Attributes:
        reason: Why the last ``observation`` call held, in words ("" after OK).
        holds: Hold category (``missing``, ``future``, ``stale``, ``frozen_image``, ``frozen``,
            ``skew``) -> count.
    """

    def __init__(self, camera_names: Sequence[str], max_age_s: float = 0.1,
                 max_skew_s: float = 0.05) -> None:
        self.camera_names = tuple(camera_names)
        if not self.camera_names or len(set(self.camera_names)) != len(self.camera_names):
            raise ValueError(f"camera_names must be unique and non-empty, got {camera_names}")
        if not (max_age_s > 0.0 and max_skew_s >= 0.0):
            raise ValueError(f"need max_age_s > 0 and max_skew_s >= 0, got {max_age_s}, "
                             f"{max_skew_s}")
        self.max_age_s, self.max_skew_s = float(max_age_s), float(max_skew_s)
        self._images: dict[str, tuple[np.ndarray, float]] = {}
        # camera -> (copy of its pixels, stamp of the first frame with them, of the latest one)
        self._content: dict[str, tuple[np.ndarray, float, float]] = {}
        self._used: dict[str, float] = {}
        self._joints: collections.deque = collections.deque(maxlen=_JOINT_BUFFER)
        self._lock = threading.Lock()
        self.reason = ""
        self.holds: collections.Counter[str] = collections.Counter()

    def update_camera(self, name: str, image: np.ndarray, stamp_s: float) -> None:
        """Latest frame of camera ``name`` (uint8 RGB (h, w, 3)) captured at ``stamp_s`` [s]."""
        if name not in self.camera_names:
            raise KeyError(f"unknown camera {name!r}; cameras: {', '.join(self.camera_names)}")
        with self._lock:
            stamp_s = float(stamp_s)
            previous = self._content.get(name)
            if previous is not None and _same_pixels(previous[0], image):
                self._content[name] = (previous[0], previous[1], stamp_s)
                stamp_s = previous[1]  # the same pixels: as old as their first frame
            else:  # a copy: the caller's buffer may be reused for the next frame
                self._content[name] = (np.array(image, copy=True), stamp_s, stamp_s)
            self._images[name] = (image, stamp_s)

    def update_joints(self, q: np.ndarray, stamp_s: float) -> None:
        """A joint sample (n,) [rad or m] measured at ``stamp_s`` [s]."""
        with self._lock:
            self._joints.append((np.array(q, dtype=np.float64), float(stamp_s)))

    def _hold(self, category: str, status: Status, reason: str):
        self.holds[category] += 1
        self.reason = reason
        return None, status

    def observation(self, now_s: float) -> tuple[Observation | None, Status]:
        """The current observation, or ``(None, HOLD_*)``.

        Holds: ``HOLD_NOT_STARTED`` (an input never arrived), ``HOLD_FUTURE_STAMP``,
        ``HOLD_STALE`` (an input older than ``max_age_s``, or inputs further apart than
        ``max_skew_s``), ``HOLD_NON_MONOTONIC`` (a camera frame already used: frozen camera).
        An OK observation marks its camera frames as used.
        """
        with self._lock:
            missing = [n for n in self.camera_names if n not in self._images]
            if missing or not self._joints:
                what = ", ".join(missing + ([] if self._joints else ["joint_states"]))
                return self._hold("missing", Status.HOLD_NOT_STARTED, f"no input yet: {what}")
            frames = [self._images[n] for n in self.camera_names]
            cams = [s for _, s in frames]
            latest = {**dict(zip(self.camera_names, cams)), "joint_states": self._joints[-1][1]}
            for name, stamp in latest.items():
                if stamp > now_s + FUTURE_TOLERANCE_S:
                    return self._hold("future", Status.HOLD_FUTURE_STAMP,
                                      f"{name} stamped {stamp - now_s:.3f} s in the future")
                if now_s - stamp > self.max_age_s:
                    content = self._content.get(name)
                    if content is not None and content[2] > content[1]:
                        return self._hold("frozen_image", Status.HOLD_STALE,
                                          f"{name} image unchanged for {now_s - stamp:.3f} s "
                                          "although its stamps are fresh (same pixels: a frozen "
                                          f"camera pipeline; max_age_s {self.max_age_s:g})")
                    return self._hold("stale", Status.HOLD_STALE,
                                      f"{name} is {now_s - stamp:.3f} s old "
                                      f"(max_age_s {self.max_age_s:g})")
            for name, stamp in zip(self.camera_names, cams):
                if name in self._used and stamp <= self._used[name]:
                    return self._hold("frozen", Status.HOLD_NON_MONOTONIC,
                                      f"{name} has no new frame since the last observation")
            centre = 0.5 * (min(cams) + max(cams))
            q, joint_stamp = min(self._joints, key=lambda sample: abs(sample[1] - centre))
            stamps = cams + [joint_stamp]
            if max(stamps) - min(stamps) > self.max_skew_s:
                return self._hold("skew", Status.HOLD_STALE,
                                  f"inputs {max(stamps) - min(stamps):.3f} s apart "
                                  f"(max_skew_s {self.max_skew_s:g})")
            self._used.update(zip(self.camera_names, cams))
            self.reason = ""
            return Observation(tuple(image for image, _ in frames), q.copy(), min(cams),
                               tuple(cams), joint_stamp), Status.OK


def _same_pixels(kept: np.ndarray, image: np.ndarray) -> bool:
    """Whether ``image`` is bit-identical to ``kept`` (shape, dtype and every value)."""
    return kept.shape == image.shape and kept.dtype == image.dtype and \
        bool(np.array_equal(kept, image))


def rotvec_to_quat(rotvec: np.ndarray) -> np.ndarray:
    """Rotation vectors (..., 3) [rad] -> unit quaternions (..., 4) (x, y, z, w)."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = np.sqrt(np.einsum("...i,...i->...", rotvec, rotvec))[..., None]
    small = angle < 1e-6
    # sin(a/2)/a by its series near 0, where the quotient loses precision.
    scale = np.where(small, 0.5 - angle**2 / 48.0,
                     np.sin(0.5 * angle) / np.where(small, 1.0, angle))
    return np.concatenate([rotvec * scale, np.cos(0.5 * angle)], axis=-1)


def quat_to_rotvec(quat: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) (x, y, z, w) -> rotation vectors (..., 3) [rad], angle <= pi."""
    quat = np.asarray(quat, dtype=np.float64)
    quat = np.where(quat[..., 3:] < 0.0, -quat, quat)  # the short way round
    sin_half = np.sqrt(np.einsum("...i,...i->...", quat[..., :3], quat[..., :3]))[..., None]
    angle = 2.0 * np.arctan2(sin_half, quat[..., 3:])
    small = sin_half < 1e-9
    scale = np.where(small, 2.0, angle / np.where(small, 1.0, sin_half))
    return quat[..., :3] * scale


def poses_to_ee_delta(poses: np.ndarray, start: np.ndarray) -> np.ndarray:
    """The inverse of ``chunk_to_targets`` for ``ee_delta``: absolute poses -> action rows.

    Args:
        poses: Target poses (H, F, 7) ``[x y z qx qy qz qw]`` in the base frame.
        start: Tool poses (F, 7) at the observation.

    Returns:
        (H, F * 6): per frame ``[dx dy dz rx ry rz]``, translation [m] and rotation vector
        [rad] with ``R_target = R_delta * R_start``, both relative to ``start``.
    """
    poses = np.asarray(poses, dtype=np.float64)
    start = np.asarray(start, dtype=np.float64)
    delta = np.empty(poses.shape[:-1] + (6,))
    delta[..., :3] = poses[..., :3] - start[None, :, :3]
    relative = quat_multiply(poses[..., 3:], np.broadcast_to(quat_conjugate(start[:, 3:]),
                                                              poses.shape[:-1] + (4,)))
    delta[..., 3:] = quat_to_rotvec(relative)
    return delta.reshape(len(poses), -1)


def _tool_poses(source, q: np.ndarray, frames: Sequence[str]) -> np.ndarray:
    """(F, 7) poses at q from a callable, a chain (``.poses``), a filter (``.tool_poses``)
    or a ``KinematicModel`` (``frame_id`` + ``frame_pose``, frames by name)."""
    if hasattr(source, "frame_pose"):
        import pinocchio as pin  # only this branch needs it
        return np.array([pin.SE3ToXYZQUAT(source.frame_pose(q, source.frame_id(f)))
                         for f in frames])
    for method in ("poses", "tool_poses"):
        if hasattr(source, method):
            return np.asarray(getattr(source, method)(q), dtype=np.float64)
    return np.asarray(source(q), dtype=np.float64)


ChunkTargets = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]


def chunk_to_targets(spec, actions: np.ndarray, q_obs: np.ndarray,
                     chain_or_kinematics=None) -> ChunkTargets:
    """Targets for ``hv2r/action`` from a policy chunk.

    Args:
        spec: The policy's ``PolicySpec``.
        actions: De-normalised chunk (H, A), finite.
        q_obs: Joint positions (n,) of the observation [rad or m] (for ``ee_delta``).
        chain_or_kinematics: Tool poses at q for ``ee_delta``: a callable ``q -> (F, 7)``, a
            ``CartesianCommandChain``, an ``ActionFilter`` or a ``KinematicModel``.

    Returns:
        ``(targets, times_s, gripper)``: targets (H, F, 7) ``[x y z qx qy qz qw]`` in the base
        frame for ee spaces, (H, n) for joint positions; times_s (H,) =
        ``(i + 1) / control_rate_hz``; gripper (H,) in [0, 1], or None without a gripper.

    Raises:
        ValueError: Wrong shape, non-finite values, a zero quaternion (ee_absolute), or no pose
            source for ee_delta: callers check finiteness and quaternion norms first.
    """
    actions = np.asarray(actions, dtype=np.float64)
    horizon = actions.shape[0] if actions.ndim == 2 else 0
    if actions.shape != (horizon, spec.action_size) or horizon == 0:
        raise ValueError(f"actions must be (H >= 1, {spec.action_size}), got {actions.shape}")
    if not np.isfinite(actions).all():
        raise ValueError("actions contain NaN or inf")
    times = np.arange(1, horizon + 1, dtype=np.float64) / spec.control_rate_hz
    gripper = np.clip(actions[:, -1], 0.0, 1.0) if spec.gripper else None
    body = actions[:, :-1] if spec.gripper else actions
    if spec.action_space == "joint_position":
        return body.copy(), times, gripper
    frames = len(spec.end_effector_frames)
    if spec.action_space == "ee_absolute":
        poses = body.reshape(horizon, frames, 7).copy()
        norms = np.linalg.norm(poses[..., 3:], axis=-1, keepdims=True)
        if (norms < 1e-9).any():
            raise ValueError("ee_absolute action with a zero quaternion")
        poses[..., 3:] /= norms
        return poses, times, gripper
    if chain_or_kinematics is None:
        raise ValueError("ee_delta needs the tool poses at the observation")
    delta = body.reshape(horizon, frames, 6)
    start = _tool_poses(chain_or_kinematics, np.asarray(q_obs, dtype=np.float64),
                        spec.end_effector_frames).reshape(frames, 7)
    poses = np.empty((horizon, frames, 7))
    poses[..., :3] = start[None, :, :3] + delta[..., :3]
    rotation = quat_multiply(rotvec_to_quat(delta[..., 3:]), np.broadcast_to(start[:, 3:],
                                                                              (horizon, frames, 4)))
    poses[..., 3:] = rotation / np.linalg.norm(rotation, axis=-1, keepdims=True)
    return poses, times, gripper


@dataclasses.dataclass(frozen=True)
class PolicyOutput:
    """One chunk ready to publish: targets and times as ``chunk_to_targets``; stamp_s the
    observation's capture time [s]."""

    targets: np.ndarray
    times_s: np.ndarray
    gripper: np.ndarray | None
    stamp_s: float


class PolicyRunner:
    """Gate -> encoder -> policy -> finiteness -> targets, with statistics.

    Args:
        encoder: Has ``embed(images) -> (C, D)``.
        policy: Has ``spec`` (PolicySpec) and ``infer(cams (C, D), goal (D,), q (P,)) -> (H, A)``.
        gate: The ObservationGate (cameras in ``policy.spec.camera_order``).
        tool_poses: Pose source for ``ee_delta`` (see ``chunk_to_targets``).
        clock: Monotonic clock for compute latencies [s].

    Attributes:
        chunks: Per tick: status, latency = tick time - capture [s].
        encoder_time, policy_time, total_time: Compute latencies [s] of OK inferences.
        holds: Hold category -> count (gate's categories plus ``no_goal``, ``non_finite``,
            ``invalid_rotation``, ``invalid_image``).
    """

    def __init__(self, encoder, policy, gate: ObservationGate, tool_poses=None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.encoder, self.policy, self.gate = encoder, policy, gate
        self.spec = policy.spec
        self.tool_poses, self._clock = tool_poses, clock
        self.goal: np.ndarray | None = None
        self.chunks, self.encoder_time = StageStats(), StageStats()
        self.policy_time, self.total_time = StageStats(), StageStats()
        self.extra_holds: collections.Counter[str] = collections.Counter()
        self.reason = ""

    @property
    def holds(self) -> dict[str, int]:
        return dict(self.gate.holds + self.extra_holds)

    def set_goal(self, values: Sequence[float]) -> bool:
        """Use ``values`` as the goal embedding; False (ignored) on a wrong length or NaN."""
        goal = np.asarray(values, dtype=np.float32).reshape(-1)
        if goal.shape != (self.spec.embedding_size,) or not np.isfinite(goal).all():
            return False
        self.goal = goal
        return True

    def hold(self, category: str, status: Status, reason: str, now_s: float) -> None:
        """Record a hold decided outside the runner (an undecodable image)."""
        self.extra_holds[category] += 1
        self.reason = reason
        self.chunks.record(now_s, None, status)

    def step(self, now_s: float) -> tuple[PolicyOutput | None, Status]:
        """One inference tick at ``now_s`` (the stamps' clock) [s]."""
        if self.goal is None:
            self.hold("no_goal", Status.HOLD_NOT_STARTED, "no goal embedding yet", now_s)
            return None, Status.HOLD_NOT_STARTED
        obs, status = self.gate.observation(now_s)
        if obs is None:
            self.reason = self.gate.reason
            self.chunks.record(now_s, None, status)
            return None, status
        t0 = self._clock()
        embeddings = self.encoder.embed(list(obs.images))
        t1 = self._clock()
        actions = self.policy.infer(embeddings, self.goal, obs.q)
        t2 = self._clock()
        self.encoder_time.record(t1, t1 - t0)
        self.policy_time.record(t2, t2 - t1)
        if not np.isfinite(actions).all():
            self.hold("non_finite", Status.HOLD_NON_FINITE, "policy output NaN or inf", now_s)
            return None, Status.HOLD_NON_FINITE
        if self.spec.action_space == "ee_absolute":
            body = actions[:, :-1] if self.spec.gripper else actions
            quats = body.reshape(len(actions), -1, 7)[..., 3:]
            if (np.linalg.norm(quats, axis=-1) < 1e-6).any():
                self.hold("invalid_rotation", Status.HOLD_INVALID_ROTATION,
                          "policy output a zero quaternion", now_s)
                return None, Status.HOLD_INVALID_ROTATION
        targets, times, gripper = chunk_to_targets(self.spec, actions, obs.q, self.tool_poses)
        t3 = self._clock()
        self.total_time.record(t3, t3 - t0)
        self.chunks.record(now_s, now_s + (t3 - t0) - obs.stamp_s, Status.OK)
        self.reason = ""
        return PolicyOutput(targets, times, gripper, obs.stamp_s), Status.OK

