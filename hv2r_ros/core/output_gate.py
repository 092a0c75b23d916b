"""The hold gate of the command output: may it follow the policy this period, and when to
re-seed from the measured state (resume).

Pure core with an injectable monotonic clock; ``hv2r_ros.nodes.command_output`` feeds it the
e-stop input, the safety filter's state, joint-state arrivals and accepted chunks.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np

from hv2r_ros.core.action_filter import ACTIVE
from hv2r_ros.core.errors import LimitsError
from hv2r_ros.core.safety.watchdog import CommandWatchdog
from hv2r_ros.core.status import Status

def _positive(field: str, value: float) -> float:
    number = float(value)
    if not (math.isfinite(number) and number > 0.0):
        raise LimitsError("must be a positive finite value (anything else switches the check "
                          "off)", field=field, value=value)
    return number


class OutputGate:
    """Whether the command output may follow the policy this period, and when to re-seed.

    Holds (first match wins): e-stop input asserted, or released but no ``ACTIVE`` safety state
    since (``HOLD_ESTOP``); safety state other than ``ACTIVE`` or none yet (``HOLD_REQUESTED``);
    joint states older than ``max_state_age_s`` or none yet (``HOLD_INVALID_MEASUREMENT``); no
    valid chunk within ``command_timeout_s`` (``HOLD_TIMEOUT``). Ages are judged at receipt on
    the monotonic ``clock``. A safety state going to ``ACTIVE`` from any hold of the first two
    kinds asks for a re-seed (resume) once the command is at rest.

    Args:
        command_timeout_s: Command watchdog [s], finite and > 0.
        max_state_age_s: Oldest usable joint state [s], finite and > 0.
        clock: Monotonic clock [s].

    Raises:
        LimitsError: A timeout <= 0, infinite or NaN (names the field).
    """

    def __init__(self, command_timeout_s: float, max_state_age_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.watchdog = CommandWatchdog(command_timeout_s, clock)
        self.state_watchdog = CommandWatchdog(1.0, clock)
        self.max_state_age_s = max_state_age_s
        self._active = False
        self._estop_input = False
        self._estop_latched = False
        self._resume = False
        #: The last safety state text received ("" before any).
        self.safety_state = ""

    @property
    def command_timeout_s(self) -> float:
        """Command watchdog [s]; settable (finite, > 0)."""
        return self.watchdog.timeout_s

    @command_timeout_s.setter
    def command_timeout_s(self, value: float) -> None:
        self.watchdog.timeout_s = _positive("command_timeout_s", value)

    @property
    def max_state_age_s(self) -> float:
        """Oldest usable joint state [s]; settable (finite, > 0)."""
        return self.state_watchdog.timeout_s

    @max_state_age_s.setter
    def max_state_age_s(self, value: float) -> None:
        self.state_watchdog.timeout_s = _positive("max_state_age_s", value)

    def state_received(self) -> None:
        """A valid joint state arrived now (invalid ones must not call this)."""
        self.state_watchdog.feed()

    def chunk_accepted(self) -> None:
        """A chunk passed validation now (rejected ones must not call this)."""
        self.watchdog.feed()

    def set_safety_state(self, text: str) -> None:
        """The safety filter's state: ``ACTIVE`` or ``HOLD <reason>`` (anything else holds)."""
        self.safety_state = str(text)
        was_holding = not self._active or self._estop_latched
        self._active = self.safety_state == ACTIVE
        if self._active and not self._estop_input:
            self._estop_latched = False
            if was_holding:
                self._resume = True

    def set_estop(self, asserted: bool) -> None:
        """The e-stop input: True holds at once; False alone does not resume."""
        self._estop_input = bool(asserted)
        if self._estop_input:
            self._estop_latched = True

    def decide(self, at_rest: bool = True) -> tuple[Status | None, bool]:
        """``(hold reason or None, re-seed now)``; the re-seed request is returned once.

        Args:
            at_rest: The last command has zero velocity. A resume waits for it (holding,
                ``HOLD_REQUESTED``): re-seeding a moving command would stop it in one step.
        """
        if self._estop_latched:
            return Status.HOLD_ESTOP, False
        if not self._active or (self._resume and not at_rest):
            return Status.HOLD_REQUESTED, False
        if self.state_watchdog.expired():
            return Status.HOLD_INVALID_MEASUREMENT, False
        reseed, self._resume = self._resume, False
        if reseed:
            # Chunks received before the resume were planned for a robot that stopped.
            self.watchdog.reset()
        if self.watchdog.expired():
            return Status.HOLD_TIMEOUT, reseed
        return None, reseed

    def detail(self) -> str:
        """The hold reason in words, for diagnostics."""
        if self._estop_latched:
            return "e-stop asserted" if self._estop_input else \
                "e-stop released, waiting for safety state ACTIVE"
        if not self._active:
            return f"safety state {self.safety_state or '(none yet)'!r}"
        return (f"joint_states age {self.state_watchdog.age_s():.3f} s, "
                f"command age {self.watchdog.age_s():.3f} s")


