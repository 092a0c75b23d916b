"""The ActionFilter test rig: a fake clock and an activated filter with a measured state.

Shared by test_action_filter.py (validation, clamping) and test_action_filter_state.py
(measured state, watchdog, e-stop, configuration); imported as ``from action_filter_rig import``.
"""

import math

import numpy as np

from hv2r_ros.core.action_filter import ActionFilter, ActionFilterConfig
from fake_clock import FakeClock


class Rig:
    """An activated filter with a measured state; ``send`` stamps chunks ``age_s`` old."""

    def __init__(self, profile, space="cartesian", **config):
        config.setdefault("authority_ramp_s", 0.0)
        self.profile, self.clock = profile, FakeClock(100.0)
        self.filter = ActionFilter(profile, ActionFilterConfig(action_space=space, **config),
                                   clock=self.clock)
        self.filter.activate()
        self.q = profile.home.copy()
        self.filter.on_joint_state(self.q)
        self.fed_at = None

    def poses(self):
        return self.filter.tool_poses(self.q)

    def step(self, chunk_steps=5):
        """A valid chunk: the measured tool pose (or joints), held for ``chunk_steps``."""
        start = self.poses() if self.filter.cartesian else self.q
        return np.repeat(start[None], chunk_steps, axis=0)

    def send(self, chunk, names=None, times=None, age_s=0.01, stamp_s=None):
        """``on_chunk``; without ``stamp_s`` the clock first moves 1 ms (stamps must grow)."""
        if stamp_s is None:
            self.clock.now += 0.001  # the joint state ages with it
            stamp_s = self.clock.now - age_s
        names = self.filter.names if names is None else names
        times = 0.1 * np.arange(len(chunk)) if times is None else times
        out = self.filter.on_chunk(names, chunk, times, stamp_s, self.clock.now)
        if out[0] is not None:
            self.fed_at = self.clock.now
        return out

    def watchdog_unfed(self):
        """True when the watchdog was last fed by the last forwarded chunk (or never)."""
        age = self.filter.watchdog.age_s()
        return math.isinf(age) if self.fed_at is None else age == self.clock.now - self.fed_at

    def advance(self, dt_s):
        self.clock.now += dt_s
        self.filter.on_joint_state(self.q)
