"""Keyframes of a demo: where its embedding trajectory settles.

A demonstration alternates motion and rest: a hand reaches, grasps, carries, places, lets go.
Each rest is a state the task passes through; the last one is the goal. ``find_keyframes``
finds them on the sampled embeddings ``e_i`` (N, D) at times ``t_i``:

1. Speed: ``v_i = |mean(e over [t_i, t_i + w]) - mean(e over [t_i - w, t_i])| / w`` with
   ``w = smoothing_s``: the smoothed embedding velocity, measured between the means of the
   windows before and after each sample (averaging tames frame-to-frame encoder jitter).
2. A sample is still when ``v_i <= v_max = settle_fraction * extent / min_settle_s`` (it moves
   less than ``settle_fraction`` of the trajectory's extent, the 95th percentile distance of a
   sample from the mean embedding, in ``min_settle_s``; relative to the extent, the rule needs
   no per-encoder scale), or when its displacement ``v_i * w`` is at most twice the 25th
   percentile displacement: what encoder jitter and codec artefacts alone give, assuming at
   least a quarter of the demo is at rest (0 for a noiseless trajectory).
3. The windows blur a motion's edges: each run of still samples is widened over neighbouring
   samples that lie as close to the run's mean embedding as its own samples do (or within
   three standard deviations of the per-sample jitter, estimated from the quietest quarter of
   the frame-to-frame steps), so a settle time is the first sample at rest. Runs that
   then last at least ``min_settle_s`` are settled states.
4. Neighbouring runs whose mean embeddings are closer than ``settle_fraction * extent`` are one
   state interrupted by a glitch, and are merged.

A first run that begins within ``min_settle_s`` of the start (too soon for an action to have
preceded it) is the start state, not a subgoal. Subgoal ``k`` is a run:
its time is the settle time (the run's first frame), its embedding the mean over the run, its
representative frame the run's frame nearest that mean. The goal is the last subgoal; a demo
that ends in motion gets its last frame as the goal and ``ends_settled`` False. A demo at rest
from start to end is one state, and that state is its goal.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from hv2r_ros.core.errors import ConfigError

__all__ = ["KeyframeConfig", "Keyframes", "find_keyframes"]


@dataclasses.dataclass(frozen=True)
class KeyframeConfig:
    """Settling rule (see the module docstring).

    Attributes:
        smoothing_s: Window of the embedding means whose difference is the velocity [s].
        min_settle_s: Shortest rest that counts as a settled state [s].
        settle_fraction: Motion within ``min_settle_s``, as a fraction of the trajectory's
            extent, below which the trajectory is at rest; also the merge distance.
    """

    smoothing_s: float = 0.3
    min_settle_s: float = 0.5
    settle_fraction: float = 0.1

    def __post_init__(self) -> None:
        for name, low in (("smoothing_s", 0.0), ("min_settle_s", 0.0),
                          ("settle_fraction", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < low or \
                    (name != "smoothing_s" and value <= low):
                raise ConfigError("must be a finite number > 0 (>= 0 for smoothing_s)",
                                  field=f"keyframes.{name}", value=value)


@dataclasses.dataclass(frozen=True)
class Keyframes:
    """Subgoals found on one trajectory; K subgoals, the last is the goal.

    Attributes:
        runs: (K, 2) int, first and last sample index of each subgoal's settled run.
        indices: (K,) int, the representative sample of each subgoal.
        times_s: (K,) settle time of each subgoal (its run's first sample) [s].
        embeddings: (K, D) float32, mean embedding over each run.
        start_run: (first, last) sample index of the initial rest, or None.
        ends_settled: False when the demo ends in motion (the goal is then its last frame).
        speed: (N,) smoothed embedding speed per sample (step 1) [embedding units / s].
        speed_limit: ``v_max`` [embedding units / s].
    """

    runs: np.ndarray
    indices: np.ndarray
    times_s: np.ndarray
    embeddings: np.ndarray
    start_run: tuple[int, int] | None
    ends_settled: bool
    speed: np.ndarray
    speed_limit: float


def _window_speed(e: np.ndarray, t: np.ndarray, window_s: float) -> np.ndarray:
    """Per sample: |mean over the next window - mean over the previous one| (both windows
    include the sample itself)."""
    index = np.arange(len(t))
    lo = np.searchsorted(t, t - window_s - 1e-9, side="left")
    hi = np.searchsorted(t, t + window_s + 1e-9, side="right")
    cumulative = np.concatenate([np.zeros((1, e.shape[1])), np.cumsum(e, axis=0)])
    before = (cumulative[index + 1] - cumulative[lo]) / (index + 1 - lo)[:, None]
    after = (cumulative[hi] - cumulative[index]) / (hi - index)[:, None]
    return np.linalg.norm(after - before, axis=1)


def _widen(e: np.ndarray, first: int, last: int, jitter: float) -> tuple[int, int]:
    """Grow a rest over neighbours as close to its mean as its own samples are, or within
    three jitter standard deviations of it."""
    mean = e[first:last + 1].mean(axis=0)
    radius = max(float(np.linalg.norm(e[first:last + 1] - mean, axis=1).max()), 3.0 * jitter)
    radius += 1e-9 * (1.0 + float(np.abs(mean).max()))  # a noiseless rest's rounding
    while first > 0 and np.linalg.norm(e[first - 1] - mean) <= radius:
        first -= 1
    while last < len(e) - 1 and np.linalg.norm(e[last + 1] - mean) <= radius:
        last += 1
    return first, last


def _still_runs(still: np.ndarray) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, flag in enumerate(still):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(still) - 1))
    return runs


def _check_inputs(embeddings: np.ndarray, times_s: np.ndarray) -> None:
    if embeddings.ndim != 2 or embeddings.shape[0] < 2 or times_s.shape != embeddings.shape[:1]:
        raise ValueError(f"need (N >= 2, D) embeddings and (N,) times, got "
                         f"{embeddings.shape} and {times_s.shape}")
    if not (np.all(np.isfinite(embeddings)) and np.all(np.isfinite(times_s))):
        raise ValueError("embeddings and times must be finite")
    if np.any(np.diff(times_s) <= 0):
        raise ValueError("times must be strictly increasing")


def find_keyframes(embeddings: np.ndarray, times_s: np.ndarray,
                   config: KeyframeConfig = KeyframeConfig()) -> Keyframes:
    """Subgoals where the embedding trajectory settles (see the module docstring).

    Args:
        embeddings: (N, D) sampled embeddings, N >= 2, finite.
        times_s: (N,) their times, strictly increasing [s].
        config: The settling rule.

    Raises:
        ValueError: Shapes, non-finite values or non-increasing times (the frame sources
            guarantee all three; this is a programming error).
    """
    e = np.asarray(embeddings, np.float64)
    t = np.asarray(times_s, np.float64)
    _check_inputs(e, t)
    dt = np.diff(t)
    window_s = max(config.smoothing_s, float(dt.min()))
    displacement = _window_speed(e, t, window_s)
    extent = float(np.quantile(np.linalg.norm(e - e.mean(axis=0), axis=1), 0.95))
    limit = config.settle_fraction * extent / config.min_settle_s
    # Jitter per sample from the quietest quarter of the frame-to-frame steps (for widening),
    # and the displacement jitter alone gives: twice the quietest quarter's (codec artefacts
    # such as periodic key frames make it heavier-tailed than white noise).
    jitter = float(np.quantile(np.linalg.norm(np.diff(e, axis=0), axis=1), 0.25)) / math.sqrt(2)
    quiet = float(np.quantile(displacement, 0.25))
    still = displacement <= max(limit * window_s, 2.0 * quiet)
    runs = []
    for first, last in _still_runs(still):
        first, last = _widen(e, first, last, jitter)
        if t[last] - t[first] >= config.min_settle_s - 1e-9:
            runs.append([first, last])
    runs = _merge(e, runs, config.settle_fraction * extent)
    start_run = None
    if len(runs) > 1 and t[runs[0][0]] - t[0] < config.min_settle_s:
        start_run = tuple(runs.pop(0))
    ends_settled = bool(runs) and runs[-1][1] == len(t) - 1
    if not ends_settled:
        runs.append([len(t) - 1, len(t) - 1])
    means = np.array([e[a:b + 1].mean(axis=0) for a, b in runs])
    indices = np.array([a + int(np.argmin(np.linalg.norm(e[a:b + 1] - m, axis=1)))
                        for (a, b), m in zip(runs, means)], np.int64)
    runs_array = np.array(runs, np.int64).reshape(-1, 2)
    return Keyframes(runs=runs_array, indices=indices, times_s=t[runs_array[:, 0]].copy(),
                     embeddings=means.astype(np.float32), start_run=start_run,
                     ends_settled=ends_settled, speed=displacement / window_s,
                     speed_limit=limit)


def _merge(e: np.ndarray, runs: list[list[int]], distance: float) -> list[list[int]]:
    """Merge neighbouring runs that overlap (after widening) or whose mean embeddings are
    within ``distance``."""
    merged: list[list[int]] = []
    for run in runs:
        if merged and (run[0] <= merged[-1][1] or np.linalg.norm(
                e[merged[-1][0]:merged[-1][1] + 1].mean(axis=0) -
                e[run[0]:run[1] + 1].mean(axis=0)) < distance):
            merged[-1][1] = max(merged[-1][1], run[1])
        else:
            merged.append(list(run))
    return merged
