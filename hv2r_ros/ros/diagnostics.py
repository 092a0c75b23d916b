"""``StageSummary`` (core/stats.py) -> ``diagnostic_msgs/DiagnosticStatus`` / ``DiagnosticArray``.

Levels:

- STALE: no event yet, or none for ``stale_after_s``.
- ERROR: the latest event is one of ``error_statuses`` (e-stop latched, no valid command within
  the timeout, invalid measured state, IK failure by default): the robot is held and will stay
  held until someone or something acts.
- WARN: the latest event is any other hold (a rejected chunk, a stale observation, a
  singularity): the robot is held, the next good input resumes.
- OK: otherwise; scaling and clamping are normal operation and show in ``message``.

Keys carry their unit (``rate_hz``, ``latency_p50_ms``); ``hardware_id`` is the robot's name.
"""

from __future__ import annotations

import math
from typing import Iterable

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from hv2r_ros.core.stats import StageSummary
from hv2r_ros.core.status import Status
from hv2r_ros.ros.stamps import from_seconds

__all__ = ["DEFAULT_ERROR_STATUSES", "diagnostic_array", "level_of", "stage_status"]

#: Holds that persist until an operator, a reset or a new plan intervenes.
DEFAULT_ERROR_STATUSES = frozenset({
    Status.HOLD_ESTOP, Status.HOLD_TIMEOUT, Status.HOLD_INVALID_MEASUREMENT, Status.HOLD_IK_FAILED,
})


def level_of(
    summary: StageSummary,
    stale_after_s: float = math.inf,
    error_statuses: frozenset[Status] = DEFAULT_ERROR_STATUSES,
) -> bytes:
    """The ``DiagnosticStatus`` level (``OK``/``WARN``/``ERROR``/``STALE`` bytes) of a summary."""
    if summary.last_status is None or summary.age_s > stale_after_s:
        return DiagnosticStatus.STALE
    if summary.last_status in error_statuses:
        return DiagnosticStatus.ERROR
    if summary.last_status.is_hold:
        return DiagnosticStatus.WARN
    return DiagnosticStatus.OK


def _number(value: float, digits: int = 2) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def stage_status(
    name: str,
    summary: StageSummary,
    hardware_id: str,
    *,
    stale_after_s: float = math.inf,
    error_statuses: frozenset[Status] = DEFAULT_ERROR_STATUSES,
    extra: Iterable[tuple[str, str]] = (),
) -> DiagnosticStatus:
    """One stage's ``DiagnosticStatus``.

    Args:
        name: Status name, conventionally ``<node name>: <stage>`` (``hv2r_safety: filter``).
        summary: ``StageStats.summary(now_s)``.
        hardware_id: The robot profile's name.
        stale_after_s: No event for this long [s] makes the level STALE.
        error_statuses: Holds reported as ERROR rather than WARN.
        extra: More ``(key, value)`` pairs, keys with units.
    """
    status = DiagnosticStatus()
    status.name = name
    status.hardware_id = hardware_id
    status.level = level_of(summary, stale_after_s, error_statuses)
    if summary.last_status is None:
        status.message = "no input yet"
    elif status.level == DiagnosticStatus.STALE:
        status.message = f"no input for {summary.age_s:.2f} s"
    else:
        status.message = summary.last_status.value
    values = [
        ("count", str(summary.count)),
        ("rate_hz", _number(summary.rate_hz)),
        ("latency_p50_ms", _number(summary.latency_p50_ms)),
        ("latency_p99_ms", _number(summary.latency_p99_ms)),
        ("age_s", "inf" if math.isinf(summary.age_s) else _number(summary.age_s, 3)),
        ("last_status", "none" if summary.last_status is None else summary.last_status.name),
        ("hold_count", str(summary.hold_count)),
    ]
    values += [(f"holds.{s.name}", str(n)) for s, n in sorted(
        summary.holds.items(), key=lambda item: item[0].name)]
    values += list(extra)
    status.values = [KeyValue(key=k, value=v) for k, v in values]
    return status


def diagnostic_array(statuses: Iterable[DiagnosticStatus], stamp: Time | float
                     ) -> DiagnosticArray:
    """A ``DiagnosticArray`` for the ``diagnostics`` topic, stamped ``stamp`` (``Time`` or [s])."""
    array = DiagnosticArray()
    array.header.stamp = stamp if isinstance(stamp, Time) else from_seconds(stamp)
    array.status = list(statuses)
    return array
