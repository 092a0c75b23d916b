"""One prompt at a time and the progress tracked on it: what the prompt node wires to ROS.

``PromptSession.load`` builds (or loads from the cache) the task spec of a demo, picks the
progress thresholds and swaps the new prompt in only when everything succeeded, so a bad path
leaves the previous prompt in place. ``observe`` embeds one camera frame and advances the
tracker. Thresholds come from ``calibration_file`` when it was calibrated for this demo and
this encoder; otherwise from the demo itself (``calibration.demo_rollout``), which the status
says. A goal image has no trajectory to calibrate on: it is tracked only with a calibration
file. Calls may come from several threads (a parameter callback and a camera timer): one lock
guards the encoder (its input buffers are shared) and the tracker.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np

from hv2r_ros.core.prompt.build import BuildReport, build_task_spec, encoder_digest
from hv2r_ros.core.prompt.calibration import calibrate, demo_rollout
from hv2r_ros.core.prompt.frames import SamplingConfig
from hv2r_ros.core.prompt.keyframes import KeyframeConfig
from hv2r_ros.core.prompt.progress import (
    CalibrationError, ProgressCalibration, ProgressState, ProgressTracker,
)
from hv2r_ros.core.prompt.spec import TaskSpec

__all__ = ["PromptSession", "SessionConfig"]


@dataclasses.dataclass(frozen=True)
class SessionConfig:
    """Settings of a prompt session.

    Attributes:
        sampling, keyframes: How demos become task specs.
        cache_dir: Folder of cached task specs; None: no cache.
        calibration_file: JSON written by ``ProgressCalibration.save``; "" for none.
        hold_s, smoothing_s: Used when calibrating on the demo itself [s].
        batch_size: Images per encoder call while building a spec.
    """

    sampling: SamplingConfig = SamplingConfig()
    keyframes: KeyframeConfig = KeyframeConfig()
    cache_dir: Path | None = None
    calibration_file: str = ""
    hold_s: float = 1.0
    smoothing_s: float = 0.5
    batch_size: int = 16


class PromptSession:
    """Task spec of the current prompt and the progress tracker on it.

    Args:
        encoder: ``runtime.Encoder`` (``embed``, ``path``).
        config: Settings.

    Raises:
        CalibrationError: ``calibration_file`` is unreadable, invalid or from another encoder.

    Attributes:
        spec: The current TaskSpec, or None before the first ``load``.
        report: How it was obtained (cache hit, seconds).
        tracker: The progress tracker, or None when progress is not tracked.
        calibration_note: Where the thresholds came from, or why progress is not tracked.
    """

    def __init__(self, encoder, config: SessionConfig = SessionConfig()) -> None:
        self.encoder, self.config = encoder, config
        self.encoder_digest = encoder_digest(encoder)
        self.calibration_file: ProgressCalibration | None = None
        if config.calibration_file:
            loaded = ProgressCalibration.load(config.calibration_file)
            if loaded.encoder_digest and loaded.encoder_digest != self.encoder_digest:
                raise CalibrationError("was calibrated with another encoder: calibrate again "
                                       "with this one", file=config.calibration_file,
                                       field="encoder_digest")
            self.calibration_file = loaded
        self.spec: TaskSpec | None = None
        self.report: BuildReport | None = None
        self.tracker: ProgressTracker | None = None
        self.calibration_note = ""
        self.source = ""
        self._lock = threading.Lock()

    def _thresholds(self, spec: TaskSpec) -> tuple[ProgressCalibration | None, str]:
        file = self.calibration_file
        if file is not None and file.spec_digest in ("", spec.source_digest) \
                and len(file.thresholds) == spec.subgoal_count:
            return file, f"calibrated on {file.source} ({self.config.calibration_file})"
        why = "no calibration file" if file is None else \
            "the calibration file is for another task"
        if spec.embeddings.shape[0] < 2:
            return None, f"progress not tracked: {why}, and a goal image has no trajectory"
        try:
            demo = calibrate(spec.subgoal_embeddings, [demo_rollout(spec)],
                             hold_s=self.config.hold_s, smoothing_s=self.config.smoothing_s,
                             start_embedding=spec.start_embedding, source="the demo itself",
                             encoder_digest=spec.encoder_digest,
                             spec_digest=spec.source_digest)
        except CalibrationError as exc:
            return None, f"progress not tracked: {why}, and the demo gives none ({exc})"
        return demo, f"calibrated on the demo itself ({why}; optimistic for robot views)"

    def load(self, source: str | Path) -> TaskSpec:
        """Build or load the spec of ``source`` and make it the current prompt.

        Raises:
            GoalError / PromptError: The demo is unusable; the current prompt stays.
        """
        with self._lock:
            spec, report = build_task_spec(
                source, self.encoder, sampling=self.config.sampling,
                keyframes=self.config.keyframes, cache_dir=self.config.cache_dir,
                encoder_hash=self.encoder_digest, batch_size=self.config.batch_size)
            calibration, note = self._thresholds(spec)
            self.tracker = None if calibration is None else \
                ProgressTracker(spec.subgoal_embeddings, calibration, spec.start_embedding)
            self.spec, self.report, self.calibration_note = spec, report, note
            self.source = str(source)
            return spec

    def observe(self, rgb: np.ndarray, time_s: float) -> ProgressState | None:
        """Embed one RGB uint8 (H, W, 3) frame captured at ``time_s`` and update progress.

        Returns:
            The tracker's state, or None when there is no prompt or progress is not tracked.
        """
        with self._lock:
            if self.tracker is None:
                return None
            embedding = np.asarray(self.encoder.embed([rgb]), np.float32)[0]
            return self.tracker.update(embedding, time_s)

    def reset_progress(self) -> None:
        """Back to the first subgoal (a new attempt at the same task)."""
        with self._lock:
            if self.tracker is not None:
                self.tracker.reset()
