"""Human demonstration videos: a hand proxy does the task of a layout, the robot absent.

The hand (``hv2r_ros.sim.hand``) comes into view from the side of the table opposite the robot,
where a person would stand, picks up the layout's target cube, carries it to the target pad,
sets it down, lets go and leaves the view; the last frames show the resulting scene alone.
The motion (``hv2r_ros.sim.human_motion``), the skin tone, the person's shoulder position, the
hand's pitch and the spot on the pad are drawn from the seed. The hand starts and ends at the
nearest point, toward the person, from which no part of it is in the camera's view. The fingers
close until they touch the cube; the cube then moves rigidly with the hand until the release
(no physics) and is set down on the table plane.

``render_human_demo`` writes the MP4 and a JSON file beside it (``HumanDemoInfo``): per-frame
phase labels (monotone, ``PHASES``), cube poses, whether the hand is in view, and the keyframes
where the scene settles (start, grasped, released, end), the ground truth for evaluating
prompts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "osmesa")  # as sim.world: CPU rendering unless told
import mujoco  # noqa: E402 - MUJOCO_GL must be set first

from hv2r_ros.core.errors import ConfigError  # noqa: E402
from hv2r_ros.sim.hand import (  # noqa: E402
    OPEN_CLOSURE, Capsule, HandRig, hand_mjcf, hand_rotation, sample_skin_rgb,
)
from hv2r_ros.sim.human_motion import PHASES, HumanMotion, plan_human_motion  # noqa: E402
from hv2r_ros.sim.scene import SceneConfig, build_scene_xml  # noqa: E402
from hv2r_ros.sim.task import TaskLayout  # noqa: E402
from hv2r_ros.sim.video_io import Mp4Writer  # noqa: E402

__all__ = ["GRASP_OFFSET_M", "PHASES", "CameraView", "HumanDemoInfo", "out_of_view",
           "render_human_demo", "render_scene_state"]

#: Where the cube's centre sits in the hand frame when held (between thumb and fingertips) [m].
GRASP_OFFSET_M = np.array([0.030, 0.0, -0.052])


class CameraView:
    """Which world points a named camera of a compiled model sees.

    Args:
        model, data: The scene (``data`` after ``mj_forward``, so camera poses are set).
        camera: Camera name.
        size: (width, height) [px] of the image.
    """

    def __init__(self, model, data, camera: str, size: tuple[int, int]) -> None:
        cam = model.camera(camera).id
        self.position = data.cam_xpos[cam].copy()
        self.axes = data.cam_xmat[cam].reshape(3, 3).copy()  # columns: right, up, backward
        self.tan_y = math.tan(math.radians(0.5 * float(model.cam_fovy[cam])))
        self.tan_x = self.tan_y * size[0] / size[1]
        self.width, self.height = size

    def pixel(self, point_m: np.ndarray) -> tuple[float, float]:
        """Image coordinates (column, row) [px] of a world point in front of the camera."""
        p = self.axes.T @ (np.asarray(point_m, dtype=np.float64) - self.position)
        depth = -p[2]
        u = 0.5 * self.width * (1.0 + p[0] / (depth * self.tan_x))
        v = 0.5 * self.height * (1.0 - p[1] / (depth * self.tan_y))
        return float(u), float(v)

    def sees(self, capsules: list[Capsule], margin_m: float = 0.0) -> bool:
        """True if any part of the capsules (each inflated by ``margin_m``) is in the image."""
        for capsule in capsules:
            radius = capsule.radius + margin_m
            for s in np.linspace(0.0, 1.0, 5):
                p = self.axes.T @ (capsule.start + s * (capsule.end - capsule.start)
                                   - self.position)
                depth = -p[2]
                if depth + radius > 1e-3 and (abs(p[0]) - radius <= depth * self.tan_x and
                                              abs(p[1]) - radius <= depth * self.tan_y):
                    return True
        return False


def out_of_view(view: CameraView, capsules_at, origin_m: np.ndarray,
                directions: list[np.ndarray], margin_m: float = 0.03,
                max_distance_m: float = 4.0) -> np.ndarray:
    """The nearest grasp point along one of ``directions`` from ``origin_m`` at which the
    hand (``capsules_at(point) -> list[Capsule]``) is out of the camera's view."""
    best = None
    for direction in directions:
        direction = direction / np.linalg.norm(direction)
        for distance in np.arange(0.1, max_distance_m, 0.02):
            point = origin_m + distance * direction
            if not view.sees(capsules_at(point), margin_m):
                if best is None or distance < best[0]:
                    best = (distance, point)
                break
    if best is None:
        raise ValueError("the hand cannot leave this camera's view: use another camera")
    return best[1]


