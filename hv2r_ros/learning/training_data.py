"""From a recorded dataset to training inputs: pretraining videos and behaviour-cloning samples.

``pretraining_videos`` gathers the human demo videos (and, optionally, the robot episodes'
camera streams) at the encoder's input size. ``bc_samples`` embeds every robot observation
with the exported ONNX encoder (the file the robot runs) and pairs it with the episode's goal
embedding, the joint positions and the expert's action chunk.

Goal sources (``goal_source``): ``robot`` = the last overhead frame of the robot episode itself
(what the policy is asked to reach); ``human`` = the last frame of the human video of the same
layout (what it will be prompted with); ``both`` = one copy of every sample with each.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.models.contract import EncoderSpec
from hv2r_ros.core.models.preprocess import fit_image
from hv2r_ros.learning.behaviour_cloning import BCData
from hv2r_ros.learning.dataset import load_episode, load_human_video, read_manifest

__all__ = ["GOAL_SOURCES", "bc_samples", "pretraining_videos"]

GOAL_SOURCES = ("robot", "human", "both")


def _fit(video: np.ndarray, spec: EncoderSpec) -> np.ndarray:
    out = np.empty((len(video), *spec.input_size, 3), np.uint8)
    for t, frame in enumerate(video):
        fit_image(frame, spec, out[t])
    return out


def _progress(log: Callable[[str], None] | None) -> Callable[[str], None]:
    return log or (lambda line: print(line, file=sys.stderr, flush=True))


def pretraining_videos(roots: list[str | Path], spec: EncoderSpec, profile, *,
                       robot_cameras: tuple[str, ...] = ("overhead", "wrist"),
                       robot_every: int = 2, log: Callable[[str], None] | None = None
                       ) -> list[np.ndarray]:
    """Videos (T, H, W, 3) at the encoder input size for time-contrastive pretraining.

    Args:
        roots: Dataset folders (``hv2r sim record`` output).
        spec: The encoder's spec (input size and resize mode).
        profile: The robot profile the episodes were recorded with.
        robot_cameras: Robot camera streams added as videos; () for human videos only.
        robot_every: Keep every n-th robot frame (10 Hz episodes are slower than the demos).
        log: Progress lines (default stderr).
    """
    log = _progress(log)
    videos: list[np.ndarray] = []
    for root in map(Path, roots):
        manifest = read_manifest(root)
        entries = manifest["episodes"]
        for i, entry in enumerate(entries):
            if "human_video" in entry:
                videos.append(_fit(load_human_video(root / entry["human_video"]), spec))
            if robot_cameras:
                episode = load_episode(root / entry["bag"], manifest["camera_topics"],
                                       profile.end_effector_frames, profile.joint_names)
                for camera in robot_cameras:
                    videos.append(_fit(episode.images[camera][::robot_every], spec))
            if (i + 1) % 20 == 0 or i + 1 == len(entries):
                log(f"loaded {i + 1}/{len(entries)} episodes of {root} ({len(videos)} videos)")
    if not videos:
        raise ConfigError("no videos found", field="data", value=[str(r) for r in roots])
    return videos


def task_end(actions: np.ndarray, rate_hz: float, after_release_s: float = 1.0) -> int:
    """Observations of an episode to learn from: up to ``after_release_s`` past the last release.

    The expert then returns home and waits; at home the scene before the task and the scene
    after it look alike to the arm, and those idle frames would teach "stay at home" for the
    start as well.

    Args:
        actions: (T, H, A) chunks whose last column is the gripper command (1 closed).
        rate_hz: Observation rate [Hz].
        after_release_s: Time kept after the gripper's last opening [s].
    """
    closed = np.flatnonzero(actions[:, 0, -1] >= 0.5)
    if not len(closed):
        return len(actions)
    return min(len(actions), int(closed[-1]) + 1 + int(round(after_release_s * rate_hz)))


def bc_samples(roots: list[str | Path], encoder, profile, *, goal_source: str = "robot",
               only_successes: bool = True, after_release_s: float | None = 1.0,
               log: Callable[[str], None] | None = None) -> BCData:
    """Behaviour-cloning samples from recorded robot episodes, embedded by ``encoder``.

    Args:
        roots: Dataset folders.
        encoder: The runtime ``Encoder`` (``embed(images) -> (N, D)``).
        profile: The robot profile (camera order = the policy's: ``profile.cameras``).
        goal_source: ``robot``, ``human`` or ``both`` (module docstring).
        only_successes: Skip episodes the expert failed.
        after_release_s: Keep observations up to this long after the last release
            (``task_end``); None keeps whole episodes (the return home included).
        log: Progress lines (default stderr).
    """
    if goal_source not in GOAL_SOURCES:
        raise ConfigError("unknown goal source", field="goal_source", value=goal_source,
                          choices=GOAL_SOURCES)
    log = _progress(log)
    cameras = tuple(profile.cameras)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("cams", "goal", "q", "act", "ep")}
    episode_index = 0
    for root in map(Path, roots):
        manifest = read_manifest(root)
        entries = manifest["episodes"]
        for i, entry in enumerate(entries):
            if only_successes and not entry["success"]:
                continue
            episode = load_episode(root / entry["bag"], manifest["camera_topics"],
                                   profile.end_effector_frames, profile.joint_names)
            count = len(episode)
            if after_release_s is not None:
                count = task_end(episode.actions, float(manifest["config"]["record_rate_hz"]),
                                 after_release_s)
            embedded = {c: _embed(encoder, episode.images[c]) for c in cameras}
            cams = np.stack([embedded[c][:count] for c in cameras], axis=1)  # (T, C, D)
            goals = []
            if goal_source in ("robot", "both"):
                goals.append(embedded["overhead"][-1])
            if goal_source in ("human", "both"):
                if "human_video" not in entry:
                    raise ConfigError("goal_source needs the human videos",
                                      file=str(root / "manifest.json"), field="human_video")
                goals.append(_embed(encoder, load_human_video(root / entry["human_video"])[-1:])[0])
            for goal in goals:
                parts["cams"].append(cams)
                parts["goal"].append(np.repeat(goal[None], count, axis=0))
                parts["q"].append(episode.q[:count])
                parts["act"].append(episode.actions[:count])
                parts["ep"].append(np.full(count, episode_index))
            episode_index += 1
            if (i + 1) % 20 == 0 or i + 1 == len(entries):
                log(f"embedded {i + 1}/{len(entries)} episodes of {root}")
    if not parts["act"]:
        raise ConfigError("no successful episodes to learn from", field="data",
                          value=[str(r) for r in roots])
    return BCData(np.concatenate(parts["cams"]).astype(np.float32),
                  np.concatenate(parts["goal"]).astype(np.float32),
                  np.concatenate(parts["q"]).astype(np.float32),
                  np.concatenate(parts["act"]).astype(np.float32),
                  np.concatenate(parts["ep"]))


def _embed(encoder, images: np.ndarray, batch: int = 32) -> np.ndarray:
    out = [encoder.embed(list(images[i:i + batch])) for i in range(0, len(images), batch)]
    return np.concatenate(out).astype(np.float32)
