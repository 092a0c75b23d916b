"""Reading a recorded dataset (``hv2r sim record``) into arrays for training.

``load_episode`` turns one robot bag into per-observation arrays; ``load_human_video`` reads a
demo MP4. Actions become the policy contract's ``ee_delta`` rows (relative to the measured tool
pose at each observation) with the gripper column, so what the policy learns is exactly what
``chunk_to_targets`` turns back into targets on the robot.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.observation import poses_to_ee_delta
from hv2r_ros.ros.actions import read_cartesian_chunk, read_gripper_chunk
from hv2r_ros.ros.bag import BagReader
from hv2r_ros.ros.stamps import to_nanoseconds
from hv2r_ros.sim.video_io import read_mp4

__all__ = ["Episode", "load_episode", "load_human_video", "read_manifest"]


@dataclasses.dataclass
class Episode:
    """One robot episode, T observations.

    Attributes:
        images: Camera name -> uint8 (T, H, W, 3) RGB.
        q: (T, n) measured joint positions [rad].
        tool_pose: (T, 7) measured tool pose ``[x y z qx qy qz qw]`` (base frame).
        actions: (T, H, 7) expert chunk as ``ee_delta`` rows + gripper in [0, 1].
        success: Whether the expert solved the task.
        meta: The bag's ``episode`` metadata (seed, target object and pad, layout JSON).
    """

    images: dict[str, np.ndarray]
    q: np.ndarray
    tool_pose: np.ndarray
    actions: np.ndarray
    success: bool
    meta: dict

    def __len__(self) -> int:
        return len(self.q)


def read_manifest(root: str | Path) -> dict:
    """The dataset's ``manifest.json``, with a clear error when it is missing."""
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise ConfigError("not a recorded dataset (no manifest.json); record one with "
                          "`hv2r sim record`", file=str(path))
    return json.loads(path.read_text())


def _decode(msg) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ConfigError("undecodable image in the bag", field=msg.header.frame_id)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_episode(path: str | Path, camera_topics: dict[str, str], frames: tuple[str, ...],
                 joint_names: tuple[str, ...]) -> Episode:
    """Read one robot bag.

    Args:
        path: The ``.mcap`` file.
        camera_topics: Camera name -> topic (the manifest's ``camera_topics``).
        frames: End-effector frames of the action chunks (profile order).
        joint_names: Joint order (profile order); joint_states are mapped by name.
    """
    reader = BagReader(path)
    meta = reader.metadata()
    by_stamp: dict[int, dict] = {}
    topic_to_camera = {topic: name for name, topic in camera_topics.items()}
    for topic, msg, _ in reader.messages():
        stamp = to_nanoseconds(msg.header.stamp)
        record = by_stamp.setdefault(stamp, {})
        if topic in topic_to_camera:
            record[topic_to_camera[topic]] = _decode(msg)
        elif topic == "/joint_states":
            index = {name: i for i, name in enumerate(msg.name)}
            record["q"] = np.array([msg.position[index[j]] for j in joint_names])
        elif topic == "/hv2r/tool_pose":
            p, o = msg.pose.position, msg.pose.orientation
            record["tool"] = np.array([p.x, p.y, p.z, o.x, o.y, o.z, o.w])
        elif topic == "/hv2r/action":
            chunk, _, _, status = read_cartesian_chunk(msg, frames)
            if chunk is None:
                raise ConfigError(f"invalid action chunk ({status.value})", file=str(path))
            record["poses"] = chunk
        elif topic == "/hv2r/gripper":
            record["gripper"] = read_gripper_chunk(msg)[0]
    needed = set(camera_topics) | {"q", "tool", "poses", "gripper"}
    stamps = sorted(s for s, r in by_stamp.items() if needed <= set(r))
    if not stamps:
        raise ConfigError("no complete observation in the bag", file=str(path))
    rows = [by_stamp[s] for s in stamps]
    tool = np.stack([r["tool"] for r in rows])
    actions = np.stack([np.concatenate([poses_to_ee_delta(r["poses"], r["tool"][None]),
                                        r["gripper"][:, None]], axis=1) for r in rows])
    outcome = meta.get("outcome", {})
    return Episode(images={c: np.stack([r[c] for r in rows]) for c in camera_topics},
                   q=np.stack([r["q"] for r in rows]), tool_pose=tool, actions=actions,
                   success=outcome.get("success") == "True", meta=meta.get("episode", {}))


def load_human_video(path: str | Path) -> np.ndarray:
    """All frames of a demo video, uint8 (T, H, W, 3) RGB."""
    try:
        return read_mp4(path)[0]
    except OSError as exc:
        raise ConfigError(str(exc).removeprefix(f"{Path(path)}: "), file=str(path)) from exc
