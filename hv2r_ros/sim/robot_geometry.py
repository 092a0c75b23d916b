"""The robot's links as drawable geometry, posed by pinocchio forward kinematics.

The MuJoCo scene is a renderer of a kinematic world: every URDF link with geometry becomes one
mocap body whose pose is set from forward kinematics each step. A link is drawn from its
``<collision>`` geometry (the low-poly meshes), else from its ``<visual>`` geometry, else as
capsules from its origin to its child joints' origins; a mesh that is missing or not an STL
also becomes capsules. Meshes are decimated by vertex clustering to at most
``max_triangles`` triangles each, since OSMesa renders on the CPU and its cost grows with the
triangle count.

The full URDF model is used (not the profile's reduced one) so that the gripper's finger links
move with the gripper opening: the profile's gripper joint takes the opening, joints that
``<mimic>`` it follow, every other non-commanded joint sits at its ``locked_joints`` value.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pinocchio as pin

from hv2r_ros.core.robot_profile import RobotProfile
from hv2r_ros.core.urdf import resolve_file_path

CAPSULE_RADIUS_M = 0.03  # fallback link thickness; scaled down for small robots (see below)


@dataclasses.dataclass(frozen=True)
class LinkGeom:
    """One drawable geom of a link, in the link frame.

    Attributes:
        kind: MJCF geom type: ``mesh``, ``box``, ``cylinder``, ``sphere`` or ``capsule``.
        size: MJCF ``size`` [m] (half-extents for a box; radius, half-length for a cylinder;
            radius for a sphere or a capsule).
        pos: Position in the link frame [m], shape (3,).
        quat: Orientation in the link frame, (w, x, y, z).
        vertices: Mesh vertices [m], shape (V, 3), scale applied; meshes only.
        faces: Mesh triangles (vertex indices), shape (F, 3); meshes only.
        fromto: Capsule end points in the link frame [m], shape (6,); capsules only.
    """

    kind: str
    size: tuple[float, ...] = ()
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    vertices: np.ndarray | None = None
    faces: np.ndarray | None = None
    fromto: tuple[float, ...] | None = None


def read_stl(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a binary or ASCII STL file.

    Returns:
        ``(vertices, faces)``: unique vertices [file units], shape (V, 3), and triangles,
        shape (F, 3).

    Raises:
        ValueError: the file is not a readable STL.
    """
    data = path.read_bytes()
    if len(data) >= 84:
        count = int(np.frombuffer(data, dtype="<u4", count=1, offset=80)[0])
        if len(data) == 84 + 50 * count:
            record = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
            corners = np.frombuffer(data, dtype=record, count=count, offset=84)["v"]
            return _weld(corners.reshape(-1, 3).astype(np.float64))
    text = data.decode("ascii", errors="replace")
    numbers = re.findall(r"vertex\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if not numbers or len(numbers) % 3:
        raise ValueError(f"not a binary or ASCII STL: {path}")
    return _weld(np.array(numbers, dtype=np.float64))


def _weld(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vertices, index = np.unique(corners, axis=0, return_inverse=True)
    return vertices, index.reshape(-1, 3)


def decimate(vertices: np.ndarray, faces: np.ndarray, max_triangles: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Vertex-clustering decimation: merge vertices on a grid until few enough triangles remain.

    The grid cell starts at 1/64 of the bounding-box diagonal and doubles until the mesh has at
    most ``max_triangles`` triangles; each cell's vertices merge at their mean. Coarse but
    shape-preserving at the scale a 224x224 camera sees.
    """
    if len(faces) <= max_triangles:
        return vertices, faces
    lo = vertices.min(axis=0)
    cell = float(np.linalg.norm(vertices.max(axis=0) - lo)) / 64.0
    while True:
        keys = np.floor((vertices - lo) / cell).astype(np.int64)
        _, cluster = np.unique(keys, axis=0, return_inverse=True)
        cluster = cluster.reshape(-1)
        tri = cluster[faces]
        keep = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
        tri = np.unique(tri[keep], axis=0)
        if len(tri) <= max_triangles or cell > 1e3:
            break
        cell *= 1.5
    sums = np.zeros((cluster.max() + 1, 3))
    np.add.at(sums, cluster, vertices)
    merged = sums / np.bincount(cluster)[:, None]
    used, remap = np.unique(tri, return_inverse=True)
    return merged[used], remap.reshape(-1, 3)


def _origin(element: ET.Element | None) -> pin.SE3:
    if element is None:
        return pin.SE3.Identity()
    xyz = np.array([float(v) for v in element.get("xyz", "0 0 0").split()])
    rpy = [float(v) for v in element.get("rpy", "0 0 0").split()]
    return pin.SE3(pin.rpy.rpyToMatrix(*rpy), xyz)


def _pos_quat(placement: pin.SE3) -> tuple[tuple[float, ...], tuple[float, ...]]:
    q = pin.Quaternion(placement.rotation)
    return tuple(map(float, placement.translation)), (float(q.w), float(q.x), float(q.y),
                                                      float(q.z))


def _geometry(element: ET.Element, base_dir: Path | None, max_triangles: int) -> LinkGeom | None:
    """The geom of one ``<collision>``/``<visual>`` element, or None if it cannot be drawn."""
    pos, quat = _pos_quat(_origin(element.find("origin")))
    shape = element.find("geometry")
    if shape is None or len(shape) == 0:
        return None
    node = shape[0]
    if node.tag == "box":
        half = [0.5 * float(v) for v in node.get("size", "0 0 0").split()]
        return LinkGeom("box", tuple(half), pos, quat)
    if node.tag == "cylinder":
        size = (float(node.get("radius", 0)), 0.5 * float(node.get("length", 0)))
        return LinkGeom("cylinder", size, pos, quat)
    if node.tag == "sphere":
        return LinkGeom("sphere", (float(node.get("radius", 0)),), pos, quat)
    if node.tag != "mesh" or not node.get("filename", "").lower().endswith(".stl"):
        return None
    try:
        path = resolve_file_path(node.get("filename"), relative_to=base_dir)
        vertices, faces = read_stl(path)
    except Exception:  # noqa: BLE001 - a missing or unreadable mesh is drawn as capsules
        return None
    scale = np.array([float(v) for v in node.get("scale", "1 1 1").split()])
    vertices, faces = decimate(vertices * scale, faces, max_triangles)
    if len(faces) < 4:
        return None
    return LinkGeom("mesh", (), pos, quat, vertices, faces)


def parse_link_geometries(urdf_xml: str, *, base_dir: Path | None = None,
                          max_triangles: int = 600) -> dict[str, list[LinkGeom]]:
    """Drawable geoms of every URDF link: collision, else visual, else capsules.

    Args:
        urdf_xml: URDF document.
        base_dir: Directory for relative mesh paths (the URDF's own directory).
        max_triangles: Triangle budget per mesh after decimation.

    Returns:
        Link name -> its geoms in the link frame; links with nothing to draw are absent.
    """
    root = ET.fromstring(urdf_xml)
    children: dict[str, list[np.ndarray]] = {}
    for joint in root.findall("joint"):
        parent, child = joint.find("parent"), joint.find("child")
        if parent is not None and child is not None:
            children.setdefault(parent.get("link"), []).append(
                _origin(joint.find("origin")).translation)
    scale = _robot_scale(children)
    out: dict[str, list[LinkGeom]] = {}
    for link in root.findall("link"):
        name = link.get("name")
        geoms: list[LinkGeom] = []
        wanted = 0
        for tag in ("collision", "visual"):
            elements = link.findall(tag)
            wanted = len(elements)
            geoms = [g for g in (_geometry(e, base_dir, max_triangles) for e in elements) if g]
            if geoms:
                break
        if len(geoms) < wanted or not geoms:
            geoms += _capsules(children.get(name, []), scale)
        if geoms:
            out[name] = geoms
    return out


def _robot_scale(children: dict[str, list[np.ndarray]]) -> float:
    """Capsule radius [m]: 0.03 for an arm whose joint offsets add up to 1 m or more (Panda),
    proportionally thinner down to 0.012 for a small one (SO-100)."""
    total_m = sum(float(np.linalg.norm(t)) for ts in children.values() for t in ts)
    return CAPSULE_RADIUS_M * float(np.clip(total_m / 1.0, 0.4, 1.0))


def _capsules(ends: list[np.ndarray], radius: float) -> list[LinkGeom]:
    return [LinkGeom("capsule", (radius,), fromto=(0.0, 0.0, 0.0, *map(float, end)))
            for end in ends if np.linalg.norm(end) > 1e-3]


def _mimics(urdf_xml: str) -> dict[str, tuple[str, float, float]]:
    """Mimic joints: name -> (mimicked joint, multiplier, offset)."""
    out = {}
    for joint in ET.fromstring(urdf_xml).findall("joint"):
        mimic = joint.find("mimic")
        if mimic is not None:
            out[joint.get("name")] = (mimic.get("joint"), float(mimic.get("multiplier", 1.0)),
                                      float(mimic.get("offset", 0.0)))
    return out


class RobotGeometry:
    """Forward kinematics of every drawable link of a profile's URDF.

    Args:
        profile: The robot profile.
        max_triangles: Triangle budget per mesh after decimation.
    """

    def __init__(self, profile: RobotProfile, *, max_triangles: int = 600) -> None:
        self.profile = profile
        base_dir = None
        # urdf_source reads "<source>: <path>" for file-based URDFs; relative mesh paths
        # resolve against that file's directory (package:// URIs resolve on their own).
        if ": " in profile.urdf_source:
            base_dir = Path(profile.urdf_source.split(": ", 1)[1]).parent
        self.model = pin.buildModelFromXML(profile.urdf_xml)
        self.data = self.model.createData()
        self.link_geoms = {name: geoms for name, geoms in parse_link_geometries(
            profile.urdf_xml, base_dir=base_dir, max_triangles=max_triangles).items()
            if self.model.existFrame(name)}
        self._frame_ids = {name: self.frame_id(name) for name in self.link_geoms}
        self._q = pin.neutral(self.model)
        self._arm_idx = [self._q_index(name) for name in profile.joint_names]
        # Non-commanded joints sit where the profile's kinematic model locks them: at their
        # locked_joints value, else at 0, clipped into the URDF range.
        for joint_id in range(1, self.model.njoints):
            joint = self.model.joints[joint_id]
            if joint.nq == 1 and self.model.names[joint_id] not in profile.joint_names:
                value = profile.locked_joints.get(self.model.names[joint_id], 0.0)
                lo = self.model.lowerPositionLimit[joint.idx_q]
                hi = self.model.upperPositionLimit[joint.idx_q]
                self._q[joint.idx_q] = np.clip(value, lo, hi) if lo < hi else value
        self._gripper_idx: list[tuple[int, float, float]] = []
        self.gripper_is_prismatic = False
        if profile.gripper is not None:
            joint = self.model.joints[self.model.getJointId(profile.gripper.joint)]
            self.gripper_is_prismatic = joint.shortname().startswith("JointModelP")
            self._gripper_idx.append((self._q_index(profile.gripper.joint), 1.0, 0.0))
            for name, (target, mult, offset) in _mimics(profile.urdf_xml).items():
                if target == profile.gripper.joint:
                    self._gripper_idx.append((self._q_index(name), mult, offset))
        self._base_id = self.frame_id(profile.base_frame)

    def frame_id(self, name: str) -> int:
        """Id of a frame, preferring the link (body) frame when a joint has the same name."""
        matches = [i for i, frame in enumerate(self.model.frames) if frame.name == name]
        if not matches:
            raise KeyError(f"no frame {name!r} in the URDF model")
        bodies = [i for i in matches if self.model.frames[i].type == pin.FrameType.BODY]
        return (bodies or matches)[0]

    def _q_index(self, joint: str) -> int:
        joint_id = self.model.getJointId(joint)
        return int(self.model.joints[joint_id].idx_q)

    def frame_poses(self, q: np.ndarray, gripper_position: float | None = None,
                    frames: tuple[str, ...] = ()) -> dict[str, pin.SE3]:
        """Poses in the base frame of every drawable link and of ``frames``.

        Args:
            q: Commanded joint positions [rad or m], shape (n,), profile order.
            gripper_position: Gripper joint position [rad or m] (between the profile's open
                and closed positions); None leaves it at its locked value.
            frames: Extra frames (end effector, camera mount) to return.
        """
        self._q[self._arm_idx] = q
        if gripper_position is not None:
            for idx, mult, offset in self._gripper_idx:
                self._q[idx] = mult * gripper_position + offset
        pin.framesForwardKinematics(self.model, self.data, self._q)
        base_inv = self.data.oMf[self._base_id].inverse()
        out = {name: base_inv * self.data.oMf[fid] for name, fid in self._frame_ids.items()}
        for name in frames:
            if name not in self._frame_ids:
                self._frame_ids[name] = self.frame_id(name)
            out[name] = base_inv * self.data.oMf[self._frame_ids[name]]
        return out


def se3_to_pos_quat(pose: pin.SE3) -> tuple[np.ndarray, np.ndarray]:
    """Position [m], shape (3,), and quaternion (w, x, y, z), shape (4,), of a pose."""
    q = pin.Quaternion(pose.rotation)
    return np.array(pose.translation), np.array([q.w, q.x, q.y, q.z])


def triangle_count(geoms: dict[str, list[LinkGeom]]) -> int:
    """Total mesh triangles of a link-geometry map (a render-cost figure)."""
    return sum(len(g.faces) for gs in geoms.values() for g in gs if g.faces is not None)



