"""A human-hand proxy: a palm, four fingers and a thumb of capsules, a forearm and an upper arm.

The hand is a set of MuJoCo mocap bodies (one per segment, names prefixed ``hand_``) whose poses
are computed here from a hand pose and per-finger closures, so the scene needs no joints and no
physics for it: the renderer sets the mocap poses and calls the kinematics.

Hand frame (a right hand seen palm down): origin at the palm centre, x along the fingers, y toward
the thumb, z out of the back of the hand. Lengths are adult averages [m]. A finger's closure c in
[0, 1] flexes its three joints together (c * the joint's full flexion); 0 is a flat hand.
``HandRig.close_on_object`` closes each finger until it touches the object's geoms, so the
fingers wrap around whatever the object's shape is without passing through it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

#: Closure of a relaxed open hand (fingers slightly curled).
OPEN_CLOSURE = 0.12
#: Skin tones light to dark (linear RGB in [0, 1]); a demo's tone is drawn between them.
SKIN_TONES = np.array([
    [0.96, 0.80, 0.69], [0.89, 0.69, 0.56], [0.78, 0.57, 0.43],
    [0.62, 0.43, 0.31], [0.45, 0.30, 0.21],
])
FINGERS = ("thumb", "index", "middle", "ring", "little")
_PALM_HALF_M = (0.048, 0.043, 0.015)       # ellipsoid semi-axes
_WRIST_M = np.array([-0.052, 0.0, -0.002])  # where the forearm meets the palm


@dataclasses.dataclass(frozen=True)
class Finger:
    """One finger in the hand frame.

    Attributes:
        name: ``thumb``, ``index``, ...
        base_m: Knuckle position (3,) [m].
        lengths_m: Proximal, middle and distal segment lengths [m].
        radius_m: Capsule radius [m].
        flexion_rad: Full flexion of each joint [rad] (c = 1).
        spread_rad: Abduction of the open finger about z [rad]; it narrows as the finger closes.
    """

    name: str
    base_m: tuple[float, float, float]
    lengths_m: tuple[float, float, float]
    radius_m: float
    flexion_rad: tuple[float, float, float] = (1.5, 1.65, 1.05)
    spread_rad: float = 0.0

    def directions(self, closure: float) -> np.ndarray:
        """Unit direction (3, 3) of each segment in the hand frame."""
        psi = self.spread_rad * (1.0 - 0.7 * closure)
        angles = np.cumsum(np.asarray(self.flexion_rad) * closure)
        return np.stack([np.cos(angles) * math.cos(psi), np.cos(angles) * math.sin(psi),
                         -np.sin(angles)], axis=1)


@dataclasses.dataclass(frozen=True)
class Thumb(Finger):
    """The thumb: its segments turn from ``open_dir`` toward ``closed_dir`` (hand frame) and
    beyond, the metacarpal reaching ``closed_dir`` at c = 1 and each further joint adding
    ``flexion_rad`` of the same turn."""

    open_dir: tuple[float, float, float] = (0.6, 0.72, -0.2)
    closed_dir: tuple[float, float, float] = (0.5, -0.28, -0.82)

    def directions(self, closure: float) -> np.ndarray:
        d_open = _unit(np.asarray(self.open_dir))
        d_closed = _unit(np.asarray(self.closed_dir))
        axis = _unit(np.cross(d_open, d_closed))
        turn = math.acos(float(np.clip(d_open @ d_closed, -1.0, 1.0)))
        angles = closure * np.cumsum([turn, self.flexion_rad[1], self.flexion_rad[2]])
        return np.stack([_rotate(d_open, axis, a) for a in angles])


HAND_FINGERS = (
    Thumb("thumb", (-0.012, 0.036, -0.010), (0.040, 0.032, 0.027), 0.0105,
          flexion_rad=(0.0, 0.35, 0.35)),
    Finger("index", (0.044, 0.027, 0.0), (0.042, 0.025, 0.020), 0.0088, spread_rad=0.14),
    Finger("middle", (0.047, 0.009, 0.0), (0.046, 0.028, 0.021), 0.0090, spread_rad=0.03),
    Finger("ring", (0.044, -0.010, 0.0), (0.043, 0.027, 0.020), 0.0085, spread_rad=-0.08),
    Finger("little", (0.038, -0.028, 0.0), (0.034, 0.021, 0.018), 0.0075, spread_rad=-0.2),
)
#: Forearm capsules: (name, start distance, end distance along the forearm [m], radius [m]).
FOREARM = (("forearm_wrist", 0.0, 0.12, 0.025), ("forearm", 0.11, 0.28, 0.032))
#: Upper arm: from the elbow toward the shoulder (length [m], radius [m]); long enough to
#: reach out of view whatever the shoulder's distance.
UPPER_ARM = (0.6, 0.042)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about the unit ``axis`` by ``angle`` [rad]."""
    c, s = math.cos(angle), math.sin(angle)
    return v * c + np.cross(axis, v) * s + axis * (axis @ v) * (1.0 - c)


