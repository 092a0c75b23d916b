"""When the policy node runs inference: on the arrival of fresh frames, at most at its rate.

A free-running inference timer samples frames that have waited, on average, half a camera
period (17 ms at 30 Hz) before inference starts. ``FrameTrigger`` starts inference when the
last frame of a complete set arrives: every camera has a frame newer than those the previous
inference used, all captured within ``slack`` of a period of each other (so a frame pair is not
completed with the other camera's frame from a pair that was skipped), and the inference is
due: at ``rate_hz``, starting up to ``slack`` of a period early so that a frame arriving with a
little jitter is not skipped for a whole camera period. Its schedule advances by whole periods,
so frames faster than the rate give exactly the rate (30 Hz frames, 15 Hz inference: every
second frame pair).

The node's inference timer stays for when complete sets stop coming (a camera stalls, or
cameras so far out of phase that their frames never fall within the slack): ``on_timer`` asks
for a step once an inference is overdue by more than the slack; that step runs on whatever
frames there are, or holds and records why, as before. Thread-safe.
"""

from __future__ import annotations

import math
import threading
from typing import Sequence

__all__ = ["FrameTrigger"]


class FrameTrigger:
    """Frame-driven inference schedule.

    Args:
        cameras: The cameras whose frames an inference needs.
        rate_hz: Highest inference rate [Hz] (> 0).
        slack: Fraction of a period an inference may start early, and by which it counts as
            overdue for the timer (0 <= slack < 0.5).

    Attributes:
        period_s: ``1 / rate_hz`` [s].
        frame_starts, timer_starts: Inferences started by frames and by the timer.
    """

    def __init__(self, cameras: Sequence[str], rate_hz: float, slack: float = 0.25) -> None:
        if not cameras or not rate_hz > 0.0 or not 0.0 <= slack < 0.5:
            raise ValueError(f"need cameras, rate_hz > 0 and 0 <= slack < 0.5, got "
                             f"{list(cameras)}, {rate_hz}, {slack}")
        self.cameras = tuple(cameras)
        self.period_s = 1.0 / float(rate_hz)
        self._slack_s = slack * self.period_s
        self._latest = dict.fromkeys(self.cameras, -math.inf)
        self._used = dict.fromkeys(self.cameras, -math.inf)
        self._due_s = -math.inf
        self._last_start_s = -math.inf
        self._pending_since_s: float | None = None
        self._lock = threading.Lock()
        self.frame_starts = self.timer_starts = 0

    def _complete(self) -> bool:
        stamps = [self._latest[name] for name in self.cameras]
        return all(s > self._used[name] for s, name in zip(stamps, self.cameras)) and \
            max(stamps) - min(stamps) <= self._slack_s

    def _claim(self, now_s: float) -> bool:
        """Mark a start as requested unless one is already pending (for up to a period)."""
        if self._pending_since_s is not None and now_s - self._pending_since_s < self.period_s:
            return False
        self._pending_since_s = now_s
        return True

    def on_frame(self, camera: str, stamp_s: float, now_s: float) -> bool:
        """A frame of ``camera`` captured at ``stamp_s`` arrived at ``now_s`` [s]; True: start
        an inference now (then call ``started``). Unknown cameras are ignored."""
        with self._lock:
            if camera not in self._latest:
                return False
            self._latest[camera] = max(self._latest[camera], float(stamp_s))
            if self._complete() and now_s >= self._due_s - self._slack_s and \
                    self._claim(now_s):
                self.frame_starts += 1
                return True
            return False

    def on_timer(self, now_s: float) -> bool:
        """The inference timer ticked at ``now_s`` [s]; True: run a step now (then call
        ``started``): no complete set of frames started one by the due time plus the slack."""
        with self._lock:
            if now_s < self._due_s + self._slack_s or \
                    now_s - self._last_start_s < self.period_s - self._slack_s:
                return False
            if not self._claim(now_s):
                return False
            self.timer_starts += 1
            return True

    def started(self, now_s: float) -> None:
        """An inference step starts at ``now_s`` [s]: its frames count as used and the next
        one is due a period after this one's due time (re-anchored when far behind)."""
        with self._lock:
            self._used.update(self._latest)
            self._pending_since_s = None
            self._last_start_s = now_s
            if now_s - self._due_s < self.period_s:
                self._due_s += self.period_s
            else:
                self._due_s = now_s + self.period_s
