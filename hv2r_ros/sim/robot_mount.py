"""Where a robot grasps and where its wrist camera sits, for the simulated scene.

The profile names the end-effector frame but not where the fingertips close; this module does:
an entry in ``_MOUNTS`` for a robot whose end-effector frame is elsewhere (SO-100), else
defaults derived from the home pose. Robots without a gripper in their URDF (UR5e, xArm7) get
a parallel-jaw proxy drawn at the flange, so every arm can do the tabletop task.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pinocchio as pin

from hv2r_ros.core.robot_profile import RobotProfile
from hv2r_ros.sim.robot_geometry import RobotGeometry


# Robots whose end-effector frame is not between the fingertips name their grasp point here
# (end-effector frame coordinates); others use the defaults of ``robot_mount``.
_MOUNTS: dict[str, dict[str, object]] = {
    # SO-100 "gripper" frame: -y points out of the jaws, the moving jaw closes along x.
    "so100": {"approach": (0.0, -1.0, 0.0), "closing": (1.0, 0.0, 0.0),
              "grasp": (-0.008, -0.08, 0.0), "open_width_m": 0.10},
}
PROXY_REACH_M = 0.12  # flange -> grasp point of the parallel-jaw proxy on gripperless arms
PROXY_OPEN_M = 0.085
CAMERA_BACK, CAMERA_SIDE, CAMERA_AHEAD = 0.8, 1.0, 1.0  # proxy opening between the finger faces [m]


def rotation_from_vector(rotvec: Sequence[float]) -> np.ndarray:
    """Rotation matrix, shape (3, 3), of a rotation vector [rad], shape (3,)."""
    return np.asarray(pin.exp3(np.asarray(rotvec, dtype=np.float64)))


@dataclasses.dataclass(frozen=True, eq=False)
class RobotMount:
    """Where the robot grasps and where its wrist camera sits.

    Axes and points are in the end-effector frame (``ee_frame``) unless named otherwise.

    Attributes:
        ee_frame: The profile's first end-effector frame (``tool_pose`` reports it).
        approach_axis: Unit vector pointing out of the gripper, shape (3,).
        closing_axis: Unit vector along which the fingers close, shape (3,).
        grasp_offset_m: Grasp point (between the fingertips) [m], shape (3,).
        camera_link: URDF link carrying the wrist camera (``cameras.wrist.frame``).
        camera_pos_m: Wrist camera position in ``camera_link`` [m], shape (3,).
        camera_xyaxes: Wrist camera image right and up axes in ``camera_link``, shape (6,).
        proxy_gripper: Whether a parallel-jaw proxy is drawn (the URDF has no gripper).
        open_width_m: Opening between the finger faces when fully open [m].
    """

    ee_frame: str
    approach_axis: np.ndarray
    closing_axis: np.ndarray
    grasp_offset_m: np.ndarray
    camera_link: str
    camera_pos_m: np.ndarray
    camera_xyaxes: np.ndarray
    proxy_gripper: bool
    open_width_m: float

    def wrist_camera_xml(self, fovy_deg: float, offset_m: Sequence[float] = (0.0, 0.0, 0.0),
                         tilt_rad: Sequence[float] = (0.0, 0.0, 0.0)) -> str:
        """The MJCF ``<camera name="wrist">`` element, in the camera link's body.

        Args:
            fovy_deg: Vertical field of view [deg].
            offset_m: Mounting error: position offset [m] in the camera link, shape (3,).
            tilt_rad: Mounting error: rotation vector [rad] in the camera link, shape (3,).
        """
        axes = self.camera_xyaxes.reshape(2, 3) @ rotation_from_vector(tilt_rad).T
        pos = " ".join(f"{v:.6g}" for v in self.camera_pos_m + np.asarray(offset_m))
        axes = " ".join(f"{v:.6g}" for v in axes.reshape(-1))
        return f'<camera name="wrist" pos="{pos}" xyaxes="{axes}" fovy="{fovy_deg:g}"/>'

    def proxy_gripper_xml(self, names: Sequence[str]) -> list[str]:
        """Mocap bodies of the proxy: a palm at the flange and two fingers (frames = ee's)."""
        a, c = self.approach_axis, self.closing_axis
        t = np.cross(a, c)

        def box(name: str, centre: np.ndarray, half: tuple[float, float, float]) -> str:
            rot = np.column_stack([c, t, a])
            quat = pin.Quaternion(rot)
            return (f'<geom name="{name}" type="box" pos="{" ".join(f"{v:.6g}" for v in centre)}"'
                    f' quat="{quat.w:.6g} {quat.x:.6g} {quat.y:.6g} {quat.z:.6g}" '
                    f'size="{half[0]:g} {half[1]:g} {half[2]:g}" rgba="0.3 0.3 0.32 1" '
                    f'contype="0" conaffinity="0"/>')

        reach = float(np.dot(self.grasp_offset_m, a))
        palm = box(f"{names[0]}_geom", 0.03 * a, (0.06, 0.025, 0.03))
        fingers = [box(f"{name}_geom", (reach - 0.02) * a, (0.008, 0.012, 0.045))
                   for name in names[1:]]
        return [f'<body name="{names[0]}" mocap="true">{palm}</body>'] + [
            f'<body name="{name}" mocap="true">{geom}</body>'
            for name, geom in zip(names[1:], fingers)]


def robot_mount(profile: RobotProfile, geometry: RobotGeometry) -> RobotMount:
    """The grasp point and wrist camera of a profile (``_MOUNTS`` entry or defaults).

    Defaults: the approach axis is the end-effector axis pointing most nearly down at the home
    pose; the grasp point is the end-effector origin for a robot with a gripper, else
    ``PROXY_REACH_M`` along the approach axis (where the proxy's fingertips close). The camera
    sits behind and beside the grasp point, looking past the fingertips.
    """
    ee = profile.end_effector_frames[0]
    wrist = profile.cameras.get("wrist")
    camera_link = wrist.frame if wrist is not None and wrist.frame else ee
    poses = geometry.frame_poses(profile.home, None, (ee, camera_link))
    spec = _MOUNTS.get(profile.name, {})
    if "approach" in spec:
        a = np.asarray(spec["approach"], dtype=np.float64)
    else:
        down = poses[ee].rotation.T @ np.array([0.0, 0.0, -1.0])
        axis = int(np.argmax(np.abs(down)))
        a = np.eye(3)[axis] * np.sign(down[axis])
    c = np.asarray(spec.get("closing", np.eye(3)[1] if abs(a[1]) < 0.5 else np.eye(3)[0]),
                   dtype=np.float64)
    proxy = profile.gripper is None
    grasp = np.asarray(spec.get("grasp", PROXY_REACH_M * a if proxy else np.zeros(3)),
                       dtype=np.float64)
    reach = max(float(np.linalg.norm(grasp)), 0.1)
    t = np.cross(a, c)
    pos_ee = grasp - CAMERA_BACK * reach * a + CAMERA_SIDE * reach * t
    target_ee = grasp + CAMERA_AHEAD * reach * a
    link_from_ee = poses[camera_link].inverse() * poses[ee]
    pos = link_from_ee.act(pos_ee)
    forward = link_from_ee.rotation @ (target_ee - pos_ee)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, link_from_ee.rotation @ t)
    right /= np.linalg.norm(right)
    axes = np.concatenate([right, np.cross(right, forward)])
    # A prismatic two-finger gripper opens twice its joint stroke; others need an entry.
    open_width = PROXY_OPEN_M
    if profile.gripper is not None and geometry.gripper_is_prismatic:
        open_width = 2.0 * abs(profile.gripper.open_position - profile.gripper.closed_position)
    open_width = float(spec.get("open_width_m", open_width))
    return RobotMount(ee, a, c, grasp, camera_link, np.asarray(pos), axes, proxy,
                      open_width)