def hand_rotation(yaw_rad: float, pitch_rad: float) -> np.ndarray:
    """Rotation (3, 3) of a palm-down hand whose fingers point along ``yaw_rad`` (about the
    world z axis) and dip ``pitch_rad`` below the horizontal."""
    cy, sy, cp, sp = math.cos(yaw_rad), math.sin(yaw_rad), math.cos(pitch_rad), math.sin(pitch_rad)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    return rz @ ry


def sample_skin_rgb(rng: np.random.Generator) -> np.ndarray:
    """A skin tone (3,) in [0, 1]: a random point along ``SKIN_TONES`` plus a slight tint."""
    position = rng.uniform(0.0, len(SKIN_TONES) - 1.0)
    i = min(int(position), len(SKIN_TONES) - 2)
    tone = SKIN_TONES[i] + (position - i) * (SKIN_TONES[i + 1] - SKIN_TONES[i])
    return np.clip(tone + rng.normal(0.0, 0.015, 3), 0.0, 1.0)


def quat_from_z(direction: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) turning the z axis onto the unit ``direction`` (3,)."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, direction)
    s, c = np.linalg.norm(axis), float(direction @ z)
    if s < 1e-9:
        return np.array([1.0, 0.0, 0.0, 0.0]) if c > 0 else np.array([0.0, 1.0, 0.0, 0.0])
    half = 0.5 * math.atan2(s, c)
    return np.concatenate([[math.cos(half)], axis / s * math.sin(half)])


def quat_from_matrix(rotation: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z) of a rotation matrix (3, 3)."""
    import mujoco  # only here: the rest of the module is plain numpy

    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(rotation, dtype=np.float64).reshape(9))
    return quat


@dataclasses.dataclass(frozen=True)
class Capsule:
    """A capsule between two points (3,) [m] in the world, radius [m]."""

    start: np.ndarray
    end: np.ndarray
    radius: float


def hand_capsules(position_m: np.ndarray, rotation: np.ndarray, closures: np.ndarray,
                  forearm_elevation_rad: float = 0.35,
                  shoulder_m: np.ndarray | None = None) -> dict[str, Capsule]:
    """Every capsule of the hand and forearm in the world frame.

    Args:
        position_m: Palm centre (3,) [m] in the world.
        rotation: Hand frame orientation (3, 3) in the world.
        closures: Closure in [0, 1] per finger, ``FINGERS`` order (5,).
        forearm_elevation_rad: How far the forearm rises behind the wrist [rad].
        shoulder_m: The shoulder (3,) [m]; the upper arm points from the elbow toward it
            (straight up from the elbow when None).

    Returns:
        Segment name (``index_1``, ``thumb_3``, ``forearm``, ``upper_arm``...) -> Capsule.
    """
    capsules = {}
    for finger, closure in zip(HAND_FINGERS, closures):
        point = np.asarray(finger.base_m, dtype=np.float64)
        for k, (length, direction) in enumerate(zip(finger.lengths_m,
                                                     finger.directions(float(closure)))):
            end = point + length * direction
            capsules[f"{finger.name}_{k + 1}"] = Capsule(position_m + rotation @ point,
                                                         position_m + rotation @ end,
                                                         finger.radius_m)
            point = end
    back = np.array([-math.cos(forearm_elevation_rad), 0.0, math.sin(forearm_elevation_rad)])
    for name, start, end, radius in FOREARM:
        capsules[name] = Capsule(position_m + rotation @ (_WRIST_M + start * back),
                                 position_m + rotation @ (_WRIST_M + end * back), radius)
    elbow = capsules[FOREARM[-1][0]].end
    toward = np.array([0.0, 0.0, 1.0]) if shoulder_m is None else shoulder_m - elbow
    capsules["upper_arm"] = Capsule(elbow, elbow + UPPER_ARM[0] * _unit(toward), UPPER_ARM[1])
    return capsules


def mocap_poses(position_m: np.ndarray, rotation: np.ndarray,
                capsules: dict[str, Capsule]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Body name -> (position (3,) [m], quaternion (w, x, y, z)) for the MJCF of ``hand_mjcf``."""
    poses = {"hand_palm": (np.asarray(position_m, dtype=np.float64), quat_from_matrix(rotation))}
    for name, capsule in capsules.items():
        axis = capsule.end - capsule.start
        poses[f"hand_{name}"] = (0.5 * (capsule.start + capsule.end),
                                 quat_from_z(axis / np.linalg.norm(axis)))
    return poses


