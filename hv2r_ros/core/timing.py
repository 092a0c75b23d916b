"""Timing samples for benchmarks: every duration kept, percentiles, control-period error, and
the CPU time and peak memory of a process (pure Python + numpy, no ROS).

``Samples`` keeps every value of a run (a bench run is seconds to minutes long: tens of
thousands of floats), unlike ``core.stats.StageStats`` whose bounded ring buffer suits a node
that runs for days. ``timed`` wraps a callable so each call's duration lands in a ``Samples``.
``period_figures`` turns the publication times of a fixed-rate output into its achieved rate
and period error. ``ProcessMeter`` reads a process's CPU seconds and peak resident memory from
``/proc`` (Linux), or from ``resource`` for the calling process elsewhere.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import resource
import sys
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["ProcessMeter", "Samples", "period_figures", "timed"]


class Samples:
    """Every value of one measured quantity, appended from any thread.

    Args:
        name: What is measured (a stage name), for reports.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._values: list[float] = []
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        """Append one value (seconds for durations)."""
        with self._lock:
            self._values.append(float(value))

    def since(self, start: int) -> "Samples":
        """A copy holding the values appended after the first ``start`` (drop a warm-up)."""
        copy = Samples(self.name)
        with self._lock:
            copy._values = self._values[start:]
        return copy

    def __len__(self) -> int:
        return len(self._values)

    @property
    def values(self) -> np.ndarray:
        """The values, in the order added (a copy)."""
        with self._lock:
            return np.array(self._values, dtype=np.float64)

    def summary_ms(self) -> dict[str, float]:
        """``count`` and ``p50_ms``, ``p99_ms``, ``max_ms``, ``mean_ms`` of the values [s]
        (NaN without values)."""
        values = self.values
        if values.size == 0:
            return {"count": 0, "p50_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan,
                    "mean_ms": math.nan}
        p50, p99 = np.percentile(values, (50.0, 99.0)) * 1e3
        return {"count": int(values.size), "p50_ms": float(p50), "p99_ms": float(p99),
                "max_ms": float(values.max() * 1e3), "mean_ms": float(values.mean() * 1e3)}


def timed(function: Callable[..., Any], samples: Samples,
          clock: Callable[[], float] = time.perf_counter) -> Callable[..., Any]:
    """``function`` with the duration of every call [s] appended to ``samples``.

    Calls that raise are not recorded (the exception propagates unchanged).
    """
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        result = function(*args, **kwargs)
        samples.add(clock() - start)
        return result
    return wrapper


def period_figures(times_s: Sequence[float], period_s: float) -> dict[str, float]:
    """Achieved rate and period error of events meant to come every ``period_s``.

    Args:
        times_s: Event times on one monotonic clock [s], in order.
        period_s: The configured period [s].

    Returns:
        ``count``, ``rate_hz`` (events over the span), ``period_p50_ms``, and the absolute
        period error ``|dt - period|``: ``error_p50_ms``, ``error_p99_ms``, ``error_max_ms``
        (NaN with fewer than two events).
    """
    times = np.asarray(times_s, dtype=np.float64)
    nan = math.nan
    if times.size < 2:
        return {"count": int(times.size), "rate_hz": nan, "period_p50_ms": nan,
                "error_p50_ms": nan, "error_p99_ms": nan, "error_max_ms": nan}
    periods = np.diff(times)
    error = np.abs(periods - period_s)
    span = float(times[-1] - times[0])
    return {"count": int(times.size),
            "rate_hz": float((times.size - 1) / span) if span > 0 else nan,
            "period_p50_ms": float(np.median(periods) * 1e3),
            "error_p50_ms": float(np.percentile(error, 50.0) * 1e3),
            "error_p99_ms": float(np.percentile(error, 99.0) * 1e3),
            "error_max_ms": float(error.max() * 1e3)}


@dataclasses.dataclass(frozen=True)
class ProcessReading:
    """One reading of a process: ``cpu_s`` user + system CPU time [s], ``peak_rss_bytes`` its
    resident-memory high-water mark, ``wall_s`` the monotonic time of the reading [s]."""

    cpu_s: float
    peak_rss_bytes: int
    wall_s: float


class ProcessMeter:
    """CPU time and peak resident memory of one process.

    Args:
        pid: The process; None for the calling one.

    The CPU share between two readings is ``cpu_percent``: 100 % is one core fully busy.
    """

    _TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid

    def read(self) -> ProcessReading:
        """CPU seconds and peak RSS now (zeros for a process that has gone)."""
        wall = time.monotonic()
        if self.pid is None and not sys.platform.startswith("linux"):
            usage = resource.getrusage(resource.RUSAGE_SELF)  # ru_maxrss: bytes on macOS
            return ProcessReading(usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss), wall)
        pid = self.pid or os.getpid()
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                # Fields after the command name (which may hold spaces): utime is the 14th
                # field of the line, the 12th after ") ".
                fields = stat.read().rpartition(")")[2].split()
            cpu = (int(fields[11]) + int(fields[12])) / self._TICKS
            peak = 0
            with open(f"/proc/{pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = int(line.split()[1]) * 1024
                        break
        except (OSError, IndexError, ValueError):
            return ProcessReading(0.0, 0, wall)
        return ProcessReading(cpu, peak, wall)

    @staticmethod
    def cpu_percent(first: ProcessReading, last: ProcessReading) -> float:
        """CPU share between two readings [% of one core]."""
        wall = last.wall_s - first.wall_s
        return 100.0 * (last.cpu_s - first.cpu_s) / wall if wall > 0 else math.nan

    @classmethod
    def machine_busy_s(cls) -> float:
        """CPU time every process of the machine has used since boot [s] (all cores; NaN
        without /proc): with ``cpu_s`` of the processes measured, what others took."""
        try:
            with open("/proc/stat", encoding="ascii") as stat:
                fields = stat.readline().split()[1:]
        except OSError:
            return math.nan
        # user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
        values = [int(v) for v in fields[:8]]
        return (sum(values) - values[3] - values[4]) / cls._TICKS