@dataclasses.dataclass(frozen=True)
class HumanDemoInfo:
    """Ground truth of a rendered demonstration (saved as JSON beside the MP4).

    Attributes:
        video: The MP4 file.
        camera: Camera it was rendered from.
        size: (width, height) [px].
        fps: Frame rate [Hz]; frame i shows time i / fps.
        seed: Seed of the motion and the skin tone.
        target_object, target_pad: What the hand moved, and where to.
        skin_rgb: The hand's colour (3,) in [0, 1].
        phases: Phase label of each frame (``PHASES``, non-decreasing order).
        object_poses: Target cube pose per frame, ``[x y z qw qx qy qz]`` [m].
        hand_in_view: Whether any part of the hand or forearm is in the image, per frame.
        keyframes: ``{"label", "time_s", "frame"}`` where the scene settles: ``start`` (first
            frame), ``grasped`` (fingers closed), ``released`` (fingers open after the place),
            ``end`` (first frame with the hand out of view after the place).
        settled_intervals_s: (start, end) [s] intervals in which nothing moves but the tremor.
    """

    video: str
    camera: str
    size: tuple[int, int]
    fps: float
    seed: int
    target_object: str
    target_pad: str
    skin_rgb: tuple[float, float, float]
    phases: tuple[str, ...]
    object_poses: np.ndarray
    hand_in_view: tuple[bool, ...]
    keyframes: tuple[dict, ...]
    settled_intervals_s: tuple[tuple[float, float], ...]

    @property
    def frame_count(self) -> int:
        """Number of frames."""
        return len(self.phases)

    def save(self, path: str | Path) -> None:
        """Write the info as JSON."""
        data = dataclasses.asdict(self)
        data["object_poses"] = np.round(self.object_poses, 6).tolist()
        data["frame_count"] = self.frame_count
        Path(path).write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "HumanDemoInfo":
        """Read an info JSON written by ``save``."""
        data = json.loads(Path(path).read_text())
        data.pop("frame_count", None)
        data["object_poses"] = np.asarray(data["object_poses"], dtype=np.float64)
        for key in ("size", "skin_rgb", "phases", "hand_in_view", "keyframes"):
            data[key] = tuple(data[key])
        data["settled_intervals_s"] = tuple(map(tuple, data["settled_intervals_s"]))
        return cls(**data)


def render_human_demo(layout: TaskLayout, out_path: str | Path, *, camera: str = "overhead",
                      size: tuple[int, int] = (224, 224), fps: float = 15.0, seed: int = 0,
                      scene_config=None) -> HumanDemoInfo:
    """Render the demonstration of ``layout`` to an MP4 and its ground truth to JSON.

    Args:
        layout: The scene; the hand moves ``layout.target_object`` onto ``layout.target_pad``.
        out_path: The MP4 file; the JSON goes to the same path with ``.json``.
        camera: A scene camera without the robot: ``overhead``, ``side`` or ``front``.
        size: (width, height) [px].
        fps: Frame rate [Hz].
        seed: Seed of the motion and the skin tone (the layout has its own).
        scene_config: ``hv2r_ros.sim.scene.SceneConfig``; its offscreen buffer is enlarged to
            ``size`` when smaller.

    Returns:
        The info that was written to JSON.

    Raises:
        ConfigError: Unknown camera, or a size or fps that is not positive.
    """
    width, height = int(size[0]), int(size[1])
    rng = np.random.default_rng(seed)
    skin = sample_skin_rgb(rng)
    model = _scene_model(layout, camera, (width, height), fps, scene_config, hand_mjcf(skin))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    view = CameraView(model, data, camera, (width, height))
    rotation, pick, place, shoulders = _demo_geometry(layout, rng)
    rig = HandRig(model, rng.uniform(0.3, 0.5), shoulders[0])

    def capsules_at(point, closures=np.full(5, OPEN_CLOSURE)):
        palm = point - rotation @ GRASP_OFFSET_M
        return [Capsule(palm, palm, 0.05), *rig.capsules(palm, rotation, closures).values()]

    up = np.array([0.0, 0.0, 1.0])
    start, end = (out_of_view(view, capsules_at, origin, [shoulder - origin, up])
                  for origin, shoulder in ((pick, shoulders[0]), (place, shoulders[1])))
    motion = plan_human_motion(rng, pick, place, start, end)
    obj = layout.object(layout.target_object)
    closed = rig.close_on_object(data, pick - rotation @ GRASP_OFFSET_M, rotation,
                                 [model.geom(obj.name).id])
    cube = model.body(obj.name).mocapid[0]
    quat = data.mocap_quat[cube].copy()
    carry_s, place_s = motion.phase_times("carry")[0], motion.phase_times("place")[0]
    placed = motion.at(place_s).grasp_point_m
    placed[2] = pick[2]

    frames = int(math.floor(motion.duration_s * fps)) + 1
    phases, poses, in_view = [], np.empty((frames, 7)), []
    renderer = mujoco.Renderer(model, height, width)
    try:
        with Mp4Writer(out_path, (width, height), fps) as writer:
            for i in range(frames):
                state = motion.at(i / fps)
                closures = OPEN_CLOSURE + state.grip * (closed - OPEN_CLOSURE)
                palm = state.grasp_point_m - rotation @ GRASP_OFFSET_M
                capsules = rig.set_pose(data, palm, rotation, closures)
                if i / fps < carry_s:
                    position = pick
                elif state.attached:
                    position = np.maximum(state.grasp_point_m, [-np.inf, -np.inf, pick[2]])
                else:
                    position = placed
                data.mocap_pos[cube] = position
                mujoco.mj_kinematics(model, data)
                mujoco.mj_camlight(model, data)
                renderer.update_scene(data, camera=camera)
                writer.write(renderer.render())
                phases.append(state.phase)
                poses[i] = np.concatenate([position, quat])
                in_view.append(view.sees([Capsule(palm, palm, 0.05), *capsules.values()]))
    finally:
        renderer.close()
    info = HumanDemoInfo(
        str(out_path), camera, (width, height), float(fps), int(seed), layout.target_object,
        layout.target_pad, tuple(float(c) for c in skin), tuple(phases), poses, tuple(in_view),
        _keyframes(motion, fps, frames), _settled(motion))
    info.save(Path(out_path).with_suffix(".json"))
    return info


