"""core.prompt progress, calibration, session and Spearman: progress toward subgoals, monotone
advancement, completion, thresholds calibrated on rollouts.

Rollouts are generated in embedding space: the path start -> subgoal 1 -> ... -> goal with
rests, shifted by a constant "domain gap" (robot views are not the human demo's) and noise.
"""

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import nct, norm, spearmanr

from hv2r_ros.core.prompt.calibration import Rollout, calibrate, demo_rollout, tolerance_factor
from hv2r_ros.core.prompt.evaluation import rank, spearman
from hv2r_ros.core.prompt.progress import (
    CalibrationError, ProgressCalibration, ProgressTracker,
)
from hv2r_ros.core.prompt.session import PromptSession, SessionConfig
from hv2r_ros.core.prompt.video import VideoFrames

DIM = 6
SUBGOALS = np.array([[4.0, 0, 0, 0, 0, 0], [4.0, 4.0, 0, 0, 0, 0], [0, 4.0, 4.0, 0, 0, 0]])
START = np.zeros(DIM)
GAP = np.array([0.6, -0.4, 0.3, 0.5, 0.0, -0.2])


def rollout(seed, *, gap=GAP, noise=0.05, rest_s=1.6, final_rest_s=3.0, stop_at=None,
            name=None, rate_hz=10.0):
    """Start -> each subgoal (ramp, rest; the last rest ``final_rest_s``), optionally stopping
    short at fraction ``stop_at`` of the way to the goal; positions shifted by ``gap`` plus
    Gaussian noise."""
    rng = np.random.default_rng(seed)
    points, rows = [START, *SUBGOALS], []
    for k in range(1, len(points)):
        a, b = points[k - 1], points[k]
        if stop_at is not None and k == len(points) - 1:
            b = a + (b - a) * stop_at
        steps = int(rng.integers(8, 15))
        rows += [a + (b - a) * i / steps for i in range(1, steps + 1)]
        rows += [b] * int((final_rest_s if k == len(points) - 1 else rest_s) * rate_hz)
    rows = np.array(rows) + gap + rng.normal(scale=noise, size=(len(rows), DIM))
    return Rollout(rows, np.arange(len(rows)) / rate_hz, name or f"rollout {seed}")


def calibration(**overrides):
    fields = dict(advance_thresholds=(0.8, 0.8), complete_threshold=0.9, hold_s=0.3,
                  smoothing_s=0.0)
    fields.update(overrides)
    return ProgressCalibration(**fields)


def run(tracker, roll):
    tracker.reset()
    return [tracker.update(e, float(t)) for e, t in zip(roll.embeddings, roll.times_s)]


def test_progress_is_one_minus_relative_distance():
    tracker = ProgressTracker(SUBGOALS[:1], calibration(advance_thresholds=(),
                                                        complete_threshold=1.0, hold_s=10.0),
                              START)
    states = [tracker.update(np.array([x, 0, 0, 0, 0, 0.0]), i * 0.1)
              for i, x in enumerate([0.0, 1.0, 2.0, 3.0, 5.0])]
    assert [s.progress for s in states] == pytest.approx([0.0, 0.25, 0.5, 0.75, 0.75])
    assert [s.task_progress for s in states] == pytest.approx([0.0, 0.25, 0.5, 0.75, 0.75])
    far = tracker.update(np.array([-20.0, 0, 0, 0, 0, 0]), 1.0)
    assert far.progress == -1.0 and far.task_progress == 0.0  # clipped


def test_smoothing_is_an_exponential_average_in_time():
    tracker = ProgressTracker(SUBGOALS[:1], calibration(advance_thresholds=(), smoothing_s=0.5,
                                                        hold_s=10.0), START)
    tracker.update(np.zeros(DIM), 0.0)
    state = tracker.update(SUBGOALS[0], 0.2)  # raw progress jumps from 0 to 1
    assert state.progress == pytest.approx(1 - math.exp(-0.2 / 0.5))
    state = tracker.update(SUBGOALS[0], 0.7)  # irregular step: 0.5 s
    assert state.progress == pytest.approx(1 - math.exp(-0.7 / 0.5))


