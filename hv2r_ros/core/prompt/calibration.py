"""Thresholds of the progress tracker, calibrated on rollouts that did the task.

One threshold per subgoal, set in order, each with the very tracker that will use it:

1. For subgoal k, run every successful rollout through ``ProgressTracker`` with the thresholds
   already set for subgoals 0..k-1 and none reachable from k on (so each rollout's whole stay on
   subgoal k is seen, starting where the tracker would really start it). Its *peak* is the
   highest smoothed progress it held for ``hold_s`` on subgoal k.
2. Spread ``s``: the standard deviation of the rollouts' peaks (two or more rollouts), or, for
   a single rollout, the noise of its smoothed progress about a straight line over its peak's
   window (the average may still be converging there).
3. Threshold k = ``min(lowest peak, mean peak - f * s)`` with ``f`` the one-sided normal
   tolerance factor for n rollouts: with 95 % confidence, 99 % of successful rollouts peak
   above the threshold (``f`` = 37.1, 10.6, 7.0, 5.7 for n = 2..5, 3.1 at 30, 2.3 as n grows:
   few rollouts give wide margins). A single rollout gets ``3 * noise``.
4. Failed rollouts, when given, must not complete: if one does, the completion threshold moves
   to halfway between the highest progress a failure held on the goal and the lowest peak of
   the successes; if failures hold as much as successes, calibration fails, naming the rollout.

A threshold at or below 0 means the rollouts never got closer to that subgoal than where they
started, in this encoder's space (the camera or the encoder does not see the task's progress,
or the rollouts disagree too much): a ``CalibrationError`` naming the rollout or the subgoal.
With no robot rollouts at hand, ``demo_rollout`` turns the demo itself into one (optimistic:
the robot's views differ from the human video's, so robot progress peaks lower).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from hv2r_ros.core.prompt.progress import CalibrationError, ProgressCalibration, ProgressTracker
from hv2r_ros.core.prompt.spec import TaskSpec

__all__ = ["Rollout", "calibrate", "demo_rollout", "tolerance_factor"]

# One-sided normal tolerance factors, 99 % coverage at 95 % confidence, for n = 2..30
# rollouts: nct.ppf(0.95, n - 1, z_0.99 * sqrt(n)) / sqrt(n) (scipy.stats), precomputed.
_TOLERANCE = (37.094, 10.553, 7.042, 5.741, 5.062, 4.642, 4.354, 4.143, 3.981, 3.852, 3.747,
              3.659, 3.585, 3.52, 3.464, 3.414, 3.37, 3.331, 3.295, 3.263, 3.233, 3.206,
              3.181, 3.158, 3.136, 3.116, 3.098, 3.08, 3.064)
_Z_COVERAGE, _Z_CONFIDENCE = 2.3263, 1.6449  # standard normal quantiles at 0.99 and 0.95
#: Noise standard deviations below a single rollout's peak.
SINGLE_ROLLOUT_SPREADS = 3.0


def tolerance_factor(n: int) -> float:
    """One-sided normal tolerance factor: 99 % coverage, 95 % confidence, ``n >= 2`` samples.

    Exact (tabulated) up to 30; beyond, the Natrella approximation (within 0.5 % there).
    """
    if n < 2:
        raise ValueError(f"needs n >= 2, got {n}")
    if n - 2 < len(_TOLERANCE):
        return _TOLERANCE[n - 2]
    a = 1 - _Z_CONFIDENCE ** 2 / (2 * (n - 1))
    b = _Z_COVERAGE ** 2 - _Z_CONFIDENCE ** 2 / n
    return (_Z_COVERAGE + math.sqrt(_Z_COVERAGE ** 2 - a * b)) / a


@dataclasses.dataclass(frozen=True)
class Rollout:
    """One recorded episode as embeddings of the progress camera.

    Attributes:
        embeddings: (T, D) one per observation.
        times_s: (T,) capture times, strictly increasing [s].
        name: For messages (a file name).
    """

    embeddings: np.ndarray
    times_s: np.ndarray
    name: str = "rollout"


def demo_rollout(spec: TaskSpec) -> Rollout:
    """The demo's own sampled embeddings as a (successful) rollout."""
    return Rollout(spec.embeddings, spec.sample_times_s, f"demo {spec.source}")


