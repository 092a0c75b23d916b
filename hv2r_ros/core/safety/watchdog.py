"""Command watchdog, authority ramp and e-stop latch.

All three read an injectable clock (``time.monotonic`` by default) so that staleness is judged
on a monotonic clock at receipt, never on message stamps, and tests can drive a fake clock.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from hv2r_ros.core.errors import LimitsError

Clock = Callable[[], float]


def _positive_finite(field: str, value: float, *, allow_zero: bool = False) -> float:
    number = float(value)
    # A timeout of 0, inf or NaN would switch the watchdog off (or never let a command through).
    if not math.isfinite(number) or number < 0.0 or (number == 0.0 and not allow_zero):
        rule = "a finite value >= 0" if allow_zero else "a positive finite value"
        raise LimitsError(f"must be {rule} (anything else switches the check off)",
                          field=field, value=value)
    return number


class CommandWatchdog:
    """Expires when no valid command arrived within ``timeout_s`` on a monotonic clock.

    Only the caller decides what refreshes it: call :meth:`feed` after a command passed
    validation, never for an invalid or stale one. A watchdog that was never fed is expired.

    Args:
        timeout_s: Longest allowed gap between valid commands [s], finite and > 0.
        clock: Monotonic clock returning seconds.

    Raises:
        LimitsError: ``timeout_s`` is <= 0, infinite or NaN (field ``command_timeout_s``).
    """

    def __init__(self, timeout_s: float, clock: Clock = time.monotonic) -> None:
        self.timeout_s = _positive_finite("command_timeout_s", timeout_s)
        self._clock = clock
        self._last_feed_s: float | None = None

    def feed(self) -> None:
        """Record the receipt of a valid command now."""
        self._last_feed_s = self._clock()

    def reset(self) -> None:
        """Forget the last command: the watchdog is expired until the next :meth:`feed`."""
        self._last_feed_s = None

    def age_s(self) -> float:
        """Seconds since the last valid command (``inf`` if never fed)."""
        if self._last_feed_s is None:
            return math.inf
        return self._clock() - self._last_feed_s

    def expired(self) -> bool:
        """True when the last valid command is older than the timeout (or never came)."""
        return not self.age_s() <= self.timeout_s


class AuthorityRamp:
    """Scales the command authority from 0 to 1 over ``duration_s`` after activation.

    A guard multiplies its velocity bound by :meth:`value`, so a policy takes over gently after
    start, resume or reset. Before :meth:`activate` the authority is 0.

    Args:
        duration_s: Ramp duration [s], finite and >= 0 (0 gives full authority at activation).
        clock: Monotonic clock returning seconds.

    Raises:
        LimitsError: ``duration_s`` is negative, infinite or NaN (field ``authority_ramp_s``).
    """

    def __init__(self, duration_s: float, clock: Clock = time.monotonic) -> None:
        self.duration_s = _positive_finite("authority_ramp_s", duration_s, allow_zero=True)
        self._clock = clock
        self._start_s: float | None = None

    def activate(self) -> None:
        """(Re)start the ramp from 0 now."""
        self._start_s = self._clock()

    def deactivate(self) -> None:
        """Drop the authority to 0 until the next :meth:`activate`."""
        self._start_s = None

    def value(self) -> float:
        """Authority in [0, 1]: linear in the time since activation."""
        if self._start_s is None:
            return 0.0
        elapsed = self._clock() - self._start_s
        if self.duration_s == 0.0:
            return 1.0 if elapsed >= 0.0 else 0.0
        return min(1.0, max(0.0, elapsed / self.duration_s))


class EStopLatch:
    """An e-stop that stays latched until an operator explicitly resets it.

    :meth:`update` follows the e-stop input (e.g. the ``hv2r/estop`` topic): ``True`` latches,
    ``False`` alone never unlatches. :meth:`reset` needs ``operator_confirmed=True`` and
    refuses while the input is still asserted.
    """

    def __init__(self) -> None:
        self._latched = False
        self._input_asserted = False
        self.reason = ""

    @property
    def latched(self) -> bool:
        """True while the e-stop holds the robot."""
        return self._latched

    def trigger(self, reason: str = "e-stop") -> None:
        """Latch the e-stop (from software: a fault, a lost heartbeat)."""
        self._latched = True
        self.reason = reason

    def update(self, asserted: bool) -> bool:
        """Feed the e-stop input; returns :attr:`latched`."""
        self._input_asserted = bool(asserted)
        if self._input_asserted:
            self.trigger("e-stop input asserted")
        return self._latched

    def reset(self, *, operator_confirmed: bool) -> bool:
        """Release the latch on an explicit operator action.

        Args:
            operator_confirmed: Must be ``True`` (literally): the operator's reset request.

        Returns:
            True when the latch was released, False when it stays latched (no confirmation,
            or the e-stop input is still asserted).
        """
        if operator_confirmed is not True or self._input_asserted:
            return False
        self._latched = False
        self.reason = ""
        return True