def test_advance_and_complete_only_after_holding_and_completion_latches():
    tracker = ProgressTracker(SUBGOALS, calibration(), START)
    times = iter(np.arange(0, 100, 0.1))
    assert not tracker.update(SUBGOALS[0], next(times)).advanced  # above, not yet held
    assert not tracker.update(SUBGOALS[0], next(times)).advanced
    assert not tracker.update(SUBGOALS[0], next(times)).advanced
    advanced = tracker.update(SUBGOALS[0], next(times))  # held 0.3 s
    assert advanced.advanced and advanced.subgoal == 1 and advanced.task_progress == \
        pytest.approx(1 / 3)
    tracker.update(SUBGOALS[1], next(times))
    dip = tracker.update(SUBGOALS[0], next(times))  # leaves: the hold restarts
    assert dip.subgoal == 1 and not dip.advanced
    for _ in range(3):
        assert not tracker.update(SUBGOALS[1], next(times)).advanced
    assert tracker.update(SUBGOALS[1], next(times)).subgoal == 2
    states = [tracker.update(SUBGOALS[2], next(times)) for _ in range(5)]
    assert [s.complete for s in states] == [False, False, False, True, True]
    assert [s.advanced for s in states] == [False, False, False, True, False]
    away = tracker.update(START, next(times))
    assert away.complete and away.task_progress == 1.0 and away.subgoal == 2
    tracker.reset()
    assert tracker.state().subgoal == 0 and not tracker.state().complete


@pytest.mark.parametrize("embedding, time_s", [
    (np.full(DIM, np.nan), 1.0), (np.zeros(DIM + 1), 1.0), (np.zeros(DIM), 0.5),
    (np.zeros(DIM), math.inf)])
def test_bad_observations_are_ignored_without_raising(embedding, time_s):
    tracker = ProgressTracker(SUBGOALS, calibration(), START)
    before = tracker.update(np.full(DIM, 1.0), 0.5)
    state = tracker.update(embedding, time_s)
    assert not state.accepted and state.progress == before.progress
    assert tracker.update(np.full(DIM, 2.0), 0.6).accepted


def test_an_observation_already_on_a_subgoal_is_done_with_it():
    tracker = ProgressTracker(SUBGOALS, calibration(hold_s=0.0), START)
    state = tracker.update(SUBGOALS[0] + 1e-9, 0.0)  # d_0 floored: no division by ~0
    assert state.advanced and state.subgoal == 1


observation = st.one_of(
    st.lists(st.floats(-10, 10), min_size=DIM, max_size=DIM),
    st.just([math.nan] * DIM), st.lists(st.floats(-10, 10), min_size=2, max_size=2))


@settings(max_examples=300)
@given(steps=st.lists(st.tuples(observation, st.floats(-0.05, 0.3)), min_size=1, max_size=80),
       advance=st.tuples(st.floats(0.05, 1.0), st.floats(0.05, 1.0)),
       complete=st.floats(0.05, 1.0),
       hold_s=st.floats(0.0, 0.5), smoothing_s=st.floats(0.0, 1.0))
def test_property_advancement_is_monotone_and_completion_latched(steps, advance, complete,
                                                                 hold_s, smoothing_s):
    tracker = ProgressTracker(SUBGOALS, ProgressCalibration(advance, complete, hold_s,
                                                            smoothing_s), START)
    time_s, previous = 0.0, tracker.state()
    for values, dt in steps:
        time_s += dt
        state = tracker.update(np.array(values), time_s)
        assert state.subgoal >= previous.subgoal and state.subgoal - previous.subgoal <= 1
        assert state.complete >= previous.complete
        assert -1.0 <= state.progress <= 1.0 and 0.0 <= state.task_progress <= 1.0
        assert not state.complete or (state.subgoal == 2 and state.task_progress == 1.0)
        assert state.advanced == (state.subgoal > previous.subgoal or
                                  state.complete > previous.complete)
        previous = state


@pytest.mark.parametrize("seed", range(25))
def test_generated_paths_through_every_subgoal_complete_in_order(seed):
    rng = np.random.default_rng(seed)
    tracker = ProgressTracker(SUBGOALS, calibration(advance_thresholds=(0.7, 0.7),
                                                    complete_threshold=0.8), START)
    gap = rng.normal(scale=0.2, size=DIM)
    states = run(tracker, rollout(seed, gap=gap, noise=0.05))
    advanced_at = [i for i, s in enumerate(states) if s.advanced]
    assert [states[i].subgoal for i in advanced_at] == [1, 2, 2] and states[-1].complete
    stopped = run(tracker, rollout(seed, gap=gap, stop_at=0.3, noise=0.05))
    assert stopped[-1].subgoal == 2 and not stopped[-1].complete