def _trace(tracker: ProgressTracker, rollout: Rollout) -> tuple[np.ndarray, np.ndarray]:
    """(subgoal index, smoothed progress) after each observation."""
    tracker.reset()
    subgoal, progress = [], []
    for embedding, time_s in zip(rollout.embeddings, rollout.times_s):
        state = tracker.update(embedding, float(time_s))
        subgoal.append(state.subgoal)
        # The observation that advanced the tracker is not tested against the new subgoal's
        # threshold, so no hold on the new subgoal may start there.
        progress.append(state.progress if not state.advanced or state.complete
                        else math.nan)
    return np.array(subgoal), np.array(progress)


def _best_held(times_s: np.ndarray, progress: np.ndarray,
               hold_s: float) -> tuple[float, slice]:
    """Highest p such that progress stayed >= p over some span of at least ``hold_s``, and
    that span (-inf and an empty slice when no span is long enough)."""
    best, window = -math.inf, slice(0, 0)
    for j in range(len(times_s)):
        i = int(np.searchsorted(times_s, times_s[j] - hold_s + 1e-9, side="right")) - 1
        if i < 0 or np.any(np.isnan(progress[i:j + 1])):
            continue
        value = float(progress[i:j + 1].min())
        if value > best:
            best, window = value, slice(i, j + 1)
    return best, window


def _noise(times_s: np.ndarray, progress: np.ndarray) -> float:
    """Root-mean-square residual of ``progress`` about its least-squares line."""
    if len(times_s) < 3:
        return 0.0
    t = times_s - times_s[0]
    trend = np.polyval(np.polyfit(t, progress, 1), t)
    return float(np.sqrt(np.mean((progress - trend) ** 2)))


def _peak(tracker: ProgressTracker, rollout: Rollout, k: int, hold_s: float,
          count: int) -> tuple[float, float]:
    """(peak held progress on subgoal k, noise over its window) of one rollout."""
    subgoals, progress = _trace(tracker, rollout)
    index = np.flatnonzero(subgoals == k)
    if index.size == 0:
        raise CalibrationError(f"never reaches subgoal {k + 1} of {count}", file=rollout.name)
    times = rollout.times_s[index]
    peak, window = _best_held(times, progress[index], hold_s)
    if not math.isfinite(peak):
        raise CalibrationError(
            f"ends less than hold_s = {hold_s:g} s after reaching subgoal {k + 1} of {count}: "
            "record it until the robot has rested on the goal for longer", file=rollout.name)
    if peak <= 0:
        raise CalibrationError(
            f"never gets closer to subgoal {k + 1} of {count} than where it started (best "
            f"held progress {peak:.3f}): the camera or the encoder does not see this task's "
            "progress, or the rollout does not do the demo's task", file=rollout.name)
    return peak, _noise(times[window], progress[index][window])


def _check(rollout: Rollout, dimension: int) -> Rollout:
    e = np.asarray(rollout.embeddings, np.float64)
    t = np.asarray(rollout.times_s, np.float64)
    if e.ndim != 2 or e.shape[1] != dimension or t.shape != e.shape[:1] or len(t) < 2:
        raise CalibrationError(f"needs (T >= 2, {dimension}) embeddings and (T,) times, got "
                               f"{e.shape} and {t.shape}", file=rollout.name)
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(t)) and np.all(np.diff(t) > 0)):
        raise CalibrationError("embeddings and times must be finite, times increasing",
                               file=rollout.name)
    return Rollout(e, t, rollout.name)


def _with(calibration: ProgressCalibration, thresholds: Sequence[float],
          spread: Sequence[float]) -> ProgressCalibration:
    return dataclasses.replace(calibration, advance_thresholds=tuple(thresholds[:-1]),
                               complete_threshold=thresholds[-1], spread=tuple(spread))