class ResumeReadiness:
    """Whether a resume may re-seed the output from the measured state now.

    A re-seed makes the command equal to the measured state. Done while the robot still lags its
    resting command (a position-controlled joint lags a period or two; one that refused commands
    lags more), it steps the command back or jumps it. So a resume waits until the command has
    rested ``settle_periods`` control periods, the measured state is within one period's travel
    at the speed limit of it, and the last ``samples`` measured states each moved less than
    ``step`` (the robot has stopped). Samples are judged as they arrive, not per period, so late
    samples arriving in a burst do not look still. :meth:`seed` then gives the state to re-seed
    from: the measured one when it is within ``step`` of the command (the re-seed stays inside
    the acceleration bound), else the command itself: a robot resting farther off (a
    steady-state error, commands it refused) is driven back by its controller instead of the
    command jumping to it.

    Args:
        velocity_max: Speed limits [rad/s or m/s], shape (n,).
        period_s: Control period [s].
        step: Largest move between two samples of a robot at rest [rad or m], shape (n,): the
            guard's acceleration bound times the period squared keeps the re-seed inside it.
        settle_periods: Periods the command rests first.
        samples: Consecutive still samples.
    """

    def __init__(self, velocity_max: np.ndarray, period_s: float, step: np.ndarray,
                 settle_periods: int = 5, samples: int = 3) -> None:
        self.tolerance = np.asarray(velocity_max, dtype=np.float64) * period_s
        self.step = np.asarray(step, dtype=np.float64)
        self.settle_periods, self.samples = int(settle_periods), int(samples)
        self._still_periods = 0
        self._still_samples = 0
        self._q: np.ndarray | None = None

    def measured(self, q: np.ndarray) -> None:
        """A valid measured state arrived [rad or m], shape (n,)."""
        q = np.asarray(q, dtype=np.float64)
        still = self._q is not None and bool(np.all(np.abs(q - self._q) <= self.step))
        self._still_samples = self._still_samples + 1 if still else 0
        self._q = q

    def period(self, command: np.ndarray | None, commanding_motion: bool) -> bool:
        """Once per control period with the last command; True when a re-seed may happen."""
        caught_up = command is not None and self._q is not None and bool(
            np.all(np.abs(self._q - command) <= self.tolerance))
        ready = caught_up and not commanding_motion and self._still_samples >= self.samples
        self._still_periods = self._still_periods + 1 if ready else 0
        return self._still_periods > self.settle_periods

    def seed(self, command: np.ndarray, measured: np.ndarray) -> np.ndarray:
        """The state to re-seed the output from when :meth:`period` said it may (class doc)."""
        measured = np.asarray(measured, dtype=np.float64)
        if np.all(np.abs(measured - command) <= self.step):
            return measured
        return np.array(command, dtype=np.float64)
