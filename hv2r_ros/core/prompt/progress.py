"""Progress toward the current subgoal, monotone subgoal advancement, and task completion.

Progress is VIP-style on encoder embeddings: toward subgoal ``g_k``,

    p_t = 1 - d_t / d_0,    d_t = |e_t - g_k|,

where ``d_0`` is the distance when ``g_k`` became the current subgoal (the first observation
for ``g_0``, the observation that completed ``g_{k-1}`` for the others). ``p`` is 0 where the
robot started on this subgoal and 1 on it; it is clipped to [-1, 1] so that one wild frame
cannot drag the average far, then smoothed by an exponential moving average with time constant
``smoothing_s`` (irregular observation rates are handled: the weight of a new value is
``1 - exp(-dt / smoothing_s)``). ``d_0`` is floored at half the demo's distance from the
previous subgoal to this one: an observation that already sits on a subgoal is done with it
instead of dividing by almost zero.

Advancement is monotone: the subgoal index only moves forward, when the smoothed progress has
stayed at or above its advance threshold for ``hold_s``; on the last subgoal the same rule with
the completion threshold completes the task, and completion is latched until ``reset``. The
thresholds (one per subgoal) come from ``calibration.calibrate`` (successful rollouts, or the
demo itself), not from constants. ``update`` never raises: an observation with a wrong size, a
non-finite value or a stamp not after the previous one is ignored and reported as not accepted.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from hv2r_ros.core.errors import ConfigError

__all__ = ["CalibrationError", "ProgressCalibration", "ProgressState", "ProgressTracker"]

CALIBRATION_FORMAT = "hv2r.progress_calibration/1"


class CalibrationError(ConfigError):
    """Calibration data cannot give usable thresholds, or a calibration file is invalid."""


@dataclasses.dataclass(frozen=True)
class ProgressCalibration:
    """Thresholds of the tracker for one task and the settings they were calibrated with.

    Attributes:
        advance_thresholds: Per subgoal but the last (K - 1 values): smoothed progress that,
            held for ``hold_s``, moves on to the next subgoal.
        complete_threshold: Smoothed progress on the last subgoal that, held for ``hold_s``,
            completes the task.
        hold_s: How long progress must stay at or above a threshold [s].
        smoothing_s: Time constant of the progress average [s]; 0 for none.
        spread: Per subgoal (K values): the spread of the calibration rollouts' peak progress
            (their standard deviation, or the progress noise for a single rollout), from which
            each threshold's margin below the peaks was set (see ``calibration``).
        source: What the thresholds were calibrated on, for logs and status.
        encoder_digest: The encoder whose embeddings were used ("" when unknown).
        spec_digest: The demo (``TaskSpec.source_digest``) they were calibrated for.
    """

    advance_thresholds: tuple[float, ...]
    complete_threshold: float
    hold_s: float
    smoothing_s: float
    spread: tuple[float, ...] = ()
    source: str = ""
    encoder_digest: str = ""
    spec_digest: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "advance_thresholds", tuple(self.advance_thresholds))
        object.__setattr__(self, "spread", tuple(self.spread))
        for i, value in enumerate(self.thresholds):
            name = "complete_threshold" if i == len(self.advance_thresholds) \
                else f"advance_thresholds[{i}]"
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0.0 < value <= 1.0:
                raise CalibrationError("must be in (0, 1]", field=name, value=value)
        for name in ("hold_s", "smoothing_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise CalibrationError("must be finite and >= 0", field=name, value=value)

    @property
    def thresholds(self) -> tuple[float, ...]:
        """Per subgoal (K values): the advance thresholds, then the completion threshold."""
        return (*self.advance_thresholds, self.complete_threshold)

    def save(self, path: str | Path) -> Path:
        """Write as JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"format": CALIBRATION_FORMAT,
                                    **dataclasses.asdict(self)}, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ProgressCalibration:
        """Read a file written by ``save``.

        Raises:
            CalibrationError: Missing, not JSON of this format, or a field out of range; the
                message names the file and the field.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise CalibrationError("calibration file does not exist", file=str(path)) from None
        except (OSError, ValueError) as exc:
            raise CalibrationError(f"not a readable calibration file ({exc})",
                                   file=str(path)) from exc
        if not isinstance(data, dict) or data.pop("format", None) != CALIBRATION_FORMAT:
            raise CalibrationError(f"format is not {CALIBRATION_FORMAT}", file=str(path))
        names = {field.name for field in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except CalibrationError as exc:
            raise CalibrationError(exc.reason, file=str(path), field=exc.field,
                                   value=exc.value) from None
        except TypeError as exc:
            raise CalibrationError(f"missing or malformed fields ({exc})",
                                   file=str(path)) from None


@dataclasses.dataclass(frozen=True)
class ProgressState:
    """The tracker after one observation.

    Attributes:
        subgoal: Index of the current subgoal (the last one once complete).
        subgoal_count: K.
        progress: Smoothed progress toward the current subgoal, in [-1, 1].
        task_progress: ``(subgoal + clip(progress, 0, 1)) / K`` in [0, 1]; 1 once complete.
        complete: The task is complete (latched).
        advanced: This observation moved to the next subgoal or completed the task.
        accepted: False when the observation was ignored (size, non-finite, stamp).
    """

    subgoal: int
    subgoal_count: int
    progress: float
    task_progress: float
    complete: bool
    advanced: bool = False
    accepted: bool = True


class ProgressTracker:
    """Tracks progress through the subgoals of one task.

    Args:
        subgoals: (K, D) subgoal embeddings in order, the last one the goal.
        calibration: Thresholds (K of them), hold time and smoothing.
        start_embedding: (D,) the demo's initial state (sets the ``d_0`` floor of the first
            subgoal); default the first subgoal's floor comes from the second.

    Raises:
        CalibrationError: The calibration has a threshold count other than K.
    """

    def __init__(self, subgoals: np.ndarray, calibration: ProgressCalibration,
                 start_embedding: np.ndarray | None = None) -> None:
        self.subgoals = np.asarray(subgoals, np.float64)
        if self.subgoals.ndim != 2 or self.subgoals.shape[0] < 1 \
                or not np.all(np.isfinite(self.subgoals)):
            raise ValueError(f"subgoals must be finite (K >= 1, D), got {self.subgoals.shape}")
        if len(calibration.thresholds) != self.subgoals.shape[0]:
            raise CalibrationError(
                f"has thresholds for {len(calibration.thresholds)} subgoals, the task has "
                f"{self.subgoals.shape[0]}: calibrate on this task", field="advance_thresholds")
        self.calibration = calibration
        self.start_embedding = start_embedding
        chain = self.subgoals if start_embedding is None else \
            np.vstack([np.asarray(start_embedding, np.float64)[None], self.subgoals])
        steps = np.linalg.norm(np.diff(chain, axis=0), axis=1)
        if start_embedding is None:
            steps = np.concatenate([steps[:1], steps]) if steps.size else np.zeros(1)
        positive = steps[steps > 0]
        # Half the demo's own step to each subgoal; a zero step (a repeated state) borrows the
        # smallest non-zero one; a demo without any step (one goal image) only guards the
        # division.
        fallback = float(positive.min()) if positive.size else \
            1e-9 * (1.0 + float(np.abs(self.subgoals).max()))
        self._d0_floor = 0.5 * np.where(steps > 0, steps, fallback)
        self.reset()

    def reset(self) -> None:
        """Back to the first subgoal, not complete; the next observation sets ``d_0``."""
        self.subgoal, self.complete = 0, False
        self._d0: float | None = None
        self._smoothed = 0.0
        self._last_time_s = -math.inf
        self._above_since_s: float | None = None

    def threshold(self, subgoal: int) -> float:
        """The progress that, held for ``hold_s``, finishes subgoal ``subgoal``."""
        return self.calibration.thresholds[subgoal]

    def state(self, advanced: bool = False, accepted: bool = True) -> ProgressState:
        """The current state without an observation."""
        count = self.subgoals.shape[0]
        done = 1.0 if self.complete else min(max(self._smoothed, 0.0), 1.0)
        return ProgressState(self.subgoal, count, self._smoothed,
                             1.0 if self.complete else (self.subgoal + done) / count,
                             self.complete, advanced, accepted)

    def update(self, embedding: np.ndarray, time_s: float) -> ProgressState:
        """One observation.

        Args:
            embedding: (D,) the current observation's embedding.
            time_s: Its capture time [s], after the previous observation's.
        """
        e = np.asarray(embedding, np.float64)
        if e.shape != self.subgoals.shape[1:] or not np.all(np.isfinite(e)) \
                or not math.isfinite(time_s) or time_s <= self._last_time_s:
            return self.state(accepted=False)
        if self.complete:
            self._last_time_s = time_s
            return self.state()
        distance = float(np.linalg.norm(e - self.subgoals[self.subgoal]))
        first = self._d0 is None
        if first:
            self._d0 = max(distance, float(self._d0_floor[self.subgoal]))
        raw = min(max(1.0 - distance / self._d0, -1.0), 1.0)
        if first or self.calibration.smoothing_s == 0:
            self._smoothed = raw
        else:
            weight = 1.0 - math.exp(-(time_s - self._last_time_s) /
                                    self.calibration.smoothing_s)
            self._smoothed += weight * (raw - self._smoothed)
        self._last_time_s = time_s
        last = self.subgoal == self.subgoals.shape[0] - 1
        if self._smoothed < self.threshold(self.subgoal):
            self._above_since_s = None
            return self.state()
        if self._above_since_s is None:
            self._above_since_s = time_s
        if time_s - self._above_since_s < self.calibration.hold_s - 1e-9:
            return self.state()
        self._above_since_s = None
        if last:
            self.complete = True
            return self.state(advanced=True)
        self.subgoal += 1
        # The observation that finished the previous subgoal is where this one starts.
        next_distance = float(np.linalg.norm(e - self.subgoals[self.subgoal]))
        self._d0 = max(next_distance, float(self._d0_floor[self.subgoal]))
        self._smoothed = 1.0 - next_distance / self._d0
        return self.state(advanced=True)
