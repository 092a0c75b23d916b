"""Scores for the prompt stage against demos of known structure.

- ``keyframe_f1``: predicted keyframe times against true ones, each true keyframe matched to at
  most one prediction within ``tolerance_s``. Both lists are sorted, so matching greedily in time
  order (each prediction takes the earliest unmatched true time within the tolerance) gives a
  maximum matching: with one tolerance for all, a prediction skipping the earliest available
  true time can only leave a later prediction fewer options.
- ``spearman``: rank correlation of predicted and true progress (ties get their average rank,
  as in the textbook definition), robust to the monotone but non-linear relation between
  embedding distance and task progress.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

__all__ = ["KeyframeScore", "keyframe_f1", "rank", "spearman"]


@dataclasses.dataclass(frozen=True)
class KeyframeScore:
    """Keyframe detection against ground truth.

    Attributes:
        precision: Matched / predicted (1 when nothing was predicted and nothing was true).
        recall: Matched / true (1 when nothing was true).
        f1: Harmonic mean of precision and recall (0 when both are 0).
        matches: (predicted index, true index) pairs.
        mean_error_s: Mean |predicted - true| over the matches [s]; NaN without a match.
    """

    precision: float
    recall: float
    f1: float
    matches: tuple[tuple[int, int], ...]
    mean_error_s: float


def _times(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, np.float64).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array


def keyframe_f1(predicted_s: Sequence[float], true_s: Sequence[float],
                tolerance_s: float) -> KeyframeScore:
    """Precision, recall and F1 of keyframe times with a time tolerance.

    Args:
        predicted_s: Predicted keyframe times [s].
        true_s: True keyframe times [s].
        tolerance_s: Largest |predicted - true| that counts as a hit [s], >= 0.
    """
    if not math.isfinite(tolerance_s) or tolerance_s < 0:
        raise ValueError(f"tolerance_s must be finite and >= 0, got {tolerance_s}")
    predicted, true = _times(predicted_s, "predicted_s"), _times(true_s, "true_s")
    p_order, t_order = np.argsort(predicted, kind="stable"), np.argsort(true, kind="stable")
    matches, j = [], 0
    for i in p_order:
        while j < len(t_order) and true[t_order[j]] < predicted[i] - tolerance_s - 1e-12:
            j += 1  # too early for this prediction, hence for every later one
        if j < len(t_order) and abs(true[t_order[j]] - predicted[i]) <= tolerance_s + 1e-12:
            matches.append((int(i), int(t_order[j])))
            j += 1
    hits = len(matches)
    precision = hits / len(predicted) if len(predicted) else float(len(true) == 0)
    recall = hits / len(true) if len(true) else 1.0
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    error = float(np.mean([abs(predicted[i] - true[k]) for i, k in matches])) if matches \
        else math.nan
    return KeyframeScore(precision, recall, f1, tuple(matches), error)


def rank(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    x = _times(values, "values")
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    sorted_x = x[order]
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or sorted_x[end] != sorted_x[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0  # mean of start+1 .. end
            start = end
    return ranks


def spearman(predicted: Sequence[float], true: Sequence[float]) -> float:
    """Spearman rank correlation in [-1, 1]: Pearson correlation of the average ranks.

    Returns NaN when either side is constant (its rank variance is 0) or has fewer than two
    values: no ordering to agree with.

    Raises:
        ValueError: Lengths differ or a value is not finite.
    """
    a, b = rank(predicted), rank(true)
    if a.shape != b.shape:
        raise ValueError(f"lengths differ: {a.size} predicted, {b.size} true")
    if a.size < 2:
        return math.nan
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    return math.nan if denominator == 0 else float(a @ b) / denominator