def test_calibrated_thresholds_complete_held_out_successes_and_not_failures():
    cal = calibrate(SUBGOALS, [rollout(s) for s in range(5)], hold_s=0.5, smoothing_s=0.3,
                    start_embedding=START, source="5 generated rollouts")
    assert len(cal.thresholds) == 3 and all(0 < t <= 1 for t in cal.thresholds)
    assert len(cal.spread) == 3 and all(s > 0 for s in cal.spread)
    assert cal.source == "5 generated rollouts"
    tracker = ProgressTracker(SUBGOALS, cal, START)
    completed = [run(tracker, rollout(seed))[-1].complete for seed in range(100, 140)]
    assert sum(completed) >= 39, f"{sum(completed)} of 40 held-out successes completed"
    short = [run(tracker, rollout(seed, stop_at=0.6))[-1].complete for seed in range(100, 140)]
    assert not any(short), "a rollout stopping short of the goal completed"


def test_failed_rollouts_raise_the_completion_threshold_between_the_two():
    successes = [rollout(s) for s in range(3)]
    near_misses = [rollout(10 + s, stop_at=0.95) for s in range(2)]  # 5 % short of the goal
    loose = calibrate(SUBGOALS, successes, hold_s=0.5, smoothing_s=0.3, start_embedding=START)
    tracker = ProgressTracker(SUBGOALS, loose, START)
    assert any(run(tracker, r)[-1].complete for r in near_misses), "premise: they complete"
    tight = calibrate(SUBGOALS, successes, hold_s=0.5, smoothing_s=0.3, start_embedding=START,
                      failures=near_misses)
    assert tight.complete_threshold > loose.complete_threshold
    tracker = ProgressTracker(SUBGOALS, tight, START)
    assert not any(run(tracker, r)[-1].complete for r in near_misses)
    assert all(run(tracker, r)[-1].complete for r in successes)


def test_calibration_errors_name_the_rollout():
    with pytest.raises(CalibrationError, match="at least one successful rollout"):
        calibrate(SUBGOALS, [], start_embedding=START)
    away = Rollout(np.linspace(START, -SUBGOALS[0], 30), np.arange(30) / 10.0, "away.mp4")
    with pytest.raises(CalibrationError, match="away.mp4.*never gets closer to subgoal 1 of 3"):
        calibrate(SUBGOALS, [away], start_embedding=START)
    short = rollout(0, name="short.mp4")
    with pytest.raises(CalibrationError, match="short.mp4.*less than hold_s = 30 s"):
        calibrate(SUBGOALS, [short], hold_s=30.0, start_embedding=START)
    with pytest.raises(CalibrationError, match=r"bad.mp4.*\(T >= 2, 6\)"):
        calibrate(SUBGOALS, [Rollout(np.zeros((5, 3)), np.arange(5.0), "bad.mp4")])
    same = rollout(50, name="same.mp4")
    with pytest.raises(CalibrationError, match="same.mp4.*cannot tell success from failure"):
        calibrate(SUBGOALS, [rollout(50)], start_embedding=START, failures=[same])


def test_calibration_file_round_trip_and_errors(tmp_path):
    cal = calibration(spread=(0.01, 0.02, 0.03), source="3 rollouts", encoder_digest="abc",
                      spec_digest="def")
    assert ProgressCalibration.load(cal.save(tmp_path / "cal.json")) == cal
    for text, words in [("{", "not a readable"), ('{"format": "x"}', "format is not"),
                        ('{"format": "hv2r.progress_calibration/1"}', "missing or malformed")]:
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(CalibrationError, match=words) as info:
            ProgressCalibration.load(tmp_path / "bad.json")
        assert str(tmp_path / "bad.json") in str(info.value)
    data = cal.save(tmp_path / "range.json").read_text().replace('"complete_threshold": 0.9',
                                                                  '"complete_threshold": 1.5')
    (tmp_path / "range.json").write_text(data)
    with pytest.raises(CalibrationError, match="range.json: complete_threshold"):
        ProgressCalibration.load(tmp_path / "range.json")
    with pytest.raises(CalibrationError, match="does not exist"):
        ProgressCalibration.load(tmp_path / "missing.json")


def write_demo(path, colours, hold=12, blend=6, fps=10.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (32, 24))
    frames = []
    for k, colour in enumerate(colours):
        if k:
            previous = colours[k - 1]
            frames += [tuple(int(a + (b - a) * i / (blend + 1)) for a, b in zip(previous, colour))
                       for i in range(1, blend + 1)]
        frames += [colour] * hold
    for rgb in frames:
        writer.write(np.full((24, 32, 3), rgb[::-1], np.uint8))
    writer.release()
    return path, [np.full((24, 32, 3), rgb, np.uint8) for rgb in frames]


