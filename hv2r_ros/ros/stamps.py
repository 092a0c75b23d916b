"""``builtin_interfaces/Time`` and ``Duration`` <-> seconds, without a clock or a node.

Seconds are float64. A float cannot hold every nanosecond of an epoch time (its resolution near
1.7e9 s is about 0.24 us), so the integer forms ``to_nanoseconds`` / ``from_nanoseconds`` are
exact and the float forms are exact to the nanosecond wherever the float itself is.
Writers raise ``ValueError`` on negative, NaN or infinite input (a programming error: stamps come
from our own clocks); readers never raise.
"""

from __future__ import annotations

import math

from builtin_interfaces.msg import Duration, Time

__all__ = [
    "duration_from_seconds", "duration_to_seconds", "from_nanoseconds", "from_seconds",
    "to_nanoseconds", "to_seconds",
]

_NS_PER_S = 1_000_000_000
_INT32_MAX = 2**31 - 1


def to_seconds(stamp: Time | Duration) -> float:
    """Seconds [s] of a ``Time`` or ``Duration`` (``sec + nanosec * 1e-9``)."""
    return stamp.sec + stamp.nanosec * 1e-9


def to_nanoseconds(stamp: Time | Duration) -> int:
    """Exact nanoseconds [ns] of a ``Time`` or ``Duration``."""
    return stamp.sec * _NS_PER_S + stamp.nanosec


def _split(seconds: float, what: str) -> tuple[int, int]:
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds < 0.0:
        raise ValueError(f"{what} must be a finite, non-negative number of seconds, "
                         f"got {seconds!r}")
    sec = math.floor(seconds)
    # ``seconds - sec`` is exact for floats >= 1, so rounding happens once, at the nanosecond.
    nanosec = round((seconds - sec) * _NS_PER_S)
    if nanosec >= _NS_PER_S:
        sec, nanosec = sec + 1, nanosec - _NS_PER_S
    if sec > _INT32_MAX:
        raise ValueError(f"{what} {seconds!r} s does not fit builtin_interfaces' int32 seconds")
    return int(sec), int(nanosec)


def from_seconds(seconds: float, out: Time | None = None) -> Time:
    """A ``Time`` from seconds [s] since the clock's epoch.

    Args:
        seconds: Non-negative, finite [s].
        out: A message to fill in place instead of allocating one.

    Raises:
        ValueError: Negative, NaN, infinite, or beyond int32 seconds.
    """
    stamp = Time() if out is None else out
    stamp.sec, stamp.nanosec = _split(seconds, "time")
    return stamp


def from_nanoseconds(nanoseconds: int) -> Time:
    """A ``Time`` from exact nanoseconds [ns] (``rclpy.time.Time.nanoseconds``).

    Raises:
        ValueError: Negative or beyond int32 seconds.
    """
    nanoseconds = int(nanoseconds)
    sec, nanosec = divmod(nanoseconds, _NS_PER_S)
    if nanoseconds < 0 or sec > _INT32_MAX:
        raise ValueError(f"time {nanoseconds} ns is negative or beyond int32 seconds")
    return Time(sec=sec, nanosec=nanosec)


def duration_from_seconds(seconds: float, out: Duration | None = None) -> Duration:
    """A ``Duration`` (e.g. ``time_from_start``) from seconds [s].

    Args:
        seconds: Non-negative, finite [s]; negative durations are never meaningful here.
        out: A message to fill in place instead of allocating one.

    Raises:
        ValueError: Negative, NaN, infinite, or beyond int32 seconds.
    """
    duration = Duration() if out is None else out
    duration.sec, duration.nanosec = _split(seconds, "duration")
    return duration


def duration_to_seconds(duration: Duration) -> float:
    """Seconds [s] of a ``Duration``; negative durations come out negative."""
    return to_seconds(duration)
