"""The safety filter stage: validate, then clamp, the policy's action chunks; gate them.

A chunk is H steps, each due at ``stamp + times_s[k]`` (``stamp`` = capture time of the
observation it was computed from):

- Cartesian: shape (H, F, 7), rows ``[x y z qx qy qz qw]`` per end-effector frame in the base
  frame. Limited from the measured tool pose (forward kinematics of the latest valid joint
  state): workspace box and tool speed, each step at its own dt.
- Joint: shape (H, n). Each step is clamped into the position limits, then the move from the
  previous step is scaled (direction kept) to the speed limits at that step's dt, starting
  from the measured joint positions.

The first step's dt is the time left until it is due (``stamp + times_s[0] - now``) but never
less than one control period: an overdue step is at most a one-period move from the measured
state. The authority ramp (0 -> 1 after activation and e-stop reset) scales every dt, i.e. the
allowed speed, by its value at receipt.

Validation (design section 5.1, 5.3) comes first and rejects the whole chunk: names (mapped by
name, never index), shape, finiteness, quaternion norms, ``times_s`` (finite, >= 0, strictly
increasing), and the stamp: more than ``future_tolerance_s`` ahead of the receipt time, not
newer than the last accepted stamp, or older than ``max_action_age_s``. Only a forwarded chunk
feeds the watchdog. Stamps are judged on the stamps' clock (``now_s``); the watchdog, the
authority ramp and the joint state's age on the injected monotonic clock. A stamped joint state
(stamp not zero) is used only when its stamp is newer than the previous one, not from the future
and not older than ``max_state_age_s`` at receipt: a stalled driver repeating its last message,
or a delayed one, does not count as a measurement.

One source per activation (``core.safety.source_binding``): the node reports the publishers of
the action topic (``note_sources``); a publisher that appears after the first accepted chunk
holds (``HOLD_REQUESTED``) until the next activation.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time
from typing import Callable, Collection, Sequence

import numpy as np
import pinocchio as pin

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.profile_sections import MAX_TIMEOUT_S
from hv2r_ros.core.safety import (
    FUTURE_TOLERANCE_S,
    AuthorityRamp,
    CommandWatchdog,
    EStopLatch,
    check_poses,
    check_stamp,
    limit_pose_step,
    map_by_name,
)
from hv2r_ros.core.safety.source_binding import SourceBinding
from hv2r_ros.core.stats import StageStats, StageSummary
from hv2r_ros.core.status import Status

__all__ = ["ACTION_SPACES", "ACTIVE", "ActionFilter", "ActionFilterConfig", "state_message"]

ACTION_SPACES = ("cartesian", "joint")
#: The state message that lets the command stage follow ``hv2r/action_safe``.
ACTIVE = "ACTIVE"
_CARTESIAN_ORDER = (Status.OK, Status.CLAMPED_WORKSPACE, Status.SCALED_TOOL_SPEED)
_JOINT_ORDER = (Status.OK, Status.CLAMPED_POSITION, Status.SCALED_VELOCITY)


def state_message(status: Status, text: str) -> str:
    """``ACTIVE`` for OK, else ``HOLD <STATUS_NAME>: <text>`` (the ``hv2r/safety/state`` data)."""
    return ACTIVE if status is Status.OK else f"HOLD {status.name}: {text}"


def _check_duration(field: str, value: float, *, allow_zero: bool = False,
                    maximum: float = math.inf) -> float:
    number = float(value)
    low_ok = number >= 0.0 if allow_zero else number > 0.0
    if not (math.isfinite(number) and low_ok and number <= maximum):
        low = "[0" if allow_zero else "(0"
        raise ConfigError(f"must be in {low}, {maximum:g}] s", field=field, value=value)
    return number


@dataclasses.dataclass(frozen=True)
class ActionFilterConfig:
    """Settings of the safety filter stage (the node's parameters).

    Attributes:
        action_space: ``cartesian`` or ``joint`` (``ACTION_SPACES``).
        command_timeout_s: Watchdog [s], (0, 1]; None takes the profile's.
        max_action_age_s: Oldest chunk at receipt (now - stamp) [s], > 0.
        max_state_age_s: Oldest usable joint state [s], > 0.
        authority_ramp_s: Authority ramp after activation and reset [s], >= 0.
        future_tolerance_s: Accepted stamp lead over the receipt time [s], >= 0.

    Raises:
        ConfigError: A value out of range (names the field) or an unknown action space.
    """

    action_space: str = "cartesian"
    command_timeout_s: float | None = None
    max_action_age_s: float = 0.2
    max_state_age_s: float = 0.1
    authority_ramp_s: float = 1.0
    future_tolerance_s: float = FUTURE_TOLERANCE_S

    def __post_init__(self) -> None:
        if self.action_space not in ACTION_SPACES:
            raise ConfigError("unknown action space", field="action_space",
                              value=self.action_space, choices=ACTION_SPACES)
        if self.command_timeout_s is not None:
            _check_duration("command_timeout_s", self.command_timeout_s, maximum=MAX_TIMEOUT_S)
        _check_duration("max_action_age_s", self.max_action_age_s, maximum=MAX_TIMEOUT_S)
        _check_duration("max_state_age_s", self.max_state_age_s, maximum=MAX_TIMEOUT_S)
        _check_duration("authority_ramp_s", self.authority_ramp_s, allow_zero=True)
        _check_duration("future_tolerance_s", self.future_tolerance_s, allow_zero=True,
                        maximum=0.1)


class ActionFilter:
    """Validates and limits action chunks of one robot profile; decides the stage's state.

    Args:
        profile: A loaded ``RobotProfile``.
        config: The stage's settings.
        clock: Monotonic clock [s] for the watchdog, the authority ramp and the state age.
    """

    def __init__(self, profile, config: ActionFilterConfig = ActionFilterConfig(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.profile = profile
        self.config = config
        self.cartesian = config.action_space == "cartesian"
        self.names: tuple[str, ...] = (profile.end_effector_frames if self.cartesian
                                       else profile.joint_names)
        timeout = config.command_timeout_s or profile.command_timeout_s
        self.watchdog = CommandWatchdog(timeout, clock)
        self.ramp = AuthorityRamp(config.authority_ramp_s, clock)
        self.estop = EStopLatch()
        self.stats = StageStats()
        self._clock = clock
        self._active = False
        self._previous_stamp_s: float | None = None
        self._rejected: Status | None = None
        self._q: np.ndarray | None = None
        self._q_time_s = -math.inf
        self._q_problem = "no valid joint_states yet"
        self._q_stamp_s: float | None = None
        #: Joint states not used, by reason (``Status`` name): stale, future, not newer.
        self.state_rejections: collections.Counter[str] = collections.Counter()
        self.sources = SourceBinding()
        if self.cartesian:
            self._model = profile.kinematic_model()
            self._frame_ids = [self._model.frame_id(f) for f in self.names]

    @property
    def measured_positions(self) -> np.ndarray | None:
        """The latest valid joint positions [rad or m], profile order, or None."""
        return None if self._q is None else self._q.copy()

    @property
    def authority(self) -> float:
        """The authority ramp's value now, in [0, 1]: the factor on every allowed speed."""
        return self.ramp.value()

    def summary(self) -> StageSummary:
        """Chunk statistics (rate, latency, holds by reason) as of now."""
        return self.stats.summary(self._clock())

    def activate(self) -> None:
        """Start following chunks: re-seed (watchdog, stamps), start the authority ramp, and
        forget the bound action source (the next accepted chunk binds it anew)."""
        self._active = True
        self.sources.reset()
        self._reseed()

    def deactivate(self) -> None:
        """Stop forwarding; the state becomes HOLD_NOT_STARTED."""
        self._active = False
        self.ramp.deactivate()
        self.watchdog.reset()

    def _reseed(self) -> None:
        # Chunks limit from the measured state anyway; what must not survive a start, resume or
        # reset is an old chunk's authority: the watchdog, the last stamp and the ramp.
        self.watchdog.reset()
        self.ramp.activate()
        self._previous_stamp_s = None
        self._rejected = None

    def on_joint_state(self, positions: np.ndarray | None, status: Status = Status.OK,
                       stamp_s: float = 0.0, now_s: float = 0.0) -> Status:
        """Record a measured joint state (profile order), as ``JointStateReader.read`` gives it.

        A message that does not name the profile's joints (``HOLD_WRONG_NAMES``: a gripper or
        another robot's joints on the same topic) is ignored; any other invalid one drops the
        measurement until the next valid one. A stamped one (``stamp_s`` > 0, judged against
        the receipt time ``now_s`` on the stamps' clock) stamped in the future, not newer than
        the previous one or older than ``max_state_age_s`` is not used (module docstring).

        Returns:
            ``OK`` when used, else why not.
        """
        if status is Status.HOLD_WRONG_NAMES:
            return status
        if positions is None or status is not Status.OK or not np.isfinite(positions).all():
            self._q, self._q_problem = None, f"invalid joint_states ({status.name})"
            return status if status is not Status.OK else Status.HOLD_INVALID_MEASUREMENT
        if stamp_s > 0.0:
            status = check_stamp(float(stamp_s), float(now_s), self._q_stamp_s,
                                 self.config.max_state_age_s, self.config.future_tolerance_s)
            if status is not Status.OK:
                self.state_rejections[status.name] += 1
                return status
            self._q_stamp_s = float(stamp_s)
        self._q = np.array(positions, dtype=np.float64)
        self._q_time_s = self._clock()
        return Status.OK

    def note_sources(self, sources: Collection[str]) -> bool:
        """The publishers of the action topic now (any ids, e.g. endpoint GIDs).

        Those present at the first chunk accepted after activation are bound; a publisher not
        bound latches ``HOLD_REQUESTED`` until the next :meth:`activate`. Returns whether the
        source latch is set.
        """
        return self.sources.note(sources, self._active)

    def on_estop(self, asserted: bool) -> bool:
        """Follow the e-stop input; returns whether the e-stop is latched."""
        return self.estop.update(asserted)

    def reset_estop(self) -> tuple[bool, str]:
        """The operator's reset: ``(released, message)``; refused while the input is asserted."""
        if not self.estop.latched:
            return True, "e-stop was not latched"
        if not self.estop.reset(operator_confirmed=True):
            return False, "refused: the e-stop input is still asserted; release it first"
        self._reseed()
        return True, "e-stop released; motion resumes with the next valid chunk"

    def tool_poses(self, q: np.ndarray) -> np.ndarray:
        """End-effector poses (F, 7) in the base frame at joint positions ``q`` (n,)."""
        poses = np.empty((len(self._frame_ids), 7))
        for i, frame_id in enumerate(self._frame_ids):
            poses[i] = pin.SE3ToXYZQUAT(self._model.frame_pose(q, frame_id))
        return poses

    def _measurement(self) -> np.ndarray | None:
        if self._q is None or self._clock() - self._q_time_s > self.config.max_state_age_s:
            return None
        return self._q

    def reject(self, status: Status, stamp_s: float, now_s: float, *,
               invalid: bool = True) -> tuple[None, Status]:
        """Record a chunk that is not forwarded (also one a message reader already rejected).

        Args:
            invalid: The chunk itself was invalid: the state holds with ``status`` until the
                next valid chunk. False when the stage, not the chunk, was not ready.
        """
        latency = now_s - stamp_s if math.isfinite(now_s - stamp_s) else None
        self.stats.record(self._clock(), latency, status)
        if invalid and self._active:
            self._rejected = status
        return None, status

    def on_chunk(self, names: Sequence[str], chunk: object, times_s: object, stamp_s: float,
                 now_s: float) -> tuple[np.ndarray | None, Status]:
        """Validate and limit one chunk.

        Args:
            names: Frame (Cartesian) or joint names as sent, any order.
            chunk: Shape (H, F, 7) or (H, n), columns in the order of ``names``.
            times_s: Offset of each step from ``stamp_s`` [s], shape (H,).
            stamp_s: Capture time of the observation [s] (the message stamp).
            now_s: Receipt time on the stamps' clock [s].

        Returns:
            ``(limited chunk in profile order, status)`` with status OK, clamped or scaled; or
            ``(None, HOLD_*)``: not forwarded, and the watchdog not fed.
        """
        if not self._active:
            return self.reject(Status.HOLD_NOT_STARTED, stamp_s, now_s, invalid=False)
        values, times, status = self._validate(names, chunk, times_s, stamp_s, now_s)
        if values is None:
            return self.reject(status, stamp_s, now_s)
        if self.estop.latched:
            return self.reject(Status.HOLD_ESTOP, stamp_s, now_s, invalid=False)
        if self.sources.latch:
            return self.reject(Status.HOLD_REQUESTED, stamp_s, now_s, invalid=False)
        q = self._measurement()
        if q is None:
            return self.reject(Status.HOLD_INVALID_MEASUREMENT, stamp_s, now_s, invalid=False)
        dts = np.diff(times, prepend=times[0])
        dts[0] = max(self.profile.control_period_s, stamp_s + times[0] - now_s)
        dts *= self.ramp.value()
        if self.cartesian:
            out, status = self._limit_cartesian(self.tool_poses(q), values, dts)
        else:
            out, status = self._limit_joint(q, values, dts)
        self._previous_stamp_s = float(stamp_s)
        self._rejected = None
        self.sources.bind()
        self.watchdog.feed()
        self.stats.record(self._clock(), now_s - stamp_s, status)
        return out, status

    def _validate(self, names, chunk, times_s, stamp_s, now_s):
        try:
            array = np.asarray(chunk, dtype=np.float64)
            times = np.asarray(times_s, dtype=np.float64)
        except (TypeError, ValueError):
            return None, None, Status.HOLD_WRONG_LENGTH
        row = (len(self.names), 7) if self.cartesian else (len(self.names),)
        names = tuple(names)
        if len(names) != len(set(names)) or set(names) != set(self.names):
            return None, None, Status.HOLD_WRONG_NAMES
        if array.ndim != len(row) + 1 or array.shape[1:] != row or array.shape[0] == 0 \
                or times.shape != (array.shape[0],):
            return None, None, Status.HOLD_WRONG_LENGTH
        mapped, status = map_by_name(names, np.moveaxis(array, 1, 0), self.names)
        if mapped is None:
            return None, None, status
        values = np.ascontiguousarray(np.moveaxis(mapped, 0, 1))
        if not (np.isfinite(values).all() and np.isfinite(times).all()):
            return None, None, Status.HOLD_NON_FINITE
        if self.cartesian:
            values, status = check_poses(values, len(self.names))
            if values is None:
                return None, None, status
        if times[0] < 0.0 or (np.diff(times) <= 0.0).any():
            return None, None, Status.HOLD_NON_MONOTONIC
        status = check_stamp(float(stamp_s), float(now_s), self._previous_stamp_s,
                             self.config.max_action_age_s, self.config.future_tolerance_s)
        if status is not Status.OK:
            return None, None, status
        return values, times, Status.OK

    def _limit_cartesian(self, start: np.ndarray, chunk: np.ndarray, dts: np.ndarray
                         ) -> tuple[np.ndarray, Status]:
        out, worst, previous = np.empty_like(chunk), 0, start
        for k, dt in enumerate(dts.tolist()):
            previous, status = limit_pose_step(previous, chunk[k], self.profile.workspace, dt)
            out[k] = previous
            worst = max(worst, _CARTESIAN_ORDER.index(status))
        return out, _CARTESIAN_ORDER[worst]

    def _limit_joint(self, q: np.ndarray, chunk: np.ndarray, dts: np.ndarray
                     ) -> tuple[np.ndarray, Status]:
        limits = self.profile.limits
        target = np.clip(chunk, limits.position_min, limits.position_max)
        worst = 1 if (target != chunk).any() else 0
        out, previous = np.empty_like(chunk), q
        for k, dt in enumerate(dts.tolist()):
            delta = target[k] - previous
            allowed = limits.velocity_max * dt
            over = np.abs(delta) > allowed
            if over.any():  # one factor for every joint keeps the direction of motion
                delta = delta * float(np.min(allowed[over] / np.abs(delta[over])))
                worst = 2
            previous = out[k] = previous + delta
        return out, _JOINT_ORDER[worst]

    def state(self) -> tuple[Status, str]:
        """What the stage does now: ``(OK, "")`` while it forwards, else ``(HOLD_*, reason)``.

        In order: inactive, e-stop latched, a new action source since activation, watchdog
        expired (no valid chunk within the timeout, or none since activation), joint state
        missing or stale, last chunk rejected.
        Texts carry no changing numbers, so a state message changes only with the state.
        """
        if not self._active:
            return Status.HOLD_NOT_STARTED, "safety filter not active (lifecycle)"
        if self.estop.latched:
            return Status.HOLD_ESTOP, f"{self.estop.reason}; operator reset needed"
        if self.sources.latch:
            return Status.HOLD_REQUESTED, self.sources.latch
        if self.watchdog.expired():
            timeout_ms = self.watchdog.timeout_s * 1e3
            if math.isinf(self.watchdog.age_s()):
                return Status.HOLD_TIMEOUT, "no valid action chunk since activation"
            return Status.HOLD_TIMEOUT, f"no valid action chunk within {timeout_ms:g} ms"
        if self._q is None:
            return Status.HOLD_INVALID_MEASUREMENT, self._q_problem
        if self._measurement() is None:
            limit_ms = self.config.max_state_age_s * 1e3
            return Status.HOLD_INVALID_MEASUREMENT, f"joint_states older than {limit_ms:g} ms"
        if self._rejected is not None:
            return self._rejected, f"last action chunk rejected: {self._rejected.value}"
        return Status.OK, ""
