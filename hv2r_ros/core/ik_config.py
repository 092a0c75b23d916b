"""Validated configuration of the differential IK stage (:mod:`hv2r_ros.core.ik`).

Costs follow pink's conventions: a frame task's position cost is in [cost]/[m] and its
orientation cost in [cost]/[rad], so that with both at 1.0 a 1 mm error weighs as much as a
1 mrad error. The posture cost is in [cost]/[rad] and is kept small: it only settles the
redundant (null-space) directions and must not fight the end-effector targets.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import qpsolvers

from hv2r_ros.core.errors import ConfigError

# daqp is the fastest dense QP solver for these small problems; quadprog is the fallback that
# every platform has a wheel for.
PREFERRED_SOLVERS = ("daqp", "quadprog")


def default_solver() -> str:
    """Return the first available solver of :data:`PREFERRED_SOLVERS`, else any available one.

    Raises:
        ConfigError: no QP solver is installed at all.
    """
    available = list(qpsolvers.available_solvers)
    for name in PREFERRED_SOLVERS:
        if name in available:
            return name
    if available:
        return available[0]
    raise ConfigError(
        "no QP solver is installed; install one of them (pip install daqp)",
        field="solver",
        choices=PREFERRED_SOLVERS,
    )


@dataclasses.dataclass(frozen=True)
class IKConfig:
    """Settings of :class:`hv2r_ros.core.ik.DifferentialIK`.

    Attributes:
        frames: End-effector frame names, one frame task each (two hands for a humanoid).
        dt_s: Control period [s]: velocity limits allow ``velocity_max * dt_s`` per step.
        position_cost: Frame task position cost [cost/m], > 0.
        orientation_cost: Frame task orientation cost [cost/rad], >= 0 (0: position only).
        posture_cost: Cost pulling toward the posture reference [cost/rad], >= 0 (0: off).
        frame_task_gain: Frame task gain in (0, 1]; 1 is dead-beat (the whole error is
            corrected in one step when limits allow).
        lm_damping: Levenberg-Marquardt damping of the frame tasks [unitless], >= 0; it grows
            with the squared error, slowing the approach to far (unreachable) targets.
        damping: Tikhonov damping of the QP [cost^2/rad], > 0; keeps the QP strictly convex.
        config_limit_gain: Fraction in (0, 1] of the distance to a position limit that one step
            may cover (pink's ``ConfigurationLimit`` gain): limits are approached smoothly.
        singularity_slowdown_condition: Jacobian condition number where scaling starts (>= 1).
        singularity_halt_condition: Condition number where motion toward the singularity
            stops; > slowdown.
        characteristic_length_m: Length [m] dividing the linear rows of the Jacobian before the
            condition number is taken, making it unit-consistent. 1.0 reproduces MoveIt Servo
            (raw Jacobian, thresholds 17/30 tuned on arms of about 1 m reach); a 0.3 m arm such
            as the SO-100 needs about 0.3 for the same thresholds to mean the same thing.
        solver: QP solver name, one of ``qpsolvers.available_solvers``; ``None`` picks daqp,
            else quadprog (see :func:`default_solver`). Stored resolved.
        source: File the values came from, for error messages.
    """

    frames: tuple[str, ...]
    dt_s: float = 0.01
    position_cost: float = 1.0
    orientation_cost: float = 1.0
    posture_cost: float = 1e-3
    frame_task_gain: float = 1.0
    lm_damping: float = 0.0
    damping: float = 1e-6
    config_limit_gain: float = 0.5
    singularity_slowdown_condition: float = 17.0
    singularity_halt_condition: float = 30.0
    characteristic_length_m: float = 1.0
    solver: str | None = None
    source: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        frames = self.frames
        if isinstance(frames, str) or not all(isinstance(f, str) and f for f in frames):
            raise ConfigError(
                "frames must be a list of frame names", file=self.source, field="frames",
                value=frames,
            )
        frames = tuple(frames)
        if not frames or len(set(frames)) != len(frames):
            raise ConfigError(
                "frames must name at least one frame, each once", file=self.source,
                field="frames", value=frames,
            )
        object.__setattr__(self, "frames", frames)
        self._check("dt_s", lambda v: v > 0.0, "must be > 0")
        self._check("position_cost", lambda v: v > 0.0, "must be > 0")
        self._check("orientation_cost", lambda v: v >= 0.0, "must be >= 0")
        self._check("posture_cost", lambda v: v >= 0.0, "must be >= 0")
        self._check("frame_task_gain", lambda v: 0.0 < v <= 1.0, "must be in (0, 1]")
        self._check("lm_damping", lambda v: v >= 0.0, "must be >= 0")
        self._check("damping", lambda v: v > 0.0, "must be > 0")
        self._check("config_limit_gain", lambda v: 0.0 < v <= 1.0, "must be in (0, 1]")
        self._check("singularity_slowdown_condition", lambda v: v >= 1.0, "must be >= 1")
        self._check(
            "singularity_halt_condition",
            lambda v: v > self.singularity_slowdown_condition,
            f"must exceed singularity_slowdown_condition ({self.singularity_slowdown_condition})",
        )
        self._check("characteristic_length_m", lambda v: v > 0.0, "must be > 0")
        if self.solver is None:
            object.__setattr__(self, "solver", default_solver())
        elif self.solver not in qpsolvers.available_solvers:
            raise ConfigError(
                "QP solver is not installed", file=self.source, field="solver",
                value=self.solver, choices=qpsolvers.available_solvers,
            )

    def _check(self, field: str, rule: Any, message: str) -> None:
        value = getattr(self, field)
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or not rule(number):
            raise ConfigError(
                f"{message} and finite", file=self.source, field=field, value=value
            )
        object.__setattr__(self, field, number)

    @classmethod
    def from_profile(cls, profile: Any, **overrides: Any) -> "IKConfig":
        """Build the config of a robot profile (frames, period, singularity thresholds).

        Args:
            profile: A ``RobotProfile`` (``end_effector_frames``, ``control_period_s``,
                ``singularity_slowdown_condition``, ``singularity_halt_condition``, ``file``).
            **overrides: Any other :class:`IKConfig` field, e.g. ``posture_cost=0.0``.
        """
        values: dict[str, Any] = {
            "frames": tuple(profile.end_effector_frames),
            "dt_s": profile.control_period_s,
            "singularity_slowdown_condition": profile.singularity_slowdown_condition,
            "singularity_halt_condition": profile.singularity_halt_condition,
            "characteristic_length_m": profile.singularity_length_scale_m,
            "source": getattr(profile, "file", None),
        }
        values.update(overrides)
        return cls(**values)
