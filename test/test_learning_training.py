"""Training objectives: time-contrastive pretraining learns time structure; behaviour cloning
uses the goal, and the goal-blind wrapper cannot."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hv2r_ros.core.errors import ConfigError  # noqa: E402
from hv2r_ros.learning.architectures import build_encoder, build_policy  # noqa: E402
from hv2r_ros.learning.behaviour_cloning import (  # noqa: E402
    BCConfig, BCData, GoalBlind, normalisation_stats, train_policy)
from hv2r_ros.learning.pretrain import (  # noqa: E402
    PretrainConfig, pretrain_encoder, resize_videos, tcn_loss)
from hv2r_ros.learning.architectures.resnet import resnet18  # noqa: E402
from hv2r_ros.learning.architectures import ENCODERS  # noqa: E402


def _moving_square_videos(count: int, frames: int = 24, size: int = 32, seed: int = 0):
    """A bright square crossing a noisy background, a different path per video."""
    rng = np.random.default_rng(seed)
    videos = []
    for _ in range(count):
        start, end = rng.integers(2, size - 10, 2), rng.integers(2, size - 10, 2)
        background = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        colour = rng.integers(150, 256, 3)
        video = np.empty((frames, size, size, 3), np.uint8)
        for t in range(frames):
            y, x = (start + (end - start) * t / (frames - 1)).astype(int)
            frame = background.copy()
            frame[y:y + 8, x:x + 8] = colour
            video[t] = frame
        videos.append(video)
    return videos


def _time_rank_correlation(model, spec, videos):
    """Mean Spearman correlation between |t_i - t_0| and embedding distance to frame 0."""
    from hv2r_ros.core.models.preprocess import Preprocessor
    prep = Preprocessor(spec, len(videos[0]))
    scores = []
    with torch.no_grad():
        for video in videos:
            z = model(torch.from_numpy(prep(list(video)).copy())).numpy()
            dist = np.linalg.norm(z - z[0], axis=1)
            ranks = np.argsort(np.argsort(dist))
            scores.append(np.corrcoef(ranks, np.arange(len(video)))[0, 1])
    return float(np.mean(scores))


def test_tcn_loss_prefers_the_positive():
    anchor = torch.zeros(4, 3)
    near = anchor + 0.01
    far = anchor + 5.0
    anchor_ = anchor + torch.arange(4.0)[:, None] * 10  # other videos far apart
    good, acc_good = tcn_loss(anchor_, anchor_ + 0.01, anchor_ + 5.0)
    bad, acc_bad = tcn_loss(anchor_, anchor_ + 5.0, anchor_ + 0.01)
    assert good < bad and acc_good == 1.0 and acc_bad == 0.0
    assert near.shape == far.shape


def test_pretraining_learns_temporal_structure_better_than_random_init():
    arch = ENCODERS["reference-small"]
    torch.manual_seed(0)
    model = resnet18(8, 16)
    spec = arch.spec(model, 32, "synthetic")
    videos = resize_videos(_moving_square_videos(12), spec)
    held_out = resize_videos(_moving_square_videos(6, seed=1), spec)
    model.eval()
    before = _time_rank_correlation(model, spec, held_out)
    history = pretrain_encoder(model, spec, videos, PretrainConfig(
        steps=300, videos_per_batch=8, positive_window=2, negative_gap=8, shift_px=2,
        seed=0),
        log=lambda line: None, log_every=100)
    after = _time_rank_correlation(model, spec, held_out)
    assert history[-1]["loss"] < history[0]["loss"]
    assert after > 0.7 and after > before + 0.2, (before, after)


def test_pretraining_rejects_videos_too_short():
    model = resnet18(8, 16)
    spec = ENCODERS["reference-small"].spec(model, 32, "")
    with pytest.raises(ConfigError, match="negative_gap"):
        pretrain_encoder(model, spec, [np.zeros((5, 32, 32, 3), np.uint8)] * 3,
                         PretrainConfig(steps=1))


def _goal_data(n_episodes=40, per_episode=20, seed=0):
    """The action is the goal's direction: only a policy that reads the goal can fit it."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(4, 3))
    goal_codes = rng.normal(size=(4, 16))
    cams, goals, proprio, actions, episode = [], [], [], [], []
    for e in range(n_episodes):
        k = e % 4
        for _ in range(per_episode):
            cams.append(rng.normal(size=(2, 16)))
            goals.append(goal_codes[k] + 0.05 * rng.normal(size=16))
            proprio.append(rng.normal(size=7))
            actions.append(np.tile(np.append(directions[k], 1.0), (4, 1)))
            episode.append(e)
    return BCData(np.float32(cams), np.float32(goals), np.float32(proprio),
                  np.float32(actions), np.array(episode))


def test_behaviour_cloning_uses_the_goal_and_goal_blind_cannot():
    data = _goal_data()
    config = BCConfig(epochs=40, batch_size=64, validation_fraction=0.2, seed=0)
    torch.manual_seed(0)
    policy = build_policy("mlp", 2, 16, 7, 4, 4)
    _, history = train_policy(policy, data, config, log=lambda line: None)
    blind = GoalBlind(build_policy("mlp", 2, 16, 7, 4, 4))
    _, blind_history = train_policy(blind, data, config, log=lambda line: None)
    assert history[-1]["validation_loss"] < 0.05
    assert blind_history[-1]["validation_loss"] > 0.3


def test_normalisation_stats_floor_constant_columns():
    data = _goal_data(n_episodes=4, per_episode=3)
    stats = normalisation_stats(data)
    assert len(stats["action_mean"]) == 4 and len(stats["proprio_std"]) == 7
    assert stats["action_std"][3] == pytest.approx(1e-3)  # the constant gripper column


def test_bc_data_rejects_non_finite_and_mismatched_samples():
    data = _goal_data(n_episodes=2, per_episode=2)
    bad = data.actions.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ConfigError, match="non-finite"):
        BCData(data.camera_embeddings, data.goal_embeddings, data.proprio, bad, data.episode)
    with pytest.raises(ConfigError, match="counts differ"):
        BCData(data.camera_embeddings[:1], data.goal_embeddings, data.proprio, data.actions,
               data.episode)


def test_task_end_keeps_one_second_after_the_last_release():
    from hv2r_ros.learning.training_data import task_end

    actions = np.zeros((60, 4, 7))
    actions[10:30, 0, 6] = 1.0  # closed from 1 s to 3 s at 10 Hz
    assert task_end(actions, 10.0, 1.0) == 40
    assert task_end(actions, 10.0, 10.0) == 60
    assert task_end(np.zeros((5, 4, 7)), 10.0) == 5  # never closed: keep everything
