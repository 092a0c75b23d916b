"""Dataset generation: seeded robot episodes as ROS 2 bags (MCAP) and human demo videos (MP4).

Why MCAP with ROS messages rather than a LeRobot-style layout: the episodes are what the robot's
own topics carry (``sensor_msgs/CompressedImage`` for both cameras, ``JointState``, the
``MultiDOFJointTrajectory`` action chunk and the gripper chunk, exactly as the stack publishes
them), so ``ros2 bag info`` / ``ros2 bag play``, Foxglove and the same conversion code read
them, and a dataset recorded on a real robot with ``ros2 bag record -s mcap`` has the same
shape. A LeRobot layout needs parquet (pyarrow) and re-encoded video, and knows nothing of ROS.
PNG keeps the images lossless (deterministic for a seed) at about a third of the raw size.

Layout of ``OUT``::

    manifest.json                  robot, seeds, rates, sizes, one entry per episode
    robot/episode_NNNNN.mcap       one bag per robot episode
    human/demo_NNNNN.mp4 (+ .json) the human demonstration of the same layout, and its
                                   ground truth (phases, keyframes, object poses)

Topics of a robot episode (stamps are simulated time from the episode start):

    /overhead_camera/image_raw/compressed, /wrist_camera/image_raw/compressed  (png, rgb8)
    /joint_states                   measured joints (profile order)
    /hv2r/tool_pose                 geometry_msgs/PoseStamped, measured tool pose (base frame)
    /hv2r/action, /hv2r/gripper     the expert's next ``chunk_length`` targets at
                                    ``record_rate_hz`` (absolute poses, gripper in [0, 1])

Metadata records: ``episode`` (seed, robot, target object and pad, layout JSON) and
``outcome`` (success, reason, duration, attempts, refusals).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CompressedImage, JointState

from hv2r_ros.core.robot_profile import RobotProfile
from hv2r_ros.ros.actions import cartesian_chunk_to_msg, gripper_chunk_to_msg
from hv2r_ros.ros.bag import BagWriter
from hv2r_ros.ros.stamps import from_seconds

__all__ = ["RecordConfig", "record_dataset", "episode_seed", "CAMERA_TOPICS"]

CAMERA_TOPICS = {"overhead": "/overhead_camera/image_raw/compressed",
                 "wrist": "/wrist_camera/image_raw/compressed"}


@dataclasses.dataclass(frozen=True)
class RecordConfig:
    """What ``record_dataset`` writes.

    Attributes:
        episodes: Number of robot episodes (and human videos, one per layout).
        seed: Base seed; episode i uses ``episode_seed(seed, i)`` for its layout.
        record_rate_hz: Observation rate of the robot episodes [Hz] (the policy's rate).
        chunk_length: Expert targets recorded per observation (H).
        image_size: Square camera image side [px] of robot episodes and human videos.
        human_videos: Also render the human demonstration of each layout.
        human_camera: Viewpoint of the human videos (``overhead``; ``side`` for a gap test).
        human_fps: Frame rate of the human videos [Hz].
        noise_m: Standard deviation of smooth offsets added to the expert's commanded tool
            position [m] (``TargetNoise``; the labels stay the clean plan); 0 for none.
    """

    episodes: int = 10
    seed: int = 0
    record_rate_hz: float = 10.0
    chunk_length: int = 10
    image_size: int = 224
    human_videos: bool = True
    human_camera: str = "overhead"
    human_fps: float = 10.0
    noise_m: float = 0.0


def episode_seed(base_seed: int, index: int) -> int:
    """The layout seed of episode ``index`` (spread so neighbouring datasets do not overlap)."""
    return int(base_seed) * 100_000 + int(index)


def _png(image: np.ndarray, stamp_s: float, frame_id: str) -> CompressedImage:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    msg = CompressedImage(format="rgb8; png compressed bgr8", data=data.tobytes())
    msg.header.stamp = from_seconds(stamp_s)
    msg.header.frame_id = frame_id
    return msg


def _pose_msg(pose: np.ndarray, stamp_s: float, frame_id: str) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = from_seconds(stamp_s)
    msg.header.frame_id = frame_id
    p, o = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in pose[:3])
    o.x, o.y, o.z, o.w = (float(v) for v in pose[3:7])
    return msg


class _EpisodeRecorder:
    """The ``on_step`` hook of an expert episode: every k-th control step becomes one record."""

    def __init__(self, bag: BagWriter, world, config: RecordConfig) -> None:
        self.bag, self.world, self.config = bag, world, config
        self.every = max(1, round(1.0 / (config.record_rate_hz * world.dt_s)))
        self.profile: RobotProfile = world.profile
        self.frames = 0
        self.render_s = 0.0

    def __call__(self, step) -> None:
        index = round(step.time_s / self.world.dt_s)
        if index % self.every:
            return
        t, cfg, profile = step.time_s, self.config, self.profile
        ns = int(round(t * 1e9))
        tic = time.perf_counter()
        for camera, topic in CAMERA_TOPICS.items():
            image = self.world.render(camera, cfg.image_size, cfg.image_size)
            self.bag.write(topic, _png(image, t, f"{camera}_camera"), ns)
        self.render_s += time.perf_counter() - tic
        joints = JointState(name=list(profile.joint_names),
                            position=[float(v) for v in step.q])
        joints.header.stamp = from_seconds(t)
        self.bag.write("/joint_states", joints, ns)
        self.bag.write("/hv2r/tool_pose", _pose_msg(step.tool_pose, t, profile.base_frame), ns)
        times = np.arange(1, cfg.chunk_length + 1) / cfg.record_rate_hz
        poses, grip = zip(*(step.plan.targets(step.plan_time_s + dt) for dt in times))
        chunk = np.asarray(poses)[:, None, :]
        self.bag.write("/hv2r/action", cartesian_chunk_to_msg(
            profile.end_effector_frames, chunk, times, t, profile.base_frame), ns)
        self.bag.write("/hv2r/gripper", gripper_chunk_to_msg(np.asarray(grip), times, t), ns)
        self.frames += 1


def _layout_json(layout) -> str:
    return json.dumps(dataclasses.asdict(layout), default=lambda v: np.asarray(v).tolist())


def record_dataset(profile: RobotProfile, out_dir: str | Path, config: RecordConfig = RecordConfig(),
                   *, resume: bool = False,
                   progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Record ``config.episodes`` expert episodes (and human videos) into ``out_dir``.

    Args:
        profile: The robot.
        out_dir: Output folder (created; existing episode files are overwritten).
        config: What to record.
        resume: Keep the episodes already complete in ``out_dir`` (same seeds) and record the
            rest; the manifest is rewritten after every episode, so an interrupted run resumes.
        progress: Called after each episode with (done, total, one-line summary); default: a
            progress line on stderr.

    Returns:
        The manifest (also written to ``out_dir/manifest.json``).
    """
    from hv2r_ros.core.command_chain import CartesianCommandChain
    from hv2r_ros.sim.task import sample_layout
    from hv2r_ros.sim.world import SimConfig, SimWorld

    out = Path(out_dir)
    (out / "robot").mkdir(parents=True, exist_ok=True)
    if config.human_videos:
        (out / "human").mkdir(parents=True, exist_ok=True)
    progress = progress or _stderr_progress
    chain = CartesianCommandChain(profile)
    layouts = [sample_layout(profile.workspace, episode_seed(config.seed, i))
               for i in range(config.episodes)]
    world = SimWorld(profile, SimConfig(), layouts[0])
    entries: list[dict] = []
    start = time.monotonic()
    try:
        for i, layout in enumerate(layouts):
            entry = _finished_entry(out, i, config) if resume else None
            if entry is None:
                entry = _record_episode(out, i, layout, world, chain, profile, config)
            entries.append(entry)
            _write_manifest(out, profile, config, entries, start)
            progress(i + 1, len(layouts), f"episode {i}: "
                     f"{'success' if entry['success'] else 'FAIL'}, {entry['frames']} frames")
    finally:
        world.close()
    return _write_manifest(out, profile, config, entries, start)


def _record_episode(out: Path, i: int, layout, world, chain, profile, config) -> dict:
    from hv2r_ros.sim.expert import TargetNoise, run_expert_episode
    from hv2r_ros.sim.scene import SceneConfig

    seed = episode_seed(config.seed, i)
    bag_path = out / "robot" / f"episode_{i:05d}.mcap"
    meta = {"seed": seed, "robot": profile.name, "target_object": layout.target_object,
            "target_pad": layout.target_pad, "record_rate_hz": config.record_rate_hz,
            "chunk_length": config.chunk_length, "layout": _layout_json(layout)}
    entry = {"index": i, "seed": seed, "bag": str(bag_path.relative_to(out)),
             "target_object": layout.target_object, "target_pad": layout.target_pad}
    if config.human_videos:  # first: a bag with its outcome record marks a finished episode
        from hv2r_ros.sim.human_demo import render_human_demo
        video = out / "human" / f"demo_{i:05d}.mp4"
        info = render_human_demo(layout, video, camera=config.human_camera,
                                 size=(config.image_size, config.image_size),
                                 fps=config.human_fps, seed=seed,
                                 scene_config=SceneConfig.framing(profile.workspace))
        entry["human_video"] = str(video.relative_to(out))
        entry["human_frames"] = info.frame_count
    with BagWriter(bag_path, metadata={"episode": meta}) as bag:
        recorder = _EpisodeRecorder(bag, world, config)
        world.reset(layout)
        noise = TargetNoise(config.noise_m, seed=seed) if config.noise_m > 0 else None
        result = run_expert_episode(world, layout, chain=chain, noise=noise, on_step=recorder)
        outcome = {"success": result.success, "reason": result.reason,
                   "duration_s": f"{result.duration_s:.3f}", "attempts": result.attempts,
                   "refusals": result.refusals, "frames": recorder.frames}
        bag.add_metadata("outcome", outcome)
    entry.update(success=bool(result.success), duration_s=result.duration_s,
                 frames=recorder.frames)
    return entry


def _finished_entry(out: Path, i: int, config: RecordConfig) -> dict | None:
    """The manifest entry of episode ``i`` when its files are complete, else None."""
    from hv2r_ros.ros.bag import BagReader

    bag_path = out / "robot" / f"episode_{i:05d}.mcap"
    video = out / "human" / f"demo_{i:05d}.mp4"
    if not bag_path.is_file() or (config.human_videos and not video.with_suffix(".json").is_file()):
        return None
    try:
        meta = BagReader(bag_path).metadata()
    except Exception:  # an interrupted write leaves no summary: record it again
        return None
    if "outcome" not in meta or int(meta["episode"]["seed"]) != episode_seed(config.seed, i):
        return None
    episode, outcome = meta["episode"], meta["outcome"]
    entry = {"index": i, "seed": int(episode["seed"]), "bag": str(bag_path.relative_to(out)),
             "target_object": episode["target_object"], "target_pad": episode["target_pad"],
             "success": outcome["success"] == "True", "duration_s": float(outcome["duration_s"]),
             "frames": int(outcome["frames"])}
    if config.human_videos:
        entry["human_video"] = str(video.relative_to(out))
        entry["human_frames"] = len(json.loads(video.with_suffix(".json").read_text())["phases"])
    return entry


def _write_manifest(out: Path, profile, config: RecordConfig, entries: list[dict],
                    start: float) -> dict:
    manifest = {"robot": profile.name, "format": "hv2r-sim-dataset/1",
                "config": dataclasses.asdict(config), "camera_topics": CAMERA_TOPICS,
                "episodes": entries, "wall_s": round(time.monotonic() - start, 1),
                "expert_success_rate": float(np.mean([e["success"] for e in entries]))
                if entries else 0.0}
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(out / "manifest.json")  # readers never see a half-written manifest
    return manifest


def _stderr_progress(done: int, total: int, text: str) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}  {text}"[:120].ljust(120),
          end="\n" if done == total else "", file=sys.stderr, flush=True)