def hand_mjcf(rgb: np.ndarray, parked_m: tuple[float, float, float] = (0.0, 0.0, -5.0)
              ) -> tuple[list[str], list[str]]:
    """MJCF of the hand: ``(bodies, assets)`` for ``scene.build_scene_xml``.

    Every segment is a mocap body holding one skin-toned capsule that collides with nothing;
    the bodies start parked at ``parked_m`` (below the floor, out of every view).
    """
    rgba = " ".join(f"{c:.4f}" for c in rgb) + " 1"
    assets = [f'<material name="hand_skin" rgba="{rgba}" specular="0.15" shininess="0.2"/>']
    pos = " ".join(f"{c:g}" for c in parked_m)
    common = 'material="hand_skin" contype="0" conaffinity="0"'
    half = " ".join(f"{c:g}" for c in _PALM_HALF_M)
    bodies = [f'<body name="hand_palm" mocap="true" pos="{pos}">'
              f'<geom name="hand_palm" type="ellipsoid" size="{half}" {common}/></body>']
    lengths = {f"{f.name}_{k + 1}": (f.radius_m, length)
               for f in HAND_FINGERS for k, length in enumerate(f.lengths_m)}
    lengths.update({name: (radius, end - start) for name, start, end, radius in FOREARM})
    lengths["upper_arm"] = (UPPER_ARM[1], UPPER_ARM[0])
    for name, (radius, length) in lengths.items():
        bodies.append(f'<body name="hand_{name}" mocap="true" pos="{pos}">'
                      f'<geom name="hand_{name}" type="capsule" size="{radius:g} '
                      f'{0.5 * length:g}" {common}/></body>')
    return bodies, assets


class HandRig:
    """The hand's mocap bodies in a compiled model: poses it and closes it on objects.

    Args:
        model: An ``MjModel`` built with the bodies of ``hand_mjcf``.
        forearm_elevation_rad: How far the forearm rises behind the wrist [rad].
        shoulder_m: The shoulder (3,) [m] the upper arm points to, or None (upward).
    """

    def __init__(self, model, forearm_elevation_rad: float = 0.35,
                 shoulder_m: np.ndarray | None = None) -> None:
        self.model = model
        self.forearm_elevation_rad = float(forearm_elevation_rad)
        self.shoulder_m = shoulder_m
        names = ["hand_palm"] + [f"hand_{n}" for n in hand_capsules(
            np.zeros(3), np.eye(3), np.zeros(len(FINGERS)))]
        self._mocap = {name: int(model.body(name).mocapid[0]) for name in names}

    def capsules(self, position_m: np.ndarray, rotation: np.ndarray,
                 closures: np.ndarray) -> dict[str, Capsule]:
        """``hand_capsules`` with this rig's forearm elevation."""
        return hand_capsules(position_m, rotation, closures, self.forearm_elevation_rad,
                             self.shoulder_m)

    def set_pose(self, data, position_m: np.ndarray, rotation: np.ndarray,
                 closures: np.ndarray) -> dict[str, Capsule]:
        """Write the mocap poses of the hand into ``data``; returns the capsules."""
        capsules = self.capsules(position_m, rotation, closures)
        for name, (pos, quat) in mocap_poses(position_m, rotation, capsules).items():
            data.mocap_pos[self._mocap[name]] = pos
            data.mocap_quat[self._mocap[name]] = quat
        return capsules

    def close_on_object(self, data, position_m: np.ndarray, rotation: np.ndarray,
                        object_geoms: list[int], *, step: float = 0.02,
                        clearance_m: float = 0.001) -> np.ndarray:
        """Per-finger closures (5,) at which each finger just touches the object.

        Each finger closes from ``OPEN_CLOSURE`` in steps of ``step`` and stops one step
        before its capsules come within ``clearance_m`` of any of ``object_geoms`` (geom ids);
        a finger that never touches closes fully. Leaves the trial pose in ``data``.
        """
        import mujoco

        closures = np.full(len(FINGERS), OPEN_CLOSURE)
        for f, finger in enumerate(FINGERS):
            geoms = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM,
                                       f"hand_{finger}_{k}") for k in (1, 2, 3)]
            for closure in np.arange(OPEN_CLOSURE + step, 1.0 + 1e-9, step):
                trial = closures.copy()
                trial[f] = closure
                self.set_pose(data, position_m, rotation, trial)
                mujoco.mj_kinematics(self.model, data)
                if min(mujoco.mj_geomDistance(self.model, data, g, o, 0.05, None)
                       for g in geoms for o in object_geoms) < clearance_m:
                    break
                closures[f] = closure
        return closures
