"""Pure validation of commands before any clamping touches them.

Order of checks: names, length, finiteness, stamp. The first failure invalidates the whole
command (it becomes a HOLD); nothing is clamped or partially used. Values are mapped into the
profile's joint (or frame) order by name, never by index.

Finite means not NaN and not +-inf. Huge finite values (1e30) and subnormals pass here: the
limits catch the former, the latter are harmless.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from hv2r_ros.core.status import Status

#: Default tolerance for stamps slightly ahead of the receiver's clock [s].
FUTURE_TOLERANCE_S = 0.002


def map_by_name(
    names: Sequence[str], values: np.ndarray, expected: Sequence[str]
) -> tuple[np.ndarray | None, Status]:
    """Reorder ``values`` (one row per name) into the order of ``expected``.

    Args:
        names: Names as sent, any order; must be exactly the set ``expected`` (no duplicates).
        values: Array whose first axis matches ``names``, shape (len(names), ...).
        expected: The profile's names, the only order.

    Returns:
        ``(values_in_expected_order, Status.OK)`` or ``(None, HOLD_WRONG_NAMES |
        HOLD_WRONG_LENGTH)``.
    """
    names = tuple(names)
    if len(names) != len(expected) or set(names) != set(expected) or len(set(names)) != len(names):
        return None, Status.HOLD_WRONG_NAMES
    if values.ndim == 0 or values.shape[0] != len(names):
        return None, Status.HOLD_WRONG_LENGTH
    if names == tuple(expected):
        return values, Status.OK
    index = {name: i for i, name in enumerate(names)}
    return values[[index[name] for name in expected]], Status.OK


def check_finite(values: np.ndarray) -> Status:
    """``OK`` when every entry is finite, ``HOLD_NON_FINITE`` otherwise (NaN, +-inf)."""
    return Status.OK if bool(np.isfinite(values).all()) else Status.HOLD_NON_FINITE


def check_stamp(
    stamp_s: float,
    now_s: float,
    previous_stamp_s: float | None,
    timeout_s: float,
    future_tolerance_s: float = FUTURE_TOLERANCE_S,
) -> Status:
    """Judge a command stamp against the receipt time.

    Args:
        stamp_s: The command's stamp [s] (capture time of its observation).
        now_s: Receipt time on the same clock as the stamp [s].
        previous_stamp_s: Stamp of the last accepted command [s], or None.
        timeout_s: Oldest acceptable age at receipt [s].
        future_tolerance_s: How far ahead of ``now_s`` a stamp may be (clock jitter) [s].

    Returns:
        ``OK``, ``HOLD_NON_FINITE`` (stamp NaN/inf), ``HOLD_FUTURE_STAMP``,
        ``HOLD_NON_MONOTONIC`` or ``HOLD_STALE``.
    """
    if not (math.isfinite(stamp_s) and math.isfinite(now_s)):
        return Status.HOLD_NON_FINITE
    if stamp_s > now_s + future_tolerance_s:
        return Status.HOLD_FUTURE_STAMP
    if previous_stamp_s is not None and not stamp_s > previous_stamp_s:
        return Status.HOLD_NON_MONOTONIC
    if now_s - stamp_s > timeout_s:
        return Status.HOLD_STALE
    return Status.OK


class CommandValidator:
    """Validates stamped commands for one set of names and remembers the last accepted stamp.

    Args:
        expected_names: The profile's joint (or end-effector frame) names, the only order.
        timeout_s: Oldest acceptable command age at receipt [s] (e.g. ``command_timeout_s``).
        future_tolerance_s: Accepted clock skew for stamps ahead of the receiver [s].
        row_shape: Shape of one entry: ``()`` for joint positions, ``(7,)`` for poses,
            ``(None,)`` / ``(None, 7)`` for chunks of any length (``None`` matches any size).
    """

    def __init__(
        self,
        expected_names: Sequence[str],
        timeout_s: float,
        future_tolerance_s: float = FUTURE_TOLERANCE_S,
        row_shape: tuple[int | None, ...] = (),
    ) -> None:
        self.expected_names = tuple(expected_names)
        self.timeout_s = float(timeout_s)
        self.future_tolerance_s = float(future_tolerance_s)
        self.row_shape = tuple(row_shape)
        self.previous_stamp_s: float | None = None

    def reset(self) -> None:
        """Forget the last accepted stamp (on start, resume, reset)."""
        self.previous_stamp_s = None

    def validate(
        self, names: Sequence[str], values: object, stamp_s: float, now_s: float
    ) -> tuple[np.ndarray | None, Status]:
        """Validate one command; on success remember its stamp.

        Args:
            names: Names as sent (any order).
            values: One entry per name: shape (n,) for joints, (n, 7) for poses; for a
                chunk, (n, H) / (n, H, 7) with ``row_shape`` set to match.
            stamp_s: The command's stamp [s].
            now_s: Receipt time on the stamp's clock [s].

        Returns:
            ``(values in expected order as float64, OK)`` or ``(None, HOLD_*)``.
        """
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            return None, Status.HOLD_WRONG_LENGTH
        mapped, status = map_by_name(names, array, self.expected_names)
        if mapped is None:
            return None, status
        shape = mapped.shape[1:]
        if len(shape) != len(self.row_shape) or any(
            want is not None and got != want for got, want in zip(shape, self.row_shape)
        ):
            return None, Status.HOLD_WRONG_LENGTH
        status = check_finite(mapped)
        if status is Status.OK:
            status = check_stamp(float(stamp_s), float(now_s), self.previous_stamp_s,
                                 self.timeout_s, self.future_tolerance_s)
        if status is not Status.OK:
            return None, status
        self.previous_stamp_s = float(stamp_s)
        return mapped, Status.OK