def render_scene_state(layout: TaskLayout, *, camera: str = "overhead",
                       size: tuple[int, int] = (224, 224),
                       object_positions: dict[str, np.ndarray] | None = None,
                       scene_config=None) -> np.ndarray:
    """Render the scene of ``layout`` without robot or hand: (height, width, 3) uint8 RGB.

    ``object_positions`` (name -> centre (3,) [m]) moves cubes from their layout positions,
    e.g. to the last frame's poses of a demonstration (the goal image it should end on).
    """
    model = _scene_model(layout, camera, size, 1.0, scene_config, ((), ()))
    data = mujoco.MjData(model)
    for name, position in (object_positions or {}).items():
        data.mocap_pos[model.body(name).mocapid[0]] = position
    mujoco.mj_kinematics(model, data)
    mujoco.mj_camlight(model, data)
    renderer = mujoco.Renderer(model, int(size[1]), int(size[0]))
    try:
        renderer.update_scene(data, camera=camera)
        return renderer.render()
    finally:
        renderer.close()


def _scene_model(layout: TaskLayout, camera: str, size: tuple[int, int], fps: float,
                 scene_config, hand: tuple[list[str], list[str]]):
    """The robot-less scene with the hand's bodies and assets, checked for the camera."""
    width, height = int(size[0]), int(size[1])
    if width <= 0 or height <= 0 or not fps > 0:
        raise ConfigError("size and fps must be positive", field="size, fps", value=(size, fps))
    config = scene_config or SceneConfig()
    config = dataclasses.replace(config, offscreen_width=max(config.offscreen_width, width),
                                 offscreen_height=max(config.offscreen_height, height))
    model = mujoco.MjModel.from_xml_string(build_scene_xml(None, layout, config, *hand))
    cameras = [model.camera(i).name for i in range(model.ncam)]
    if camera not in cameras:
        raise ConfigError("no such camera in the scene", field="camera", value=camera,
                          choices=cameras)
    return model


def _demo_geometry(layout: TaskLayout, rng: np.random.Generator):
    """Hand rotation, pick and place points (3,) [m] and two shoulder positions (3,) [m].

    The person stands across the table from the robot (the side away from the base) and uses
    the right hand; the cube is set down within 30 % of the pad's half side of its centre.
    """
    obj, pad = layout.object(layout.target_object), layout.pad(layout.target_pad)
    items = np.array([o.position_m[:2] for o in layout.objects] + [p.position_m for p in
                                                                    layout.pads])
    centre = items.mean(axis=0)
    away = centre / max(float(np.linalg.norm(centre)), 1e-9)
    right = np.array([-away[1], away[0]])  # the right hand side of a person facing -away
    reach = float(np.max(np.linalg.norm(items - centre, axis=1)))
    shoulders = [np.array([*(centre + away * (reach + rng.uniform(0.35, 0.45))
                             + right * rng.uniform(0.1, 0.25)), rng.uniform(0.4, 0.5)])
                 for _ in range(2)]
    pick = np.asarray(obj.position_m, dtype=np.float64)
    offset = np.clip(rng.normal(0.0, 0.004, 2), -0.3 * pad.half_size_m, 0.3 * pad.half_size_m)
    place = np.array([*(np.asarray(pad.position_m) + offset), pick[2]])
    heading = pick[:2] - shoulders[0][:2]
    rotation = hand_rotation(math.atan2(heading[1], heading[0]), rng.uniform(0.15, 0.35))
    return rotation, pick, place, shoulders


def _keyframes(motion: HumanMotion, fps: float, frames: int) -> tuple[dict, ...]:
    def key(label, t_s, after=False):
        frame = min(frames - 1, int(math.ceil(t_s * fps - 1e-9) if after else
                                    math.floor(t_s * fps + 1e-9)))
        return {"label": label, "time_s": round(frame / fps, 6), "frame": frame}

    return (key("start", 0.0), key("grasped", motion.phase_times("grasp")[1]),
            key("released", motion.phase_times("place")[1]),
            key("end", motion.phase_times("withdraw")[1], after=True))


def _settled(motion: HumanMotion) -> tuple[tuple[float, float], ...]:
    return ((0.0, motion.phase_times("reach")[0]), motion.phase_times("grasp"),
            motion.phase_times("place"), (motion.phase_times("withdraw")[1], motion.duration_s))
