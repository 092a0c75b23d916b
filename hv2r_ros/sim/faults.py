"""Fault injection and what a fault may do to the robot: pure Python + numpy, no ROS.

Two halves, used by ``hv2r_ros.ros.fault_relay`` (the relay node), the reliability tests and
``hv2r soak``:

- ``RelayFaults``: what a relay between two nodes does with each message of a stream while a
  fault is set: drop it (a rate, and outages that drop everything for a while), stall (an
  outage), freeze (the first held message again, with each new message's fresh stamp), repeat
  (the first held message unchanged: a stale stream), shift stamps into the future, duplicate
  (the last forwarded message again instead of the new one) or reorder (each message sent after
  the next one). Messages are opaque payloads; the relay sets the stamps on them.
- Judging a stream of joint commands against a robot's limits (``count_violations``), finding
  when a HOLD took effect in it (``hold_timing``), and the faults a soak draws from
  (``FAULT_KINDS``).

Commands are judged per message, the way ``JointGuard`` produces them: one message per control
period, velocity ``(q_k - q_{k-1}) / T`` and acceleration ``(v_k - v_{k-1}) / T``.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any, Sequence

import numpy as np

__all__ = [
    "FAULT_KINDS", "MODES", "HoldTiming", "RelayFaults", "Violations", "count_violations",
    "hold_timing", "speeds", "violation_indices",
]

#: Relay modes (``RelayFaults.set``).
MODES = ("pass", "drop", "outage", "freeze", "repeat", "future", "duplicate", "reorder")
#: Faults a soak injects: (kind, weight).
FAULT_KINDS = (("policy_stop", 2), ("policy_kill", 1), ("camera_stall", 0), ("action_loss", 2),
               ("action_outage", 2), ("action_future", 1), ("action_duplicate", 1),
               ("action_reorder", 1), ("joint_states_stall", 1), ("joint_states_repeat", 1),
               ("estop", 1))
_EPS_RATIO = 1e-6  # relative slack on a limit: float round-off of the guard's own arithmetic


class RelayFaults:
    """What a relay forwards while a fault is set; one instance per relayed stream.

    Args:
        seed: Seed of the drop decisions (a soak or a test replays exactly).

    A fault is set with :meth:`set` and lasts ``duration_s`` (then the relay passes again) or
    until the next :meth:`set`. :meth:`process` takes each incoming message and returns what to
    publish now: a list of ``(payload, stamp_s)`` (the relay sets ``stamp_s`` on the message
    before publishing it when it differs from the message's own).
    """

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self.mode, self.until_s = "pass", math.inf
        self.rate, self.offset_s, self.burst_s, self.burst_every_s = 0.0, 0.0, 0.0, 0.0
        self._since_s = 0.0
        self._held: tuple[Any, float] | None = None
        self._pending: tuple[Any, float] | None = None
        #: The last message forwarded unaltered: (payload, stamp_s, time_s) or None.
        self.last_valid: tuple[Any, float, float] | None = None
        self.counts = {"received": 0, "forwarded": 0, "dropped": 0, "altered": 0}

    def set(self, now_s: float, mode: str, *, duration_s: float = math.inf, rate: float = 0.0,
            offset_s: float = 0.0, burst_s: float = 0.0, burst_every_s: float = 0.0) -> None:
        """Start fault ``mode`` (``MODES``) at ``now_s`` [s] for ``duration_s`` [s].

        Args:
            rate: ``drop``: probability of dropping each message, in [0, 1].
            offset_s: ``future``: added to every stamp [s].
            burst_s, burst_every_s: ``drop``: besides the rate, drop everything for
                ``burst_s`` at the start of every ``burst_every_s`` [s] (0: no bursts).

        Raises:
            ValueError: Unknown mode or a value out of range.
        """
        if mode not in MODES:
            raise ValueError(f"unknown relay mode {mode!r}; modes: {', '.join(MODES)}")
        if not 0.0 <= rate <= 1.0 or duration_s <= 0.0 or burst_s < 0.0 or burst_every_s < 0.0:
            raise ValueError(f"out of range: rate {rate} (0..1), duration_s {duration_s} (> 0), "
                             f"burst_s {burst_s}, burst_every_s {burst_every_s} (>= 0)")
        self.mode, self.until_s = mode, now_s + duration_s
        self.rate, self.offset_s = float(rate), float(offset_s)
        self.burst_s, self.burst_every_s = float(burst_s), float(burst_every_s)
        self._since_s = now_s
        self._held = None

    def _current(self, now_s: float) -> str:
        if now_s >= self.until_s:
            self.mode, self.until_s, self._held = "pass", math.inf, None
        return self.mode

    def _dropping(self, now_s: float) -> bool:
        mode = self.mode
        if mode == "outage":
            return True
        if mode != "drop":
            return False
        if self.burst_s > 0.0 and self.burst_every_s > 0.0 and \
                (now_s - self._since_s) % self.burst_every_s < self.burst_s:
            return True
        return self._rng.random() < self.rate

    def process(self, payload: Any, stamp_s: float, now_s: float) -> list[tuple[Any, float]]:
        """What to publish for ``payload`` (stamped ``stamp_s``) received at ``now_s`` [s]."""
        self.counts["received"] += 1
        mode = self._current(now_s)
        out: list[tuple[Any, float]] = []
        if mode != "reorder" and self._pending is not None:  # reorder ended: flush, late
            out.append(self._pending)
            self._pending = None
        if self._dropping(now_s):
            self.counts["dropped"] += 1
        elif mode in ("freeze", "repeat"):
            if self._held is None:
                self._held = (payload, stamp_s)
            held, held_stamp = self._held
            out.append((held, stamp_s if mode == "freeze" else held_stamp))
        elif mode == "future":
            out.append((payload, stamp_s + self.offset_s))
        elif mode == "duplicate" and self.last_valid is not None:
            out.append(self.last_valid[:2])
        elif mode == "reorder":
            if self._pending is None:
                self._pending = (payload, stamp_s)
            else:
                out += [(payload, stamp_s), self._pending]
                self._pending = None
                self.last_valid = (payload, stamp_s, now_s)
        else:
            out.append((payload, stamp_s))
            self.last_valid = (payload, stamp_s, now_s)
        altered = sum(1 for item, stamp in out if item is not payload or stamp != stamp_s)
        self.counts["altered"] += altered
        self.counts["forwarded"] += len(out)
        return out


@dataclasses.dataclass(frozen=True)
class Violations:
    """Limit violations of a command stream (counts of commands, and the worst ratios).

    Attributes:
        commands: Commands judged.
        position: Commands with a joint outside its position range.
        velocity: Steps with a joint moving more than ``v_max * T``.
        acceleration: Steps whose velocity changed more than ``a * T`` (``a``: the guard's
            jerk-limited acceleration bound).
        max_velocity_ratio: Largest ``|dq| / (v_max T)`` over steps and joints.
        max_acceleration_ratio: Largest ``|dv| / (a T)``.
    """

    commands: int
    position: int
    velocity: int
    acceleration: int
    max_velocity_ratio: float
    max_acceleration_ratio: float

    @property
    def total(self) -> int:
        """Position and velocity violations (the limits the issue counts)."""
        return self.position + self.velocity

    def __str__(self) -> str:
        return (f"{self.commands} commands: {self.position} position, {self.velocity} velocity, "
                f"{self.acceleration} acceleration violations (max |dq|/(v_max T) "
                f"{self.max_velocity_ratio:.3f}, max |dv|/(a T) "
                f"{self.max_acceleration_ratio:.3f})")


def count_violations(q: np.ndarray, limits, period_s: float,
                     segments: Sequence[int] = ()) -> Violations:
    """Position, velocity and acceleration violations of consecutive commands.

    Args:
        q: Commands [rad or m], shape (N, n), in publication order (one per control period).
        limits: The profile's ``JointLimits`` (margin included).
        period_s: Control period [s].
        segments: Indices where a new command stream starts (a restarted output process): no
            velocity or acceleration is judged across them.
    """
    q = np.asarray(q, dtype=np.float64).reshape(-1, len(limits.position_min))
    if len(q) == 0:
        return Violations(0, 0, 0, 0, 0.0, 0.0)
    tol = 1e-9
    position = int(np.count_nonzero(((q < limits.position_min - tol)
                                     | (q > limits.position_max + tol)).any(axis=1)))
    dq = np.diff(q, axis=0)
    valid_v = np.ones(len(dq), dtype=bool)
    for start in segments:
        if 1 <= start <= len(dq):
            valid_v[start - 1] = False
    step = np.asarray(limits.velocity_max) * period_s
    ratio_v = np.abs(dq) / step
    ratio_v[~valid_v] = 0.0
    velocity = int(np.count_nonzero((ratio_v > 1.0 + _EPS_RATIO).any(axis=1)))
    accel = np.asarray(limits.acceleration_max, dtype=np.float64)
    if limits.jerk_max is not None:  # the guard's bound: JointGuard.acceleration_limit
        accel = np.minimum(accel, 0.5 * np.asarray(limits.jerk_max) * period_s)
    ddq = np.diff(dq, axis=0)
    valid_a = valid_v[1:] & valid_v[:-1]
    ratio_a = np.abs(ddq) / (accel * period_s * period_s)
    ratio_a[~valid_a] = 0.0
    acceleration = int(np.count_nonzero((ratio_a > 1.0 + _EPS_RATIO).any(axis=1)))
    return Violations(len(q), position, velocity, acceleration,
                      float(ratio_v.max(initial=0.0)), float(ratio_a.max(initial=0.0)))


def violation_indices(q: np.ndarray, limits, period_s: float) -> np.ndarray:
    """Indices of the commands that break a position, velocity or acceleration limit (the
    command ending the offending step), as ``count_violations`` counts them."""
    q = np.asarray(q, dtype=np.float64).reshape(-1, len(limits.position_min))
    bad = ((q < limits.position_min - 1e-9) | (q > limits.position_max + 1e-9)).any(axis=1)
    dq = np.diff(q, axis=0)
    bad[1:] |= (np.abs(dq) / (np.asarray(limits.velocity_max) * period_s)
                > 1.0 + _EPS_RATIO).any(axis=1)
    accel = np.asarray(limits.acceleration_max, dtype=np.float64)
    if limits.jerk_max is not None:
        accel = np.minimum(accel, 0.5 * np.asarray(limits.jerk_max) * period_s)
    bad[2:] |= (np.abs(np.diff(dq, axis=0)) / (accel * period_s * period_s)
                > 1.0 + _EPS_RATIO).any(axis=1)
    return np.flatnonzero(bad)


def speeds(q: np.ndarray, limits, period_s: float) -> np.ndarray:
    """Per-step speed as a fraction of the speed limit (worst joint), shape (N,); 0 first."""
    q = np.asarray(q, dtype=np.float64)
    out = np.zeros(len(q))
    if len(q) > 1:
        out[1:] = (np.abs(np.diff(q, axis=0)) / (np.asarray(limits.velocity_max) * period_s)
                   ).max(axis=1)
    return out


@dataclasses.dataclass(frozen=True)
class HoldTiming:
    """When a HOLD took effect in a command stream, relative to a fault.

    Attributes:
        onset_s: Stamp of the first command of the final braking run [s] (its speed already
            below the previous command's), or None when the stream never came to rest.
        rest_s: Stamp of the first command at rest (equal to the previous one) [s], or None.
        speed_at_onset: Speed before braking, fraction of the speed limit (worst joint).
    """

    onset_s: float | None
    rest_s: float | None
    speed_at_onset: float

    def latency_s(self, fault_s: float) -> float:
        """``onset_s - fault_s`` [s]; inf when it never held."""
        return math.inf if self.onset_s is None else self.onset_s - fault_s


def hold_timing(stamps: np.ndarray, q: np.ndarray, fault_s: float, limits, period_s: float,
                settle: int = 10) -> HoldTiming:
    """The HOLD that followed a fault at ``fault_s`` in a command stream.

    A HOLD brakes: the speed falls strictly every period until it is exactly zero (the guard's
    fastest uniform slow-down), while following a chunk keeps or raises it now and then. The
    onset is the first command of the strictly decreasing run that ends in the first rest after
    ``fault_s`` (``settle`` commands at zero speed), or the first command after ``fault_s`` when
    the stream was already slowing down then; a stream at rest at ``fault_s`` has its onset
    there.

    Args:
        stamps: Publication stamps [s], shape (N,), increasing.
        q: Commands, shape (N, n).
        fault_s: Time of the fault [s], on the stamps' clock.
        settle: Commands at zero speed that make a rest.
    """
    stamps = np.asarray(stamps, dtype=np.float64)
    s = speeds(q, limits, period_s)
    still = s == 0.0
    rest = next((i for i in range(1, len(s) - settle + 1)
                 if stamps[i] >= fault_s and still[i:i + settle].all()), None)
    if rest is None:
        return HoldTiming(None, None, float(s[-1]) if len(s) else 0.0)
    peak = rest
    while peak - 1 >= 1 and s[peak - 1] > s[peak]:
        peak -= 1
    if peak == rest:  # at rest already: nothing to brake
        return HoldTiming(float(max(stamps[rest], fault_s)), float(stamps[rest]), 0.0)
    # Already slowing down at the fault (the chunk itself decelerated): the HOLD cannot be told
    # apart from it; its onset is then the first command after the fault.
    first_after = stamps[np.searchsorted(stamps, fault_s)]
    return HoldTiming(float(max(stamps[peak + 1], first_after)), float(stamps[rest]),
                      float(s[peak]))
