"""FrameTrigger: inference on fresh frames at most at its rate, the timer only when frames stop;
and the period figures of a fixed-rate output (core.timing)."""

import math

import numpy as np
import pytest

from hv2r_ros.core.frame_trigger import FrameTrigger
from hv2r_ros.core.timing import Samples, period_figures

CAMERA_PERIOD_S = 1 / 30


def run_frames(trigger, frames_s, cameras=("wrist", "overhead"), skew_s=0.0):
    """Deliver each camera's frame at ``t`` (the second ``skew_s`` later); start times."""
    starts = []
    for t in frames_s:
        for i, name in enumerate(cameras):
            now = t + i * skew_s
            if trigger.on_frame(name, now, now):
                trigger.started(now)
                starts.append(now)
    return starts


def test_thirty_hz_frames_give_exactly_the_fifteen_hz_rate_on_the_newest_pair():
    trigger = FrameTrigger(("wrist", "overhead"), rate_hz=15.0)
    jitter = np.random.default_rng(0).uniform(-0.003, 0.003, 300)
    frames = np.arange(300) * CAMERA_PERIOD_S + jitter
    starts = run_frames(trigger, frames, skew_s=0.001)
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert rate == pytest.approx(15.0, rel=0.01)
    # Every inference starts on the arrival of its pair's second frame (not on the first
    # frame of a pair completed by the other camera's older frame): no wait for a tick.
    seconds = np.array(frames) + 0.001
    assert all(np.isclose(seconds, s, atol=1e-12).any() for s in starts)


def test_cameras_out_of_phase_by_less_than_the_slack_still_pair():
    trigger = FrameTrigger(("wrist", "overhead"), rate_hz=15.0)  # slack 16.7 ms
    starts = run_frames(trigger, np.arange(90) * CAMERA_PERIOD_S, skew_s=0.012)
    assert len(starts) == pytest.approx(45, abs=1)


def test_no_inference_until_every_camera_has_a_new_frame():
    trigger = FrameTrigger(("wrist", "overhead"), rate_hz=15.0)
    assert not trigger.on_frame("wrist", 0.0, 0.0)
    assert trigger.on_frame("overhead", 0.0, 0.001)
    trigger.started(0.001)
    for k in range(1, 10):  # the overhead camera stalls: the wrist alone never starts one
        assert not trigger.on_frame("wrist", k * CAMERA_PERIOD_S, k * CAMERA_PERIOD_S)
    assert trigger.frame_starts == 1


def test_timer_steps_in_once_frames_are_missing_and_stays_out_while_they_flow():
    trigger = FrameTrigger(("wrist", "overhead"), rate_hz=10.0)
    period = trigger.period_s
    # Frames at 30 Hz: the timer (any phase) never starts an inference.
    for k in range(60):
        t = k * CAMERA_PERIOD_S
        for name in ("wrist", "overhead"):
            if trigger.on_frame(name, t, t):
                trigger.started(t)
        if k % 3 == 1 and trigger.on_timer(t + 0.005):
            trigger.started(t + 0.005)
    assert trigger.timer_starts == 0 and trigger.frame_starts == 20
    # Frames stop: ticks run a step (which holds and says why) once one is overdue by the
    # slack, every second tick at worst.
    end = 60 * CAMERA_PERIOD_S
    for i in range(10):
        t = end + period * (i + 1)
        if trigger.on_timer(t):
            trigger.started(t)
    assert 5 <= trigger.timer_starts <= 10


def test_a_requested_start_is_not_requested_twice():
    trigger = FrameTrigger(("wrist",), rate_hz=10.0)
    assert trigger.on_frame("wrist", 0.0, 0.0)
    assert not trigger.on_frame("wrist", 0.01, 0.01)  # pending: not started yet
    assert not trigger.on_timer(0.05)
    trigger.started(0.02)
    assert trigger.on_frame("wrist", 0.1, 0.1)


@pytest.mark.parametrize("kwargs", [dict(cameras=(), rate_hz=10.0), dict(cameras=("a",),
                                    rate_hz=0.0), dict(cameras=("a",), rate_hz=10.0, slack=0.5)])
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        FrameTrigger(**kwargs)


def test_period_figures_of_a_late_tick():
    times = [0.00, 0.01, 0.02, 0.035, 0.04, 0.05]
    figures = period_figures(times, 0.01)
    assert figures["count"] == 6 and figures["rate_hz"] == pytest.approx(100.0)
    assert figures["error_max_ms"] == pytest.approx(5.0)
    assert figures["error_p50_ms"] == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(period_figures([0.0], 0.01)["rate_hz"])


def test_samples_summary_and_window():
    samples = Samples()
    for value in (0.001, 0.002, 0.003, 0.010):
        samples.add(value)
    later = samples.since(2)
    assert later.summary_ms()["count"] == 2 and later.summary_ms()["max_ms"] == pytest.approx(10)
    assert samples.summary_ms()["p50_ms"] == pytest.approx(2.5)
    assert math.isnan(Samples().summary_ms()["p50_ms"])
