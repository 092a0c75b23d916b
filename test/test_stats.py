"""Rolling stage statistics (pure numpy, no ROS)."""

import math

import numpy as np
import pytest

from hv2r_ros.core.stats import StageStats
from hv2r_ros.core.status import Status


def test_empty_summary():
    summary = StageStats().summary(now_s=5.0)
    assert summary.count == 0 and summary.rate_hz == 0.0 and summary.last_status is None
    assert math.isnan(summary.latency_p50_ms) and math.isnan(summary.latency_p99_ms)
    assert summary.age_s == math.inf and summary.hold_count == 0


def test_rate_and_latency_percentiles():
    stats = StageStats(capacity=1000)
    latencies = np.linspace(0.001, 0.100, 100)  # 1 .. 100 ms
    for i, latency in enumerate(latencies):
        stats.record(10.0 + i * 0.01, latency)  # 100 Hz
    summary = stats.summary(now_s=11.5)
    assert summary.count == 100
    assert summary.rate_hz == pytest.approx(100.0)
    assert summary.latency_p50_ms == pytest.approx(50.5)
    assert summary.latency_p99_ms == pytest.approx(np.percentile(latencies, 99) * 1e3)
    assert summary.age_s == pytest.approx(11.5 - 10.99)
    assert summary.last_status is Status.OK


def test_ring_buffer_keeps_only_the_last_window():
    stats = StageStats(capacity=10)
    for i in range(50):  # slow and laggy first, then fast and quick
        slow = i < 40
        stats.record(i * (1.0 if slow else 0.1) + (0.0 if slow else 40.0), 0.5 if slow else 0.002)
    summary = stats.summary()
    assert summary.count == 50 and summary.age_s == 0.0
    assert summary.rate_hz == pytest.approx(10.0)
    assert summary.latency_p99_ms == pytest.approx(2.0)


def test_holds_are_counted_by_status_and_events_without_latency_are_allowed():
    stats = StageStats()
    stats.record(0.0, 0.01)
    stats.record(0.1, None, Status.HOLD_NON_FINITE)
    stats.record(0.2, None, Status.HOLD_NON_FINITE)
    stats.record(0.3, 0.02, Status.SCALED_VELOCITY)
    stats.record(0.4, None, Status.HOLD_STALE)
    summary = stats.summary(now_s=0.5)
    assert summary.holds == {Status.HOLD_NON_FINITE: 2, Status.HOLD_STALE: 1}
    assert summary.hold_count == 3 and summary.last_status is Status.HOLD_STALE
    assert summary.latency_p50_ms == pytest.approx(15.0)
    assert summary.rate_hz == pytest.approx(10.0)
    stats.reset()
    assert stats.summary().count == 0 and stats.summary().holds == {}


def test_capacity_is_validated():
    with pytest.raises(ValueError):
        StageStats(capacity=1)


def test_wilson_interval_matches_reference_values():
    from hv2r_ros.core.stats import wilson_interval

    low, high = wilson_interval(50, 100)
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775
    low, high = wilson_interval(10, 10)
    assert high == pytest.approx(1.0) and round(low, 4) == 0.7225
    with pytest.raises(ValueError):
        wilson_interval(3, 0)