class MeanColour:
    def __init__(self, path):
        self.path = Path(path)

    def embed(self, images):
        return np.array([i.reshape(-1, 3).mean(axis=0) for i in images], np.float32)


def test_session_tracks_a_demo_calibrated_on_itself_and_keeps_it_on_a_bad_path(tmp_path):
    (tmp_path / "encoder.onnx").write_bytes(b"hashed")
    session = PromptSession(MeanColour(tmp_path / "encoder.onnx"),
                            SessionConfig(cache_dir=tmp_path / "cache", hold_s=0.3,
                                          smoothing_s=0.2))
    colours = [(20, 20, 20), (220, 30, 30), (220, 220, 30)]
    video, frames = write_demo(tmp_path / "demo.avi", colours, hold=14)
    spec = session.load(video)
    assert spec.subgoal_count == 2 and "the demo itself" in session.calibration_note
    # The demo's own decoded frames: what the thresholds were calibrated on (a robot's views
    # would need robot rollouts, see docs/prompt.md).
    states = [session.observe(f.rgb, f.time_s) for f in VideoFrames(video)]
    assert states[-1].complete and [s.subgoal for s in states if s.advanced] == [1, 1]
    with pytest.raises(Exception, match="does not exist"):
        session.load(tmp_path / "missing.mp4")
    assert session.spec is spec and session.tracker.complete
    image = tmp_path / "goal.png"
    cv2.imwrite(str(image), frames[-1][..., ::-1])
    session.load(image)
    assert session.tracker is None and "not tracked" in session.calibration_note
    assert session.observe(frames[0], 100.0) is None


def test_session_uses_a_calibration_file_of_its_encoder_only(tmp_path):
    (tmp_path / "encoder.onnx").write_bytes(b"hashed")
    encoder = MeanColour(tmp_path / "encoder.onnx")
    other = calibration(encoder_digest="another encoder").save(tmp_path / "other.json")
    with pytest.raises(CalibrationError, match="other.json.*another encoder"):
        PromptSession(encoder, SessionConfig(calibration_file=str(other)))
    mine = calibration(advance_thresholds=(), source="robot rollouts").save(
        tmp_path / "mine.json")
    session = PromptSession(encoder, SessionConfig(calibration_file=str(mine)))
    video, _ = write_demo(tmp_path / "demo.avi", [(20, 20, 20), (220, 30, 30)])
    session.load(video)
    assert session.tracker.calibration.complete_threshold == 0.9
    assert "robot rollouts" in session.calibration_note


def test_demo_rollout_completes_with_its_own_calibration(tmp_path):
    (tmp_path / "encoder.onnx").write_bytes(b"hashed")
    session = PromptSession(MeanColour(tmp_path / "encoder.onnx"))
    video, _ = write_demo(tmp_path / "demo.avi", [(0, 0, 0), (200, 0, 0), (200, 200, 0),
                                                  (0, 200, 200)], hold=16)
    spec = session.load(video)
    demo = demo_rollout(spec)
    assert run(session.tracker, demo)[-1].complete


@pytest.mark.parametrize("seed", range(30))
def test_spearman_matches_the_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 40))
    a = rng.integers(0, 6, n).astype(float)  # ties
    b = a + rng.normal(scale=rng.uniform(0.1, 5), size=n)
    expected = spearmanr(a, b).statistic
    if np.isnan(expected):
        assert math.isnan(spearman(a, b))
    else:
        assert spearman(a, b) == pytest.approx(expected, abs=1e-12)


def test_spearman_edges():
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 4, 9]) == pytest.approx(1.0)  # monotone, not linear
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(spearman([1], [2]))
    np.testing.assert_array_equal(rank([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
    with pytest.raises(ValueError, match="lengths differ"):
        spearman([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        spearman([1, math.nan], [1, 2])


@pytest.mark.parametrize("n", [2, 3, 5, 10, 20, 30, 31, 40, 200])
def test_tolerance_factor_matches_the_noncentral_t(n):
    exact = nct.ppf(0.95, n - 1, norm.ppf(0.99) * math.sqrt(n)) / math.sqrt(n)
    assert tolerance_factor(n) == pytest.approx(exact, rel=5e-3)
    with pytest.raises(ValueError):
        tolerance_factor(1)
