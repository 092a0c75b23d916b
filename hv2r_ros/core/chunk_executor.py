"""Executing action chunks in time, and deciding when the command output must hold.

A chunk is ``H`` actions computed from one observation captured at ``stamp_s``; action ``i`` is
due at ``stamp_s + times_s[i]``. Rows are joint positions (chunk shape (H, n), [rad or m]) or
end-effector poses (shape (H, F, 7), ``[x y z qx qy qz qw]`` [m, unit quaternion]).

``ChunkExecutor.target(now_s)`` picks the action due at ``now_s`` by time, never by count:

- ``receding_horizon``: the newest chunk that has not run out, interpolated between its two
  points around ``now`` (positions and joints linearly, quaternions by slerp). The actions that
  fell due while the policy computed the chunk (inference latency) are skipped by construction.
- ``temporal_ensembling`` (ACT): the targets of every chunk covering ``now`` averaged with weights
  ``exp(-decay * age)``, ``age = now - stamp`` (newer chunks weigh more; quaternions: weighted
  sum after sign alignment, normalised).

Never extrapolated: before a chunk's first point that point is the target; past the last point of
every chunk the target is None with ``HOLD_STALE`` (the chunk ran out), before any chunk None with
``HOLD_TIMEOUT``. Stamps and ``now`` are on the clock the stamps come from (ROS time).

``OutputGate`` decides each control period whether the output may follow the chunks at all
(e-stop, safety state, stale joint states, command watchdog) on a monotonic clock, and when the
command chain must be re-seeded from the measured state (resume after a safety hold).
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np

from hv2r_ros.core.safety.cartesian import check_poses
from hv2r_ros.core.safety.validate import FUTURE_TOLERANCE_S
from hv2r_ros.core.stats import StageStats
from hv2r_ros.core.status import Status

__all__ = ["STRATEGIES", "TIME_TOLERANCE_S", "ChunkExecutor", "interpolate_rows"]

#: Chunk execution strategies.
STRATEGIES = ("receding_horizon", "temporal_ensembling")
#: Slack on "ran out" [s]: float seconds near the epoch resolve only ~0.24 us.
TIME_TOLERANCE_S = 1e-6


def _slerp(q0: np.ndarray, q1: np.ndarray, u: float) -> np.ndarray:
    """Shortest-path slerp of unit quaternions (..., 4) at fraction ``u`` in [0, 1]; unit out."""
    dot = np.einsum("...i,...i->...", q0, q1)[..., None]
    q1 = np.where(dot < 0.0, -q1, q1)
    dot = np.minimum(np.abs(dot), 1.0)
    angle = np.arccos(dot)
    sin = np.sin(angle)
    safe = sin > 1e-9
    w0 = np.where(safe, np.sin((1.0 - u) * angle) / np.where(safe, sin, 1.0), 1.0 - u)
    w1 = np.where(safe, np.sin(u * angle) / np.where(safe, sin, 1.0), u)
    out = w0 * q0 + w1 * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def interpolate_rows(a: np.ndarray, b: np.ndarray, u: float) -> np.ndarray:
    """The action a fraction ``u`` in [0, 1] of the way from row ``a`` to row ``b``.

    Joint rows (n,) linearly; pose rows (F, 7): positions linearly, quaternions by slerp.
    """
    if a.ndim == 1:
        return a + u * (b - a)
    out = np.empty_like(a)
    out[:, :3] = a[:, :3] + u * (b[:, :3] - a[:, :3])
    out[:, 3:] = _slerp(a[:, 3:], b[:, 3:], u)
    return out


class _Chunk:
    __slots__ = ("rows", "times", "stamp")

    def __init__(self, rows: np.ndarray, times: np.ndarray, stamp: float) -> None:
        self.rows, self.times, self.stamp = rows, times, stamp

    def at(self, t: float) -> np.ndarray:
        """The action at ``t`` seconds after the stamp, with ``times[0] <= t <= times[-1]``."""
        times = self.times
        i = int(np.searchsorted(times, t, side="right")) - 1
        if i >= len(times) - 1:
            return self.rows[-1].copy()
        if i < 0:
            return self.rows[0].copy()
        u = (t - times[i]) / (times[i + 1] - times[i])
        return interpolate_rows(self.rows[i], self.rows[i + 1], min(max(u, 0.0), 1.0))


class ChunkExecutor:
    """Turns a stream of action chunks into the action due now.

    Args:
        strategy: One of ``STRATEGIES``.
        ensemble_decay_per_s: Weight decay of older chunks in temporal ensembling [1/s], >= 0.
        max_chunks: Chunks kept (newest first win), >= 1.
        clock: Clock of the stamps [s] (receipt time of :meth:`add` when ``now_s`` is omitted).
        future_tolerance_s: How far ahead of the receipt time a stamp may be [s].

    Raises:
        ValueError: An unknown strategy, a negative or non-finite decay, ``max_chunks < 1``.
    """

    def __init__(self, strategy: str = "receding_horizon", *, ensemble_decay_per_s: float = 10.0,
                 max_chunks: int = 16, clock: Callable[[], float] = time.time,
                 future_tolerance_s: float = FUTURE_TOLERANCE_S) -> None:
        self.strategy = strategy
        self.ensemble_decay_per_s = ensemble_decay_per_s
        if int(max_chunks) < 1:
            raise ValueError(f"max_chunks must be >= 1, got {max_chunks!r}")
        self.max_chunks = int(max_chunks)
        self.future_tolerance_s = float(future_tolerance_s)
        self._clock = clock
        self._chunks: list[_Chunk] = []  # oldest first
        self._newest_stamp: float | None = None
        #: Receipt rate and latency (receipt - stamp) of accepted and rejected chunks.
        self.stats = StageStats()
        #: Stamp [s] of the newest chunk that contributed to the last target (None if none).
        self.source_stamp_s: float | None = None

    @property
    def strategy(self) -> str:
        """``receding_horizon`` or ``temporal_ensembling``; may change between targets."""
        return self._strategy

    @strategy.setter
    def strategy(self, value: str) -> None:
        if value not in STRATEGIES:
            raise ValueError(f"unknown strategy {value!r}; valid choices: {', '.join(STRATEGIES)}")
        self._strategy = value

    @property
    def ensemble_decay_per_s(self) -> float:
        """Temporal-ensembling weight decay [1/s]."""
        return self._decay

    @ensemble_decay_per_s.setter
    def ensemble_decay_per_s(self, value: float) -> None:
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"ensemble_decay_per_s must be finite and >= 0, got {value!r}")
        self._decay = float(value)

    def __len__(self) -> int:
        return len(self._chunks)

    def clear(self) -> None:
        """Forget every chunk (on resume: plans made before a hold are not executed after it)."""
        self._chunks.clear()
        self._newest_stamp = None
        self.source_stamp_s = None

    def add(self, chunk: np.ndarray, times_s: np.ndarray, stamp_s: float,
            now_s: float | None = None) -> Status:
        """Validate a chunk again (never trust upstream) and keep it if valid.

        Args:
            chunk: Shape (H, n) joint positions or (H, F, 7) poses.
            times_s: Offsets from ``stamp_s`` [s], shape (H,), finite, >= 0, strictly increasing.
            stamp_s: Capture time of the observation [s].
            now_s: Receipt time [s]; the clock's now when None.

        Returns:
            ``OK``, or the reason it was dropped: ``HOLD_WRONG_LENGTH`` (shape, or a shape other
            than the kept chunks'), ``HOLD_NON_FINITE``, ``HOLD_INVALID_ROTATION``,
            ``HOLD_NON_MONOTONIC`` (times, or a stamp not newer than the newest chunk's),
            ``HOLD_FUTURE_STAMP`` or ``HOLD_STALE`` (ran out before it arrived).
        """
        now = self._clock() if now_s is None else float(now_s)
        stamp = float(stamp_s)
        status, rows, times = self._check(chunk, times_s, stamp, now)
        self.stats.record(now, now - stamp if math.isfinite(stamp) else None, status)
        if status is Status.OK:
            self._newest_stamp = stamp
            self._chunks.append(_Chunk(rows, times, stamp))
            del self._chunks[:-self.max_chunks]
        return status

    def reject(self, stamp_s: float, status: Status, now_s: float | None = None) -> None:
        """Count a chunk that failed validation before :meth:`add` (names, message shape)."""
        now = self._clock() if now_s is None else float(now_s)
        self.stats.record(now, now - stamp_s if math.isfinite(stamp_s) else None, status)

    def _check(self, chunk, times_s, stamp: float, now: float):
        rows = np.array(chunk, dtype=np.float64)
        times = np.array(times_s, dtype=np.float64).reshape(-1)
        if rows.ndim not in (2, 3) or rows.shape[0] == 0 or times.shape != (rows.shape[0],) \
                or (rows.ndim == 3 and rows.shape[2] != 7):
            return Status.HOLD_WRONG_LENGTH, None, None
        if self._chunks and rows.shape[1:] != self._chunks[-1].rows.shape[1:]:
            return Status.HOLD_WRONG_LENGTH, None, None
        if not (np.isfinite(rows).all() and np.isfinite(times).all() and math.isfinite(stamp)):
            return Status.HOLD_NON_FINITE, None, None
        if rows.ndim == 3:
            rows, status = check_poses(rows, rows.shape[1])
            if rows is None:
                return status, None, None
        if times[0] < 0.0 or (np.diff(times) <= 0.0).any():
            return Status.HOLD_NON_MONOTONIC, None, None
        if self._newest_stamp is not None and not stamp > self._newest_stamp:
            return Status.HOLD_NON_MONOTONIC, None, None
        if stamp > now + self.future_tolerance_s:
            return Status.HOLD_FUTURE_STAMP, None, None
        if now - stamp > times[-1] + TIME_TOLERANCE_S:
            return Status.HOLD_STALE, None, None
        return Status.OK, rows, times

    def target(self, now_s: float) -> tuple[np.ndarray | None, Status]:
        """The action due at ``now_s`` [s]: joints (n,) or poses (F, 7), or None and a hold."""
        now = float(now_s)
        self._chunks = [c for c in self._chunks
                        if now - c.stamp <= c.times[-1] + TIME_TOLERANCE_S]
        self.source_stamp_s = None
        if not self._chunks:
            return None, Status.HOLD_TIMEOUT if self._newest_stamp is None else Status.HOLD_STALE
        covering = [c for c in self._chunks if now - c.stamp >= c.times[0]]
        if self._strategy == "temporal_ensembling" and len(covering) > 1:
            self.source_stamp_s = covering[-1].stamp
            return self._ensemble(covering, now), Status.OK
        # Receding horizon, or nothing to average: the newest chunk (covering, else pending).
        chosen = covering[-1] if covering and self._strategy == "temporal_ensembling" \
            else self._chunks[-1]
        self.source_stamp_s = chosen.stamp
        return chosen.at(now - chosen.stamp), Status.OK

    def _ensemble(self, chunks: list[_Chunk], now: float) -> np.ndarray:
        rows = np.stack([c.at(now - c.stamp) for c in chunks])
        ages = np.array([now - c.stamp for c in chunks])
        # Relative to the newest chunk: exp() of large ages cannot underflow every weight to 0.
        weights = np.exp(-self._decay * (ages - ages.min()))
        weights /= weights.sum()
        if rows.ndim == 2:
            return weights @ rows
        out = np.tensordot(weights, rows, axes=1)
        quats = rows[..., 3:]
        reference = quats[-1]  # the newest chunk's
        signs = np.where(np.einsum("kfi,fi->kf", quats, reference) < 0.0, -1.0, 1.0)
        q = np.einsum("k,kf,kfi->fi", weights, signs, quats)
        out[:, 3:] = q / np.linalg.norm(q, axis=-1, keepdims=True)
        return out
