"""Rolling statistics of one pipeline stage: rate, latency percentiles, hold counts.

Pure numpy, no ROS. A fixed-size ring buffer holds the receipt times and latencies of the last
``capacity`` events, so memory and the cost of a summary stay bounded however long the node
runs; hold counts are totals since start (or ``reset``).
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Mapping

import numpy as np

from hv2r_ros.core.status import Status

__all__ = ["StageStats", "StageSummary"]


@dataclasses.dataclass(frozen=True)
class StageSummary:
    """What a stage did lately.

    Attributes:
        count: Events recorded since start (or reset).
        rate_hz: Event rate over the window [Hz]; 0 with fewer than two events in it.
        latency_p50_ms: Median latency over the window [ms]; NaN when none was recorded.
        latency_p99_ms: 99th percentile latency over the window [ms]; NaN when none.
        last_status: Status of the latest event, None before the first.
        age_s: Time since the latest event [s] at summary time; inf before the first.
        holds: Hold status -> events with that status since start.
    """

    count: int
    rate_hz: float
    latency_p50_ms: float
    latency_p99_ms: float
    last_status: Status | None
    age_s: float
    holds: Mapping[Status, int]

    @property
    def hold_count(self) -> int:
        """Events that held the robot since start."""
        return sum(self.holds.values())


class StageStats:
    """Ring-buffer statistics of one stage (a callback, a filter, the IK).

    Args:
        capacity: Events kept for rate and latency percentiles (>= 2).

    Raises:
        ValueError: ``capacity`` below 2.
    """

    def __init__(self, capacity: int = 256) -> None:
        if int(capacity) < 2:
            raise ValueError(f"capacity must be at least 2, got {capacity!r}")
        self.capacity = int(capacity)
        self._times = np.full(self.capacity, np.nan)
        self._latencies = np.full(self.capacity, np.nan)
        self._next = 0
        self.count = 0
        self.last_status: Status | None = None
        self.holds: collections.Counter[Status] = collections.Counter()

    def reset(self) -> None:
        """Forget every event."""
        self._times.fill(np.nan)
        self._latencies.fill(np.nan)
        self._next = 0
        self.count = 0
        self.last_status = None
        self.holds.clear()

    def record(self, now_s: float, latency_s: float | None = None,
               status: Status = Status.OK) -> None:
        """Record one event.

        Args:
            now_s: Receipt (or completion) time on a monotonic clock [s].
            latency_s: Its latency [s] (e.g. now minus the observation's capture time), or
                None when it has none (a rejected message with no usable stamp).
            status: What the stage did.
        """
        i = self._next
        self._times[i] = now_s
        self._latencies[i] = np.nan if latency_s is None else latency_s
        self._next = (i + 1) % self.capacity
        self.count += 1
        self.last_status = status
        if status.is_hold:
            self.holds[status] += 1

    def summary(self, now_s: float | None = None) -> StageSummary:
        """Rate, latency percentiles and holds over the window.

        Args:
            now_s: Current time on the ``record`` clock [s], for ``age_s``; the latest event's
                time when None.
        """
        times = self._times[np.isfinite(self._times)]
        rate = 0.0
        if times.size >= 2:
            span = float(times.max() - times.min())
            rate = (times.size - 1) / span if span > 0.0 else 0.0
        latencies = self._latencies[np.isfinite(self._latencies)]
        p50 = p99 = math.nan
        if latencies.size:
            p50, p99 = (float(v) * 1e3 for v in np.percentile(latencies, (50.0, 99.0)))
        last = self._times[(self._next - 1) % self.capacity]
        if self.count == 0:
            age = math.inf
        else:
            age = 0.0 if now_s is None else max(0.0, float(now_s) - float(last))
        return StageSummary(self.count, rate, p50, p99, self.last_status, age, dict(self.holds))


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a success rate (95 % for the default ``z``).

    Args:
        successes: Successful trials.
        trials: All trials (> 0).
        z: Standard-normal quantile of the confidence level.

    Returns:
        ``(low, high)`` in [0, 1].
    """
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials > 0, got {successes}/{trials}")
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * ((p * (1 - p) / trials + z * z / (4 * trials * trials)) ** 0.5) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
