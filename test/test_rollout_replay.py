"""The closed-loop rollout path executes recorded expert chunks as the recording meant them.

A policy that reproduced the expert's chunks exactly must solve the task through
``sim.rollout.run_policy_episode`` (chunk -> ``chunk_to_targets`` -> executor -> Cartesian
chain -> simulator), re-planning every ``rows_per_inference`` rows as ``hv2r eval`` does. So
recorded chunks replayed by a stand-in policy solve their own layout, and fail on another one:
the action representation, its frames and its timing agree between recording and deployment.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from hv2r_ros.core.command_chain import CartesianCommandChain
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.learning.dataset import load_episode, read_manifest
from hv2r_ros.learning.export import policy_spec_for_robot
from hv2r_ros.sim.record import RecordConfig, record_dataset
from hv2r_ros.sim.rollout import RolloutConfig, run_policy_episode
from hv2r_ros.sim.task import sample_layout
from hv2r_ros.sim.world import SimConfig, SimWorld

ROWS = 5  # chunk rows executed between inferences, as hv2r eval runs


class ReplayPolicy:
    """Returns the recorded chunk of the time of each inference (10 Hz rows)."""

    def __init__(self, spec, actions: np.ndarray) -> None:
        self.spec, self.actions, self.calls = spec, actions, 0

    def infer(self, embeddings, goal, q) -> np.ndarray:
        row = min(self.calls * ROWS, len(self.actions) - 1)
        self.calls += 1
        return self.actions[row].astype(np.float32)


class NoEncoder:
    def embed(self, images):
        return np.zeros((len(images), 4), np.float32)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    profile = load_robot_profile("panda")
    out = tmp_path_factory.mktemp("replay")
    manifest = record_dataset(profile, out, RecordConfig(episodes=1, seed=5, image_size=32,
                                                         human_videos=False),
                              progress=lambda *a: None)
    entry = manifest["episodes"][0]
    assert entry["success"], "the scripted expert must solve the recorded layout"
    episode = load_episode(out / entry["bag"], read_manifest(out)["camera_topics"],
                           profile.end_effector_frames, profile.joint_names)
    return profile, entry, episode


@pytest.mark.parametrize("own_layout", [True, False])
def test_recorded_chunks_replayed_through_the_rollout_solve_their_own_layout_only(
        recorded, own_layout):
    profile, entry, episode = recorded
    spec = policy_spec_for_robot(profile, embedding_size=4, chunk_length=10,
                                 control_rate_hz=10.0, stats=None)
    layout = sample_layout(profile.workspace, entry["seed"] if own_layout else entry["seed"] + 1)
    models = types.SimpleNamespace(encoder=NoEncoder(),
                                   policy=ReplayPolicy(spec, episode.actions))
    with SimWorld(profile, SimConfig(), layout) as world:
        result = run_policy_episode(world, models, np.zeros(4), layout,
                                    chain=CartesianCommandChain(profile),
                                    config=RolloutConfig(max_duration_s=25.0, image_size=32,
                                                         rows_per_inference=ROWS))
    assert result.refusals == 0
    if own_layout:
        assert result.success, result.reason
        assert result.duration_s < len(episode) / 10.0 + 2.0  # about the expert's own time
    else:
        assert not result.success  # the chunks encode where this layout's cube was
