"""The prompt stage scored on demos of known structure, against negative controls that must lose.

Each demo comes with its ground truth (``DemoTruth``): the times of the states a pick-and-place
passes through (grasped, released, end; the initial rest is the start state, not a subgoal, as
in ``keyframes``), and two true progress curves over the sampled frames:

- *cube progress*: how far the moved object is toward where it ends, in the table plane,
  ``1 - |xy_t - xy_end| / |xy_0 - xy_end|`` clipped to [0, 1]: the state of the task, which is
  what progress toward a goal image should follow;
- *time progress*: the fraction of the demonstrated action elapsed, 0 until the hand starts
  to move, 1 from the end state on: what a trajectory ordered in time gives.

A prompt (``Prompt``: subgoal times, goal and start embeddings, built by the same rule as
``build``) is scored (``score_prompt``) by keyframe F1 of its subgoal times against the true
keyframes (``evaluation.keyframe_f1``) and by the Spearman correlation of its per-frame goal
progress ``p_t = 1 - d(e_t, goal) / d(e_start, goal)`` with each true progress. Spearman sees
only ranks, so it scores the ordering of ``-d(e_t, goal)``: ``d_0`` only scales.

Negative controls, each scored against the same truth (``evaluate_demo``):

- ``shuffled frames``: the demo's embeddings in a random order (keyframes and goal found on the
  shuffled trajectory, progress compared position by position): no temporal structure left;
- ``another task's prompt``: goal and keyframe times from another layout's demo: what an
  encoder that ignored the video, or a prompt mixed up with another, would give;
- ``random-weight encoder``: the same frames embedded by an untrained encoder.

A control is *clearly worse* on a metric when the 95 % confidence interval of the mean paired
difference (demo minus control, over the videos; Student t) lies wholly above ``margin``
(``paired_difference``). A Spearman that is undefined (a constant prediction) counts as 0.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

from hv2r_ros.core.prompt.evaluation import KeyframeScore, keyframe_f1, spearman
from hv2r_ros.core.prompt.keyframes import KeyframeConfig, find_keyframes

__all__ = ["CONTROLS", "DEMO", "METRICS", "TRUE_KEYFRAMES", "ConditionScore", "DemoTruth",
           "PairedDifference", "Prompt", "demo_truth", "evaluate_demo", "goal_progress",
           "paired_difference", "prompt_from_embeddings", "score_prompt", "summarize",
           "t_quantile_975"]

#: Labels of the ground-truth keyframes that are subgoals (``HumanDemoInfo.keyframes``).
TRUE_KEYFRAMES = ("grasped", "released", "end")
DEMO = "demo"
SHUFFLED, OTHER_TASK, RANDOM_ENCODER = ("shuffled frames", "another task's prompt",
                                        "random-weight encoder")
CONTROLS = (SHUFFLED, OTHER_TASK, RANDOM_ENCODER)
#: Metrics a control must lose clearly (``ConditionScore`` attributes).
METRICS = ("f1", "spearman_progress")

# Student t 0.975 quantiles for 1..30 degrees of freedom (scipy.stats.t.ppf, precomputed);
# beyond, the Cornish-Fisher expansion is within 3e-6 of it.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06,
         2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.959964


@dataclasses.dataclass(frozen=True)
class DemoTruth:
    """What a demo really shows, at its sampled frames.

    Attributes:
        keyframe_times_s: (K,) times of the true subgoal keyframes [s], in ``labels`` order.
        labels: Their labels (``TRUE_KEYFRAMES``).
        progress: (N,) cube progress per sample, in [0, 1].
        time_progress: (N,) time progress per sample, in [0, 1].
    """

    keyframe_times_s: np.ndarray
    labels: tuple[str, ...]
    progress: np.ndarray
    time_progress: np.ndarray


def demo_truth(keyframes: Sequence[Mapping], phases: Sequence[str], object_xy_m: np.ndarray,
               fps: float, sample_frames: Sequence[int]) -> DemoTruth:
    """The truth of a rendered demo at the frames its prompt sampled.

    Args:
        keyframes: ``{"label", "time_s", ...}`` per keyframe (``HumanDemoInfo.keyframes``).
        phases: Phase label per video frame; ``start`` until the hand moves.
        object_xy_m: (F, 2) table-plane position of the moved object per video frame [m].
        fps: Frame rate of the video [Hz].
        sample_frames: (N,) the video frame of each sample (``TaskSpec.sample_frame_indices``).

    Raises:
        ValueError: A keyframe label is missing, the object never moved, the hand never
            started, or a sample frame is outside the video.
    """
    times = {k["label"]: float(k["time_s"]) for k in keyframes}
    missing = [label for label in TRUE_KEYFRAMES if label not in times]
    if missing:
        raise ValueError(f"ground truth has no keyframe {missing}; has {sorted(times)}")
    xy = np.asarray(object_xy_m, np.float64).reshape(len(phases), 2)
    frames = np.asarray(sample_frames, np.int64)
    if frames.size == 0 or frames.min() < 0 or frames.max() >= len(phases):
        raise ValueError(f"sample frames must lie in [0, {len(phases)}), got "
                         f"{frames.min() if frames.size else None}..{frames.max(initial=-1)}")
    travel = float(np.linalg.norm(xy[0] - xy[-1]))
    if travel < 1e-6:
        raise ValueError("the object does not move in this demo: no progress to compare with")
    progress = np.clip(1.0 - np.linalg.norm(xy[frames] - xy[-1], axis=1) / travel, 0.0, 1.0)
    moving = [i for i, phase in enumerate(phases) if phase != "start"]
    if not moving:
        raise ValueError("the hand never starts moving in this demo")
    t0_s, t1_s, t_s = moving[0] / fps, times["end"], frames / fps
    time_progress = np.clip((t_s - t0_s) / max(t1_s - t0_s, 1e-9), 0.0, 1.0)
    return DemoTruth(np.array([times[label] for label in TRUE_KEYFRAMES]), TRUE_KEYFRAMES,
                     progress, time_progress)


@dataclasses.dataclass(frozen=True)
class Prompt:
    """What the scores need from a task spec.

    Attributes:
        subgoal_times_s: (K,) settle time of each subgoal [s].
        goal: (D,) goal embedding.
        start: (D,) start-state embedding.
    """

    subgoal_times_s: np.ndarray
    goal: np.ndarray
    start: np.ndarray

    @classmethod
    def from_spec(cls, spec) -> Prompt:
        """From a ``TaskSpec``."""
        return cls(np.asarray(spec.subgoal_times_s, np.float64), spec.goal_embedding,
                   spec.start_embedding)


def prompt_from_embeddings(embeddings: np.ndarray, times_s: np.ndarray,
                           config: KeyframeConfig = KeyframeConfig()) -> Prompt:
    """The prompt ``build`` makes of a sampled trajectory: keyframes where it settles, the
    goal the last one, the start the mean of the initial rest (or the first sample)."""
    e = np.asarray(embeddings, np.float32)
    found = find_keyframes(e, times_s, config)
    start = e[found.start_run[0]:found.start_run[1] + 1].mean(axis=0) \
        if found.start_run is not None else e[0]
    return Prompt(np.asarray(found.times_s, np.float64), found.embeddings[-1], start)


def goal_progress(embeddings: np.ndarray, goal: np.ndarray, start: np.ndarray) -> np.ndarray:
    """(N,) ``p_t = 1 - d(e_t, goal) / d(start, goal)``, VIP-style (``d_0`` floored so that a
    start on the goal still orders the samples by distance)."""
    e, g = np.asarray(embeddings, np.float64), np.asarray(goal, np.float64)
    d0 = float(np.linalg.norm(np.asarray(start, np.float64) - g))
    d0 = max(d0, 1e-12 * (1.0 + float(np.abs(g).max(initial=0.0))))
    return 1.0 - np.linalg.norm(e - g, axis=1) / d0


@dataclasses.dataclass(frozen=True)
class ConditionScore:
    """One prompt of one demo against its truth.

    Attributes:
        keyframes: Keyframe precision / recall / F1 against the true keyframes.
        f1: ``keyframes.f1``.
        spearman_progress: Rank correlation of goal progress with cube progress (0 if undefined).
        spearman_time: Rank correlation of goal progress with time progress (0 if undefined).
        predicted_keyframes_s: (K',) the prompt's subgoal times [s].
        hits: Per true keyframe label: whether a prediction matched it.
        nearest_error_s: Per true keyframe label: nearest prediction minus true time [s]
            (negative: detected early).
    """

    keyframes: KeyframeScore
    spearman_progress: float
    spearman_time: float
    predicted_keyframes_s: tuple[float, ...]
    hits: dict[str, bool]
    nearest_error_s: dict[str, float]

    @property
    def f1(self) -> float:
        """Keyframe F1."""
        return self.keyframes.f1


def _defined(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def score_prompt(embeddings: np.ndarray, prompt: Prompt, truth: DemoTruth,
                 tolerance_s: float) -> ConditionScore:
    """Keyframe F1 and progress correlation of a prompt on a demo.

    Args:
        embeddings: (N, D) the demo's sampled embeddings, in the order scored against
            ``truth`` (sample i against truth sample i).
        prompt: Its subgoal times, goal and start.
        truth: The demo's truth at the same N samples.
        tolerance_s: Keyframe match tolerance [s].
    """
    if len(embeddings) != len(truth.progress):
        raise ValueError(f"{len(embeddings)} embeddings for {len(truth.progress)} true samples")
    predicted = np.asarray(prompt.subgoal_times_s, np.float64)
    score = keyframe_f1(predicted, truth.keyframe_times_s, tolerance_s)
    matched = {k for _, k in score.matches}
    progress = goal_progress(embeddings, prompt.goal, prompt.start)
    errors = {label: round(float(predicted[np.argmin(np.abs(predicted - t))] - t), 6)
              if predicted.size else math.nan
              for label, t in zip(truth.labels, truth.keyframe_times_s)}
    return ConditionScore(score, _defined(spearman(progress, truth.progress)),
                          _defined(spearman(progress, truth.time_progress)),
                          tuple(round(float(t), 6) for t in predicted),
                          {label: k in matched for k, label in enumerate(truth.labels)},
                          errors)


def evaluate_demo(embeddings: np.ndarray, times_s: np.ndarray, prompt: Prompt,
                  truth: DemoTruth, *, other_prompt: Prompt,
                  random_embeddings: np.ndarray, random_prompt: Prompt,
                  rng: np.random.Generator, tolerance_s: float,
                  config: KeyframeConfig = KeyframeConfig()) -> dict[str, ConditionScore]:
    """The demo's own prompt and the three negative controls, all against ``truth``.

    Args:
        embeddings: (N, D) the demo's sampled embeddings; ``times_s`` (N,) their times [s].
        prompt: The demo's own prompt (``Prompt.from_spec`` of its task spec).
        truth: The demo's truth at those samples.
        other_prompt: The prompt of another task's demo (same encoder).
        random_embeddings: (N, D') the same samples embedded by a random-weight encoder;
            ``random_prompt`` its prompt.
        rng: Draws the shuffle.
        tolerance_s: Keyframe match tolerance [s].
        config: Keyframe rule used for the shuffled trajectory (the spec's own).

    Returns:
        Condition name (``DEMO`` and ``CONTROLS``) -> score.
    """
    shuffled = np.asarray(embeddings)[rng.permutation(len(embeddings))]
    return {
        DEMO: score_prompt(embeddings, prompt, truth, tolerance_s),
        SHUFFLED: score_prompt(shuffled, prompt_from_embeddings(shuffled, times_s, config),
                               truth, tolerance_s),
        OTHER_TASK: score_prompt(embeddings, other_prompt, truth, tolerance_s),
        RANDOM_ENCODER: score_prompt(random_embeddings, random_prompt, truth, tolerance_s),
    }


def t_quantile_975(df: int) -> float:
    """Student t 0.975 quantile (two-sided 95 %) for ``df >= 1`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"needs df >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """Demo minus control on one metric over n videos.

    Attributes:
        mean: Mean paired difference.
        ci_low, ci_high: Its two-sided 95 % Student t confidence interval (NaN for n < 2).
        n: Videos.
        clearly_worse: The control is clearly worse: ``ci_low > margin``.
    """

    mean: float
    ci_low: float
    ci_high: float
    n: int
    clearly_worse: bool


def paired_difference(demo: Sequence[float], control: Sequence[float],
                      margin: float) -> PairedDifference:
    """Whether a control scores clearly worse than the demo's own prompt, video by video.

    Args:
        demo, control: One score per video, same order.
        margin: Smallest difference that counts as clearly worse, >= 0.
    """
    a, b = np.asarray(demo, np.float64), np.asarray(control, np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equal-length score lists, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))) or not margin >= 0:
        raise ValueError("scores must be finite and margin >= 0")
    d = a - b
    mean = float(d.mean())
    if d.size < 2:
        return PairedDifference(mean, math.nan, math.nan, 1, False)
    half = t_quantile_975(d.size - 1) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return PairedDifference(mean, mean - half, mean + half, int(d.size), mean - half > margin)


def summarize(per_video: Sequence[Mapping[str, ConditionScore]], margin: float) -> dict:
    """Means over the videos per condition, and each control against the demo's prompt.

    Args:
        per_video: ``evaluate_demo`` results, one per video (at least one).
        margin: See ``paired_difference``.

    Returns:
        ``{"conditions": {name: {metric: mean, metric + "_sd": sd, "recall_by_label": {...},
        "median_error_s": {...}}}, "comparisons": {control: {metric: PairedDifference as a
        dict}}, "passed": every control clearly worse on every metric of ``METRICS``}``.
    """
    if not per_video:
        raise ValueError("no videos to summarize")
    conditions = {}
    for name in (DEMO, *CONTROLS):
        scores = [video[name] for video in per_video]
        row = {}
        for metric, values in (
                ("f1", [s.f1 for s in scores]),
                ("precision", [s.keyframes.precision for s in scores]),
                ("recall", [s.keyframes.recall for s in scores]),
                ("spearman_progress", [s.spearman_progress for s in scores]),
                ("spearman_time", [s.spearman_time for s in scores])):
            row[metric] = float(np.mean(values))
            row[metric + "_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        labels = scores[0].hits.keys()
        row["recall_by_label"] = {k: float(np.mean([s.hits[k] for s in scores])) for k in labels}
        row["median_error_s"] = {k: float(np.nanmedian([s.nearest_error_s[k] for s in scores]))
                                 if not all(math.isnan(s.nearest_error_s[k]) for s in scores)
                                 else math.nan for k in labels}
        conditions[name] = row
    comparisons = {
        control: {metric: dataclasses.asdict(paired_difference(
            [getattr(v[DEMO], metric) for v in per_video],
            [getattr(v[control], metric) for v in per_video], margin)) for metric in METRICS}
        for control in CONTROLS}
    passed = all(c[m]["clearly_worse"] for c in comparisons.values() for m in METRICS)
    return {"conditions": conditions, "comparisons": comparisons, "passed": passed}
