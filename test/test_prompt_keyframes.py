"""core.prompt keyframes (where the embedding trajectory settles) and the keyframe F1 score.

Trajectories are generated with a known structure: rests (constant embeddings) joined by linear
ramps, so every settle time is known to the sample. A fake encoder (mean colour) runs the same
structure through a real video file.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.prompt.build import build_task_spec
from hv2r_ros.core.prompt.evaluation import keyframe_f1
from hv2r_ros.core.prompt.frames import SamplingConfig
from hv2r_ros.core.prompt.keyframes import KeyframeConfig, find_keyframes

RATE_HZ = 10.0


def trajectory(rng, states=4, dim=8, rest=(6, 20), ramp=(3, 10), end_in_ramp=False):
    """Rests joined by ramps; returns (embeddings, times, state vectors, settle indices)."""
    points = [rng.normal(size=dim) * 3]
    while len(points) < states:
        candidate = rng.normal(size=dim) * 3
        if min(np.linalg.norm(candidate - p) for p in points) > 3.0:
            points.append(candidate)
    rows, settles = [], []
    for k, point in enumerate(points):
        if k:
            settles.append(len(rows))
        rows += [point] * int(rng.integers(*rest))
        if k + 1 < len(points) or end_in_ramp:
            target = points[k + 1] if k + 1 < len(points) else rng.normal(size=dim) * 3
            steps = int(rng.integers(*ramp))
            rows += [point + (target - point) * i / (steps + 1) for i in range(1, steps + 1)]
    embeddings = np.array(rows)
    return embeddings, np.arange(len(rows)) / RATE_HZ, np.array(points), settles


@pytest.mark.parametrize("seed", range(40))
def test_settle_points_are_found_exactly(seed):
    rng = np.random.default_rng(seed)
    embeddings, times, states, settles = trajectory(rng, states=int(rng.integers(2, 6)))
    found = find_keyframes(embeddings, times)
    assert found.runs[:, 0].tolist() == settles, (found.runs, settles)
    np.testing.assert_allclose(found.times_s, times[settles])
    np.testing.assert_allclose(found.embeddings, states[1:], atol=1e-5)
    assert found.ends_settled and found.start_run[0] == 0
    np.testing.assert_array_equal(found.start_run[1], settles[0] - 1 - (
        np.flatnonzero(np.any(embeddings[:settles[0]] != states[0], axis=1)).size))
    # the representative frame of each subgoal is one of its rest's samples
    assert all(a <= i <= b for (a, b), i in zip(found.runs, found.indices))


@pytest.mark.parametrize("seed", range(20))
def test_noise_moves_settle_points_by_at_most_one_sample(seed):
    rng = np.random.default_rng(100 + seed)
    embeddings, times, states, settles = trajectory(rng, states=4)
    noisy = embeddings + rng.normal(scale=0.02, size=embeddings.shape)
    found = find_keyframes(noisy, times)
    assert len(found.runs) == len(settles), (found.runs, settles)
    assert np.all(np.abs(found.runs[:, 0] - settles) <= 1), (found.runs[:, 0], settles)
    np.testing.assert_allclose(found.embeddings, states[1:], atol=0.05)


def test_a_pause_shorter_than_the_minimum_is_not_a_subgoal():
    a, b = np.zeros(4), np.full(4, 4.0)
    ramp = [a + (b - a) * i / 11 for i in range(1, 11)]
    pause = [ramp[4]] * 3  # 0.3 s mid-way, less than min_settle_s = 0.5 s
    rows = [a] * 10 + ramp[:5] + pause + ramp[5:] + [b] * 10
    found = find_keyframes(np.array(rows), np.arange(len(rows)) / RATE_HZ)
    assert found.runs.tolist() == [[len(rows) - 10, len(rows) - 1]]


def test_a_demo_ending_in_motion_takes_its_last_frame_as_the_goal():
    embeddings, times, states, settles = trajectory(np.random.default_rng(7), states=3,
                                                    end_in_ramp=True)
    found = find_keyframes(embeddings, times)
    assert not found.ends_settled
    assert found.runs[:-1, 0].tolist() == settles
    assert found.runs[-1].tolist() == [len(times) - 1] * 2 and found.times_s[-1] == times[-1]
    np.testing.assert_allclose(found.embeddings[-1], embeddings[-1], rtol=1e-6)


def test_a_demo_at_rest_throughout_is_its_own_goal():
    embeddings = np.tile(np.arange(5.0), (30, 1))
    found = find_keyframes(embeddings, np.arange(30) / RATE_HZ)
    assert found.runs.tolist() == [[0, 29]] and found.start_run is None and found.ends_settled
    np.testing.assert_allclose(found.embeddings[0], np.arange(5.0))


def test_a_glitch_inside_a_rest_does_not_split_it():
    a, b = np.zeros(4), np.full(4, 5.0)
    rows = [a] * 10 + [a + (b - a) * i / 6 for i in range(1, 6)] + [b] * 12
    rows += [b + 1.0] + [b] * 12  # one wild frame in the middle of the final rest
    found = find_keyframes(np.array(rows), np.arange(len(rows)) / RATE_HZ)
    assert found.runs.tolist() == [[15, len(rows) - 1]]


@pytest.mark.parametrize("field, value", [("min_settle_s", 0.0), ("settle_fraction", -1.0),
                                          ("smoothing_s", float("nan"))])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ConfigError, match=f"keyframes.{field}"):
        KeyframeConfig(**{field: value})


@pytest.mark.parametrize("embeddings, times, words", [
    (np.zeros((1, 3)), np.zeros(1), "N >= 2"),
    (np.full((3, 2), np.nan), np.arange(3.0), "finite"),
    (np.zeros((3, 2)), np.array([0.0, 0.2, 0.1]), "increasing"),
])
def test_bad_inputs_are_programming_errors(embeddings, times, words):
    with pytest.raises(ValueError, match=words):
        find_keyframes(embeddings, times)


def test_keyframes_through_a_real_video(tmp_path):
    """Colours held and blended in a video file: the settle times survive the codec."""
    colours = [(20, 20, 20), (220, 30, 30), (220, 220, 30), (30, 200, 220)]
    frames, truth = [], []
    for k, colour in enumerate(colours):
        if k:
            truth.append(len(frames) / 30.0)
        frames += [colour] * 45
        if k + 1 < len(colours):
            frames += [tuple(int(a + (b - a) * i / 16) for a, b in zip(colour, colours[k + 1]))
                       for i in range(1, 16)]
    video = tmp_path / "demo.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (32, 24))
    for rgb in frames:
        writer.write(np.full((24, 32, 3), rgb[::-1], np.uint8))
    writer.release()

    class MeanColour:
        path = Path(tmp_path / "encoder.onnx")

        def embed(self, images):
            return np.array([i.reshape(-1, 3).mean(axis=0) for i in images], np.float32)

    spec, _ = build_task_spec(video, MeanColour(), sampling=SamplingConfig(rate_hz=RATE_HZ),
                              encoder_hash="mean colour")
    score = keyframe_f1(spec.subgoal_times_s, truth, tolerance_s=1 / RATE_HZ)
    assert score.f1 == 1.0, (spec.subgoal_times_s, truth)
    np.testing.assert_allclose(spec.goal_embedding, colours[-1], atol=4)
    assert spec.subgoal_frames.shape == (3, 24, 32, 3)
    np.testing.assert_allclose(spec.start_embedding, colours[0], atol=4)


def test_keyframe_f1_counts():
    exact = keyframe_f1([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 0.1)
    assert (exact.precision, exact.recall, exact.f1, exact.mean_error_s) == (1, 1, 1, 0)
    shifted = keyframe_f1([1.05, 2.2, 3.0, 5.0], [1.0, 2.0, 3.0], 0.1)
    assert shifted.precision == 0.5 and shifted.recall == 2 / 3
    assert shifted.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert shifted.mean_error_s == pytest.approx(0.025)
    doubled = keyframe_f1([0.95, 1.05], [1.0], 0.1)  # one true keyframe matches once
    assert doubled.recall == 1.0 and doubled.precision == 0.5 and len(doubled.matches) == 1
    assert keyframe_f1([], [], 0.1).f1 == 1.0
    assert keyframe_f1([], [1.0], 0.1).f1 == 0.0 and keyframe_f1([1.0], [], 0.1).f1 == 0.0
    with pytest.raises(ValueError, match="tolerance_s"):
        keyframe_f1([1.0], [1.0], -0.1)


@pytest.mark.parametrize("seed", range(200))
def test_keyframe_matching_is_a_maximum_matching(seed):
    rng = np.random.default_rng(seed)
    predicted = rng.uniform(0, 3, rng.integers(0, 7))
    true = rng.uniform(0, 3, rng.integers(0, 7))
    tolerance = rng.uniform(0, 0.6)
    score = keyframe_f1(predicted, true, tolerance)
    best = 0
    if predicted.size and true.size:
        close = np.abs(predicted[:, None] - true[None, :]) <= tolerance
        rows, cols = linear_sum_assignment(-close.astype(float))
        best = int(close[rows, cols].sum())
    assert len(score.matches) == best
    assert all(abs(predicted[i] - true[j]) <= tolerance + 1e-9 for i, j in score.matches)
    assert len({i for i, _ in score.matches}) == len({j for _, j in score.matches}) == best