def calibrate(subgoals: np.ndarray, successes: Sequence[Rollout], *, hold_s: float = 1.0,
              smoothing_s: float = 0.5, failures: Sequence[Rollout] = (),
              start_embedding: np.ndarray | None = None, source: str = "",
              encoder_digest: str = "", spec_digest: str = "") -> ProgressCalibration:
    """Tracker thresholds from successful (and optionally failed) rollouts.

    Args:
        subgoals: (K, D) the task spec's subgoal embeddings.
        successes: Rollouts that did the task, each resting on the goal for at least
            ``hold_s`` at its end.
        hold_s: How long progress must hold above a threshold [s].
        smoothing_s: Time constant of the progress average [s].
        failures: Rollouts that did not do the task (optional; they must not complete).
        start_embedding: (D,) the demo's initial state (``TaskSpec.start_embedding``).
        source, encoder_digest, spec_digest: Provenance stored in the result.

    Raises:
        CalibrationError: No successful rollout, a malformed one, one that never makes
            progress or is too short to hold, or failures indistinguishable from successes.
    """
    subgoals = np.asarray(subgoals, np.float64)
    count = subgoals.shape[0]
    if not successes:
        raise CalibrationError("needs at least one successful rollout", field="successes")
    successes = [_check(r, subgoals.shape[1]) for r in successes]
    failures = [_check(r, subgoals.shape[1]) for r in failures]
    thresholds, spread = [1.0] * count, [0.0] * count
    calibration = ProgressCalibration(
        tuple(thresholds[:-1]), 1.0, hold_s, smoothing_s, (),
        source or f"{len(successes)} successful rollout(s)", encoder_digest, spec_digest)
    tracker = _FrozenTracker(subgoals, calibration, start_embedding)
    for k in range(count):
        tracker.calibration, tracker.frozen_at = _with(calibration, thresholds, spread), k
        peaks, noises = zip(*(_peak(tracker, r, k, hold_s, count) for r in successes))
        if len(peaks) > 1:
            spread[k] = float(np.std(peaks, ddof=1))
            margin = tolerance_factor(len(peaks)) * spread[k]
        else:
            spread[k] = noises[0]
            margin = SINGLE_ROLLOUT_SPREADS * spread[k]
        thresholds[k] = min(min(peaks), float(np.mean(peaks)) - margin)
        if thresholds[k] <= 0:
            raise CalibrationError(
                f"the successful rollouts' progress on subgoal {k + 1} of {count} varies too "
                f"much (peaks {', '.join(f'{p:.3f}' for p in peaks)}): record more consistent "
                "rollouts, or check that the camera sees the task", field="successes")
    tracker = ProgressTracker(subgoals, _with(calibration, thresholds, spread), start_embedding)
    if failures:
        _separate(tracker, successes, failures, hold_s)
    return tracker.calibration


class _FrozenTracker(ProgressTracker):
    """Never finishes subgoal ``frozen_at`` or later: calibration sees a rollout's whole stay
    on the subgoal it calibrates, starting where the real tracker would start it."""

    frozen_at = 0

    def threshold(self, subgoal: int) -> float:
        return math.inf if subgoal >= self.frozen_at else super().threshold(subgoal)


def _held_on_goal(tracker: ProgressTracker, rollout: Rollout, hold_s: float) -> float:
    subgoals, progress = _trace(tracker, rollout)
    index = np.flatnonzero(subgoals == tracker.subgoals.shape[0] - 1)
    return _best_held(rollout.times_s[index], progress[index], hold_s)[0] if index.size \
        else -math.inf


def _separate(tracker: ProgressTracker, successes: Sequence[Rollout],
              failures: Sequence[Rollout], hold_s: float) -> None:
    """Raise the completion threshold above what failures hold (step 4)."""
    completing = []
    for rollout in failures:
        _trace(tracker, rollout)
        if tracker.complete:
            completing.append(rollout)
    if not completing:
        return
    frozen = _FrozenTracker(tracker.subgoals, tracker.calibration, tracker.start_embedding)
    frozen.frozen_at = tracker.subgoals.shape[0] - 1
    held = {r.name: _held_on_goal(frozen, r, hold_s) for r in completing}
    worst = max(completing, key=lambda r: held[r.name])
    positive = min(_held_on_goal(frozen, r, hold_s) for r in successes)
    if held[worst.name] >= positive:
        raise CalibrationError(
            f"this failed rollout holds progress {held[worst.name]:.3f} on the goal, as much as "
            f"the successful ones ({positive:.3f}): the camera or the encoder cannot tell "
            "success from failure here", file=worst.name)
    tracker.calibration = dataclasses.replace(
        tracker.calibration, complete_threshold=(held[worst.name] + positive) / 2)
