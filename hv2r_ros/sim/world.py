"""The simulated tabletop world: a position-controlled robot, cubes, pads and cameras.

``SimWorld`` is kinematic: the joints follow a position controller within the robot's own
limits (``controller.py``), cubes are grasped by rule (``gripper.py``), and MuJoCo only
renders. There are no contacts: the arm passes through cubes and the table. Success is judged
by ``task.evaluate_success`` (criteria in metres; docs/sim.md).

Set ``MUJOCO_GL`` (``osmesa`` for CPU rendering, ``egl`` on a GPU machine) before importing
this module; when unset it defaults to ``osmesa``.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pinocchio as pin

os.environ.setdefault("MUJOCO_GL", "osmesa")
import mujoco  # noqa: E402 - MUJOCO_GL must be set first

from hv2r_ros.core.errors import ConfigError  # noqa: E402
from hv2r_ros.core.robot_profile import RobotProfile  # noqa: E402
from hv2r_ros.sim.controller import ControllerLimits, PositionController  # noqa: E402
from hv2r_ros.sim.gripper import KinematicGripper  # noqa: E402
from hv2r_ros.sim.robot_geometry import se3_to_pos_quat  # noqa: E402
from hv2r_ros.sim.scene import PROXY_BODIES, SceneConfig, build_scene  # noqa: E402
from hv2r_ros.sim.task import SuccessCriteria, TaskLayout, evaluate_success  # noqa: E402


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """Simulation parameters.

    Attributes:
        dt_s: Control step [s]; None takes the profile's control period.
        scene: Scene construction parameters.
        grasp_radius_m: Largest grasp-point-to-cube-centre distance that grasps [m].
        gripper_stroke_s: Time for the drawn gripper to go fully open <-> closed [s].
        joint_noise_std: Standard deviation of joint measurement noise [rad or m].
        seed: Seed of the measurement noise.
        criteria: Success thresholds [m].
    """

    dt_s: float | None = None
    scene: SceneConfig = SceneConfig()
    grasp_radius_m: float = 0.025
    gripper_stroke_s: float = 0.4
    joint_noise_std: float = 0.0
    seed: int = 0
    criteria: SuccessCriteria = SuccessCriteria()

    def __post_init__(self) -> None:
        for field in ("dt_s", "grasp_radius_m", "gripper_stroke_s", "joint_noise_std"):
            value = getattr(self, field)
            if value is None and field == "dt_s":
                continue
            positive = field in ("dt_s", "gripper_stroke_s")
            if not math.isfinite(value) or value < 0.0 or (positive and value == 0.0):
                raise ConfigError("must be finite and " + ("> 0" if positive else ">= 0"),
                                  field=f"SimConfig.{field}", value=value)


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """What the simulator knows and a real robot would not.

    Attributes:
        object_poses: Object name -> pose (x, y, z [m], qw, qx, qy, qz), shape (7,), base frame.
        grasped: Name of the grasped object, or None.
        success: Whether the task's success criteria hold now.
        target_distance_m: Table-plane distance [m] from the target object to the target pad.
        reason: ``ok`` or the first failing success criterion.
        time_s: Simulated time since the last reset [s].
    """

    object_poses: dict[str, np.ndarray]
    grasped: str | None
    success: bool
    target_distance_m: float
    reason: str = ""
    time_s: float = 0.0


class SimWorld:
    """A robot profile's arm on the tabletop, with cameras and ground truth.

    Args:
        profile: The robot (its URDF is drawn; its vendor limits bound the controller).
        config: Simulation parameters.
        layout: The scene to start in (``task.sample_layout``).
    """

    def __init__(self, profile: RobotProfile, config: SimConfig, layout: TaskLayout) -> None:
        self.profile = profile
        self.config = config
        self.dt_s = float(config.dt_s or profile.control_period_s)
        self.joint_names = list(profile.joint_names)
        self.controller = PositionController(ControllerLimits.from_profile(profile), profile.home)
        self._kin = profile.kinematic_model()
        self._ee_id = self._kin.frame_id(profile.end_effector_frames[0])
        self._rng = np.random.default_rng(config.seed)
        self._renderers: dict[tuple[int, int, bool], mujoco.Renderer] = {}
        self.model: mujoco.MjModel | None = None
        self.reset(layout)

    # --- state -------------------------------------------------------------------------
    def reset(self, layout: TaskLayout | None = None) -> None:
        """Start over: arm at the home pose, gripper open, cubes where ``layout`` puts them.

        Args:
            layout: A new layout (the scene is rebuilt), or None to restart the current one.
        """
        if layout is not None:
            self._build(layout)
        self.controller.reset(self.profile.home)
        self.gripper.reset(self.layout)
        self.time_s = 0.0
        self._measure()
        self._sync()

    def _build(self, layout: TaskLayout) -> None:
        self._close_renderers()
        self.layout = layout
        self.scene = build_scene(self.profile, layout, self.config.scene)
        self.model = mujoco.MjModel.from_xml_string(self.scene.xml)
        self.data = mujoco.MjData(self.model)
        self.mount = self.scene.mount
        self.gripper = KinematicGripper(self.mount.open_width_m, self.config.grasp_radius_m,
                                        self.config.gripper_stroke_s)
        mocap = self.model.body_mocapid
        self._link_mocap = [(int(mocap[self.model.body(b).id]), link)
                            for b, link in self.scene.link_bodies.items()]
        self._object_mocap = {o.name: int(mocap[self.model.body(o.name).id])
                              for o in layout.objects}
        self._proxy_mocap = [int(mocap[self.model.body(b).id]) for b in PROXY_BODIES
                             ] if self.mount.proxy_gripper else []
        self._frames = tuple(sorted({link for _, link in self._link_mocap}))
        self.cameras = [self.model.camera(i).name for i in range(self.model.ncam)]

    @property
    def q(self) -> np.ndarray:
        """Measured joint positions [rad or m], shape (n,), profile order (noise included)."""
        return self._q_measured.copy()

    @property
    def qd(self) -> np.ndarray:
        """Joint velocities [rad/s or m/s], shape (n,)."""
        return self.controller.qd

    @property
    def refusals(self) -> int:
        """Commands refused so far (not reset by ``reset``)."""
        return self.controller.refusals

    @property
    def last_refusal(self) -> str:
        """Why the last refused command was refused ('' if none was)."""
        return self.controller.last_refusal

    @property
    def gripper_closure(self) -> float:
        """Drawn gripper closure in [0, 1] (0 open, 1 closed)."""
        return self.gripper.closure

    @property
    def grasp_offset_m(self) -> np.ndarray:
        """Grasp point in the end-effector frame [m], shape (3,) (0 when the frame is there)."""
        return self.mount.grasp_offset_m.copy()

    def _ee_pose(self) -> pin.SE3:
        return self._kin.frame_pose(self.controller.q, self._ee_id)

    def tool_pose(self) -> np.ndarray:
        """End-effector pose in the base frame: (x, y, z [m], qx, qy, qz, qw), shape (7,).

        The quaternion order is the project's Cartesian convention (scalar last), as the
        safety filter and the IK take it.
        """
        pose = self._ee_pose()
        quat = pin.Quaternion(pose.rotation)
        return np.array([*pose.translation, quat.x, quat.y, quat.z, quat.w])

    def grasp_point(self) -> np.ndarray:
        """Grasp point (between the fingertips) in the base frame [m], shape (3,)."""
        return np.asarray(self._ee_pose().act(self.mount.grasp_offset_m))

    # --- stepping -----------------------------------------------------------------------
    def step(self, q_target: np.ndarray | None, gripper_closed: float | None = None,
             dt_s: float | None = None) -> bool:
        """Command a joint target and a gripper state, then advance time.

        Args:
            q_target: Joint target [rad or m], shape (n,), profile order; None keeps the
                current target. A non-finite, wrong-length or out-of-range target is refused
                (the previous target stays; ``refusals`` and ``last_refusal`` record it).
            gripper_closed: Gripper command in [0, 1] (>= 0.5 closes); None keeps the current
                one; a non-finite or out-of-range value is refused likewise.
            dt_s: Time to advance [s]; None advances one ``dt_s``. Longer spans are split into
                steps no longer than ``self.dt_s``.

        Returns:
            Whether every command given was accepted.

        Raises:
            ValueError: ``dt_s`` is not finite and positive (a caller's bug, not a command).
        """
        accepted = True
        if q_target is not None:
            accepted = self.controller.command(q_target)
        if gripper_closed is not None:
            reason = self.gripper.set_command(gripper_closed)
            if reason:
                self.controller.refusals += 1
                self.controller.last_refusal = reason
                accepted = False
        span = self.dt_s if dt_s is None else float(dt_s)
        if not (math.isfinite(span) and span > 0.0):
            raise ValueError(f"dt_s must be finite and > 0, got {dt_s!r}")
        steps = max(1, math.ceil(span / self.dt_s - 1e-9))
        for _ in range(steps):
            self._advance(span / steps)
        self._measure()
        self._sync()
        return accepted

    def _advance(self, dt_s: float) -> None:
        self.controller.step(dt_s)
        self.time_s += dt_s
        if self.gripper.grasped is not None:
            self.gripper.carry(self._ee_pose())
        self.gripper.step(dt_s, self._ee_pose, self.grasp_point)

    def _measure(self) -> None:
        q = self.controller.q
        if self.config.joint_noise_std > 0.0:
            q = q + self._rng.normal(0.0, self.config.joint_noise_std, q.shape)
        self._q_measured = q

    def _sync(self) -> None:
        """Pose every mocap body from the current state and update MuJoCo's kinematics."""
        q = self.controller.q
        gripper = None
        if self.profile.gripper is not None:
            g = self.profile.gripper
            gripper = g.open_position + (g.closed_position - g.open_position) * \
                self.gripper.closure
        poses = self.scene.geometry.frame_poses(q, gripper, self._frames)
        for mocap, link in self._link_mocap:
            self.data.mocap_pos[mocap], self.data.mocap_quat[mocap] = se3_to_pos_quat(poses[link])
        ee = self._ee_pose()
        if self._proxy_mocap:
            half = 0.5 * self.mount.open_width_m * (1.0 - self.gripper.closure) + 0.008
            offsets = (0.0, half, -half)
            for mocap, offset in zip(self._proxy_mocap, offsets):
                pose = ee * pin.SE3(np.eye(3), offset * self.mount.closing_axis)
                self.data.mocap_pos[mocap], self.data.mocap_quat[mocap] = se3_to_pos_quat(pose)
        self.gripper.carry(ee)
        for name, mocap in self._object_mocap.items():
            pos, quat = se3_to_pos_quat(self.gripper.objects[name])
            self.data.mocap_pos[mocap], self.data.mocap_quat[mocap] = pos, quat
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)

    # --- observation --------------------------------------------------------------------
    def render(self, camera: str, width: int = 224, height: int = 224) -> np.ndarray:
        """Render a camera: (height, width, 3) uint8 RGB.

        Raises:
            ValueError: unknown camera, or a size beyond the scene's offscreen buffer.
        """
        if camera not in self.cameras:
            raise ValueError(f"unknown camera {camera!r}; cameras: {', '.join(self.cameras)}")
        scene = self.config.scene
        if not (0 < width <= scene.offscreen_width and 0 < height <= scene.offscreen_height):
            raise ValueError(f"render size {width}x{height} beyond the offscreen buffer "
                             f"{scene.offscreen_width}x{scene.offscreen_height} "
                             "(SceneConfig.offscreen_width/height)")
        return self._render(camera, width, height, segmentation=False)

    def _render(self, camera: str, width: int, height: int, *, segmentation: bool
                ) -> np.ndarray:
        key = (width, height, segmentation)
        renderer = self._renderers.get(key)
        if renderer is None:
            renderer = mujoco.Renderer(self.model, height, width)
            if segmentation:
                renderer.enable_segmentation_rendering()
            self._renderers[key] = renderer
        renderer.update_scene(self.data, camera)
        return renderer.render()

    def object_pixels(self, camera: str, width: int = 224, height: int = 224) -> dict[str, int]:
        """How many pixels of each object a camera sees (segmentation render), by name."""
        if camera not in self.cameras:
            raise ValueError(f"unknown camera {camera!r}; cameras: {', '.join(self.cameras)}")
        ids = self._render(camera, width, height, segmentation=True)
        geom_ids = ids[..., 0][ids[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)]
        counts = np.bincount(geom_ids, minlength=self.model.ngeom)
        return {o.name: int(counts[self.model.geom(o.name).id]) for o in self.layout.objects}

    def ground_truth(self) -> GroundTruth:
        """Object poses, the grasped object and the task's success, now."""
        poses = {}
        for name, pose in self.gripper.objects.items():
            pos, quat = se3_to_pos_quat(pose)
            poses[name] = np.concatenate([pos, quat])
        grasped = self.gripper.grasped
        report = evaluate_success(self.layout, {k: v[:3] for k, v in poses.items()}, grasped,
                                  self.config.criteria)
        return GroundTruth(poses, grasped, report.success, report.target_distance_m,
                           report.reason, self.time_s)

    def _close_renderers(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    def close(self) -> None:
        """Release the renderers (their GL contexts); the world cannot render afterwards."""
        self._close_renderers()

    def __enter__(self) -> "SimWorld":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
