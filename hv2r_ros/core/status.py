"""Status codes returned by every safety and IK step.

Each step returns ``(result, Status)``. The code says what the step did: passed the command
through, scaled or clamped it, or held the robot and why. ``Status.is_hold`` tells the caller
whether the robot is being held.
"""

from __future__ import annotations

import enum


class Status(enum.Enum):
    """What a safety or IK step did with its input."""

    OK = "ok"
    SCALED_VELOCITY = "scaled: joint velocity limit"
    SCALED_ACCELERATION = "scaled: joint acceleration limit"
    CLAMPED_POSITION = "clamped: joint position limit"
    CLAMPED_WORKSPACE = "clamped: workspace box"
    SCALED_TOOL_SPEED = "scaled: tool speed limit"
    SCALED_SINGULARITY = "scaled: near singularity"
    BRAKING = "braking: decelerating within limits"

    HOLD_NOT_STARTED = "hold: not seeded from measured state"
    HOLD_NON_FINITE = "hold: non-finite value in command"
    HOLD_WRONG_LENGTH = "hold: wrong command length"
    HOLD_WRONG_NAMES = "hold: wrong or unknown joint/frame names"
    HOLD_STALE = "hold: command older than the timeout"
    HOLD_FUTURE_STAMP = "hold: command stamped in the future"
    HOLD_NON_MONOTONIC = "hold: command stamp not newer than the previous one"
    HOLD_INVALID_MEASUREMENT = "hold: measured state invalid"
    HOLD_INVALID_ROTATION = "hold: rotation is not a unit quaternion"
    HOLD_SINGULAR = "hold: at singularity"
    HOLD_IK_FAILED = "hold: IK found no solution"
    HOLD_ESTOP = "hold: e-stop latched"
    HOLD_TIMEOUT = "hold: no valid command within the timeout"
    HOLD_REQUESTED = "hold: requested"

    @property
    def is_hold(self) -> bool:
        """True when the step held the robot instead of following the command."""
        return self.name.startswith("HOLD_")

    @property
    def is_modified(self) -> bool:
        """True when the command was changed (scaled, clamped, braking or held)."""
        return self is not Status.OK
