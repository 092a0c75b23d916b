"""The MuJoCo tabletop scene (MJCF): table, cubes, target pads, lights, cameras and the robot.

MuJoCo renders a kinematic world here; nothing is simulated by its physics. Every robot link,
every cube and the proxy gripper are mocap bodies whose poses ``SimWorld`` sets each step
(links from pinocchio forward kinematics). All geoms have collisions off.

Frames: the robot base frame is the world frame, the table top is the plane z = 0.
Names in the MJCF: cubes are bodies named after the layout's objects (``red_cube``), pads are
geoms named after its pads (``white_pad``), robot bodies start with ``robot_``, a human-demo
renderer adds bodies starting with ``hand_``. Cameras: ``overhead`` (looking down on the
workspace, image up = away from the robot), ``side`` and ``front`` (oblique views, for
viewpoint-gap tests), and, with a robot, ``wrist`` (on the profile's ``cameras.wrist.frame``).

Render cost: shadows and multisampling are off and meshes are decimated to
``SceneConfig.max_triangles`` each, because OSMesa rasterises on the CPU.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np

from hv2r_ros.core.robot_profile import RobotProfile
from hv2r_ros.sim.robot_geometry import LinkGeom, RobotGeometry
from hv2r_ros.sim.robot_mount import RobotMount, robot_mount, rotation_from_vector
from hv2r_ros.sim.layout import Appearance, TaskLayout

ROBOT_PREFIX = "robot_"
PROXY_BODIES = ("robot_proxy_palm", "robot_proxy_finger_a", "robot_proxy_finger_b")


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """Scene construction parameters.

    Attributes:
        max_triangles: Triangle budget per robot mesh after decimation.
        offscreen_width: Largest render width [px] (MuJoCo's offscreen buffer).
        offscreen_height: Largest render height [px].
        overhead_fovy_deg: Vertical field of view of the overhead camera [deg].
        view_fovy_deg: Vertical field of view of the side and front cameras [deg].
        wrist_fovy_deg: Vertical field of view of the wrist camera [deg].
        robot_rgba: Colour of the robot's links.
        frame_xy_m: ``((x_min, y_min), (x_max, y_max))`` [m] the overhead, side and front
            cameras frame; None: the robot's workspace box, or the layout's items without a
            robot. Human demonstrations set it to the robot's workspace box so that their
            overhead view is the robot's overhead view.
    """

    max_triangles: int = 600
    offscreen_width: int = 640
    offscreen_height: int = 480
    overhead_fovy_deg: float = 45.0
    view_fovy_deg: float = 45.0
    wrist_fovy_deg: float = 70.0
    robot_rgba: tuple[float, float, float, float] = (0.85, 0.85, 0.88, 1.0)
    frame_xy_m: tuple[tuple[float, float], tuple[float, float]] | None = None

    @classmethod
    def framing(cls, workspace, **overrides) -> "SceneConfig":
        """A config whose cameras frame ``workspace``'s table-plane extent (a CartesianLimits)."""
        box = (tuple(map(float, workspace.box_min[:2])), tuple(map(float, workspace.box_max[:2])))
        return cls(frame_xy_m=box, **overrides)


@dataclasses.dataclass(frozen=True)
class Scene:
    """A built scene.

    Attributes:
        xml: The MJCF document.
        geometry: Drawable robot links (None without a robot).
        mount: Grasp point and wrist camera mount of the robot (None without a robot).
        link_bodies: MJCF body name -> URDF link name, for every robot link body.
    """

    xml: str
    geometry: RobotGeometry | None
    mount: RobotMount | None
    link_bodies: dict[str, str]


def _f(values: Sequence[float] | np.ndarray) -> str:
    return " ".join(f"{float(v):.6g}" for v in np.asarray(values).reshape(-1))


def look_at_axes(position: np.ndarray, target: np.ndarray, up_hint: np.ndarray) -> np.ndarray:
    """MJCF ``xyaxes`` (image right, image up; shape (6,)) of a camera looking at ``target``."""
    forward = np.asarray(target, float) - np.asarray(position, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up_hint)
    if np.linalg.norm(right) < 1e-6:  # looking along the hint: any perpendicular will do
        right = np.cross(forward, [1.0, 0.0, 0.0] if abs(forward[0]) < 0.9 else [0, 1.0, 0])
    right /= np.linalg.norm(right)
    return np.concatenate([right, np.cross(right, forward)])


def _camera(name: str, position: np.ndarray, target: np.ndarray, up_hint: np.ndarray,
            fovy_deg: float, layout: TaskLayout) -> str:
    offset = np.asarray(layout.appearance.camera_offsets_m.get(name, (0.0, 0.0, 0.0)))
    tilt = rotation_from_vector(layout.appearance.camera_tilts_rad.get(name, (0.0, 0.0, 0.0)))
    axes = look_at_axes(position, target, up_hint).reshape(2, 3) @ tilt.T
    return (f'<camera name="{name}" pos="{_f(np.asarray(position) + offset)}" '
            f'xyaxes="{_f(axes)}" fovy="{fovy_deg:g}"/>')


def _workspace_cameras(profile: RobotProfile | None, layout: TaskLayout,
                       config: SceneConfig) -> list[str]:
    """Overhead, side and front cameras framing the layout (and the workspace box)."""
    if config.frame_xy_m is not None:
        lo, hi = (np.asarray(v, dtype=np.float64) for v in config.frame_xy_m)
    elif profile is not None:
        lo, hi = profile.workspace.box_min[:2], profile.workspace.box_max[:2]
    else:
        points = np.array([o.position_m[:2] for o in layout.objects]
                          + [p.position_m for p in layout.pads])
        lo, hi = points.min(axis=0) - 0.1, points.max(axis=0) + 0.1
    centre = 0.5 * (lo + hi)
    away = centre / np.linalg.norm(centre) if np.linalg.norm(centre) > 1e-6 else np.array(
        [1.0, 0.0])
    across = np.array([-away[1], away[0]])
    # Fit the box's larger side (plus 10 cm) in the vertical field of view.
    extent = float(max(hi - lo)) + 0.1
    height = 0.5 * extent / np.tan(np.radians(0.5 * config.overhead_fovy_deg))
    target = np.array([*centre, 0.0])
    up = np.array([0.0, 0.0, 1.0])
    return [
        _camera("overhead", np.array([*centre, height]), target, np.array([*away, 0.0]),
                config.overhead_fovy_deg, layout),
        _camera("side", np.array([*(centre - 0.9 * extent * across), 0.6 * extent]), target,
                up, config.view_fovy_deg, layout),
        _camera("front", np.array([*(centre + 1.0 * extent * away), 0.7 * extent]), target,
                up, config.view_fovy_deg, layout),
    ]


def _geom_xml(name: str, geom: LinkGeom, rgba: str, mesh: str | None) -> str:
    common = f'name="{name}" rgba="{rgba}" contype="0" conaffinity="0"'
    if geom.kind == "capsule":
        return f'<geom {common} type="capsule" size="{_f(geom.size)}" fromto="{_f(geom.fromto)}"/>'
    place = f'pos="{_f(geom.pos)}" quat="{_f(geom.quat)}"'
    if geom.kind == "mesh":
        return f'<geom {common} type="mesh" mesh="{mesh}" {place}/>'
    return f'<geom {common} type="{geom.kind}" size="{_f(geom.size)}" {place}/>'


def _robot_xml(geometry: RobotGeometry, mount: RobotMount, appearance: Appearance,
               config: SceneConfig) -> tuple[list[str], list[str], dict[str, str]]:
    """Assets, bodies and the body -> link map of the robot."""
    assets, bodies, link_bodies = [], [], {}
    rgba = _f(config.robot_rgba)
    wrist_link = mount.camera_link
    camera = mount.wrist_camera_xml(config.wrist_fovy_deg,
                                    appearance.camera_offsets_m.get("wrist", (0.0, 0.0, 0.0)),
                                    appearance.camera_tilts_rad.get("wrist", (0.0, 0.0, 0.0)))
    for link, geoms in geometry.link_geoms.items():
        body = f"{ROBOT_PREFIX}{link}"
        link_bodies[body] = link
        parts = []
        for i, geom in enumerate(geoms):
            mesh = None
            if geom.kind == "mesh":
                mesh = f"{body}_{i}"
                assets.append(f'<mesh name="{mesh}" vertex="{_f(geom.vertices)}" '
                              f'face="{" ".join(map(str, geom.faces.reshape(-1)))}"/>')
            parts.append(_geom_xml(f"{body}_{i}", geom, rgba, mesh))
        if link == wrist_link:
            parts.append(camera)
        bodies.append(f'<body name="{body}" mocap="true">{"".join(parts)}</body>')
    if wrist_link not in geometry.link_geoms:
        link_bodies[f"{ROBOT_PREFIX}{wrist_link}"] = wrist_link
        bodies.append(f'<body name="{ROBOT_PREFIX}{wrist_link}" mocap="true">{camera}</body>')
    if mount.proxy_gripper:
        bodies += mount.proxy_gripper_xml(PROXY_BODIES)
    return assets, bodies, link_bodies


@functools.lru_cache(maxsize=8)
def robot_geometry(profile: RobotProfile, max_triangles: int) -> RobotGeometry:
    """The profile's drawable geometry (cached: mesh decimation takes ~0.2 s per robot)."""
    return RobotGeometry(profile, max_triangles=max_triangles)


def build_scene(profile: RobotProfile | None, layout: TaskLayout,
                config: SceneConfig | None = None, extra_bodies: Sequence[str] = (),
                extra_assets: Sequence[str] = ()) -> Scene:
    """Build the MJCF scene of a layout, with the robot of ``profile`` or none.

    Args:
        profile: The robot, or None for a scene without one (human demonstrations).
        layout: Objects, pads, lighting and camera jitter.
        config: Scene parameters; defaults to ``SceneConfig()``.
        extra_bodies: MJCF ``<body>`` elements (strings) added to the world body, e.g. a
            human hand proxy (names prefixed ``hand_``); mocap bodies are posed by the caller.
        extra_assets: MJCF elements (strings) added to ``<asset>`` (meshes, materials).

    Returns:
        The scene; ``scene.xml`` compiles with ``mujoco.MjModel.from_xml_string``.
    """
    config = config or SceneConfig()
    app = layout.appearance
    assets = list(extra_assets)
    bodies: list[str] = []
    geometry, mount, link_bodies = None, None, {}
    if profile is not None:
        geometry = robot_geometry(profile, config.max_triangles)
        mount = robot_mount(profile, geometry)
        robot_assets, robot_bodies, link_bodies = _robot_xml(geometry, mount, app, config)
        assets += robot_assets
        bodies += robot_bodies
    for obj in layout.objects:
        half = 0.5 * obj.size_m
        bodies.append(
            f'<body name="{obj.name}" mocap="true" pos="{_f(obj.position_m)}" '
            f'quat="{_f([np.cos(obj.yaw_rad / 2), 0, 0, np.sin(obj.yaw_rad / 2)])}">'
            f'<geom name="{obj.name}" type="box" size="{_f([half] * 3)}" '
            f'rgba="{_f(obj.rgba)}" contype="0" conaffinity="0"/></body>')
    pads = [f'<geom name="{pad.name}" type="box" pos="{_f([*pad.position_m, 0.0005])}" '
            f'size="{_f([pad.half_size_m, pad.half_size_m, 0.0005])}" rgba="{_f(pad.rgba)}" '
            f'contype="0" conaffinity="0"/>' for pad in layout.pads]
    # The table spans the workspace cameras' view and the robot's base.
    points = np.array([[0.0, 0.0]] + [o.position_m[:2] for o in layout.objects]
                      + [p.position_m for p in layout.pads])
    if profile is not None:
        points = np.vstack([points, profile.workspace.box_min[:2], profile.workspace.box_max[:2]])
    t_lo, t_hi = points.min(axis=0) - 0.25, points.max(axis=0) + 0.25
    table = (f'<geom name="table" type="box" pos="{_f([*(0.5 * (t_lo + t_hi)), -0.02])}" '
             f'size="{_f([*(0.5 * (t_hi - t_lo)), 0.02])}" rgba="{_f(app.table_rgba)}" '
             f'contype="0" conaffinity="0"/>')
    ambient, diffuse = app.ambient, app.light_diffuse
    lights = (
        f'<light name="key" directional="true" castshadow="false" '
        f'dir="{_f(app.light_direction)}" diffuse="{_f([diffuse] * 3)}" specular="0.1 0.1 0.1"/>'
        f'<light name="fill" directional="true" castshadow="false" dir="-0.3 0.4 -0.8" '
        f'diffuse="{_f([0.2] * 3)}" specular="0 0 0"/>')
    cameras = _workspace_cameras(profile, layout, config)
    return Scene(
        xml=f"""<mujoco model="hv2r_tabletop">
<compiler angle="radian" inertiafromgeom="false"/>
<statistic extent="2" center="0.4 0 0.2"/>
<visual>
  <global offwidth="{config.offscreen_width}" offheight="{config.offscreen_height}"/>
  <quality shadowsize="0" offsamples="0"/>
  <headlight ambient="{_f([ambient] * 3)}" diffuse="0.1 0.1 0.1" specular="0 0 0"/>
</visual>
<asset>{"".join(assets)}</asset>
<worldbody>
<geom name="floor" type="plane" pos="0 0 -0.75" size="5 5 0.1" rgba="0.45 0.45 0.47 1"
      contype="0" conaffinity="0"/>
{table}{"".join(pads)}{lights}{"".join(cameras)}
{"".join(bodies)}{"".join(extra_bodies)}
</worldbody>
</mujoco>""",
        geometry=geometry, mount=mount, link_bodies=link_bodies)


def build_scene_xml(profile: RobotProfile | None, layout: TaskLayout,
                    config: SceneConfig | None = None, extra_bodies: Sequence[str] = (),
                    extra_assets: Sequence[str] = ()) -> str:
    """The MJCF document of ``build_scene`` (same arguments)."""
    return build_scene(profile, layout, config, extra_bodies, extra_assets).xml
