"""Dataset recording: bags a training run can read back, human demos beside them, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.learning.dataset import load_episode, load_human_video, read_manifest
from hv2r_ros.learning.training_data import task_end
from hv2r_ros.ros.bag import BagReader
from hv2r_ros.sim.record import CAMERA_TOPICS, RecordConfig, episode_seed, record_dataset


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset")
    profile = load_robot_profile("panda")
    config = RecordConfig(episodes=1, seed=3, image_size=64, chunk_length=5)
    manifest = record_dataset(profile, out, config, progress=lambda *a: None)
    return out, profile, config, manifest


def test_manifest_bag_and_demo_are_consistent(recorded):
    out, profile, config, manifest = recorded
    assert read_manifest(out) == json.loads((out / "manifest.json").read_text()) == manifest
    (entry,) = manifest["episodes"]
    assert entry["seed"] == episode_seed(3, 0) and entry["success"]
    meta = BagReader(out / entry["bag"]).metadata()
    assert meta["episode"]["target_object"] == entry["target_object"]
    assert meta["outcome"]["success"] == "True" and meta["outcome"]["refusals"] == "0"
    episode = load_episode(out / entry["bag"], CAMERA_TOPICS, profile.end_effector_frames,
                           profile.joint_names)
    assert len(episode) == entry["frames"] > 50
    assert episode.images["overhead"].shape == (len(episode), 64, 64, 3)
    assert episode.actions.shape == (len(episode), 5, 7)
    assert np.isfinite(episode.actions).all() and episode.success
    grip = episode.actions[:, 0, 6]
    assert set(np.unique(np.round(grip, 6))) <= {0.0, 1.0} and grip.max() == 1.0
    # Rows are relative to the measured tool pose at the observation: the first row is one
    # period of planned motion plus the lag the expert allows the tool behind its plan.
    from hv2r_ros.sim.expert import LAG_STOP_M

    step = np.linalg.norm(episode.actions[:, 0, :3], axis=1)
    assert step.max() <= LAG_STOP_M + profile.workspace.linear_speed_max * 0.1
    assert 0 < task_end(episode.actions, 10.0) < len(episode)
    video = load_human_video(out / entry["human_video"])
    assert video.shape[1:] == (64, 64, 3) and len(video) == entry["human_frames"]


def test_resume_keeps_finished_episodes(recorded):
    out, profile, config, manifest = recorded
    bag = out / manifest["episodes"][0]["bag"]
    before = bag.stat().st_mtime_ns
    again = record_dataset(profile, out, config, resume=True, progress=lambda *a: None)
    assert bag.stat().st_mtime_ns == before
    assert again["episodes"] == manifest["episodes"]
