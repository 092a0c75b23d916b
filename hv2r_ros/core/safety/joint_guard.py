"""The final joint-level guard: position, velocity and acceleration limits in discrete time.

Model (period ``T``): the guard outputs positions ``q_k``; velocity ``v_k = (q_k - q_{k-1}) / T``
and acceleration ``a_k = (v_k - v_{k-1}) / T``. Every output satisfies, per joint,
``q_min <= q_k <= q_max``, ``|v_k| <= v_max`` and ``|a_k| <= a_max``.

Braking constraint (why the admissible set is never empty). With ``b = a_max * T`` the fastest
stop from ``v > 0`` runs ``v - b, v - 2b, ...`` until it reaches 0, covering
``D(v) = T * sum_{j>=1} max(v - j b, 0)`` after the current step. The guard only picks ``v``
with ``q_{k-1} + v T + D(v) <= q_max`` (mirrored at ``q_min``). ``f(v) = v T + D(v)`` is
continuous, increasing and convex (slope ``T (m + 1)`` on ``[m b, (m + 1) b]``), so the
constraint is ``v <= V(q_max - q_{k-1})`` with the concave inverse

    V(d) = min_m  d / (T (m + 1)) + b m / 2,
    attained at  m = floor((sqrt(1 + 8 d / (b T)) - 1) / 2).

Invariance: if the previous step obeyed the constraint, full braking ``v' = max(v - b, 0)``
obeys it now, because ``v' T + D(v') = D(v) <= q_max - q_{k-1} - v T = q_max - q_k``; and
``v'`` is within the velocity and acceleration bounds. Starting from rest inside the limits
(``D(0) = 0``) the admissible interval is therefore never empty. Float round-off is absorbed by
a final clip of the velocity interval and of the position.

Direction: the wanted velocity ``(target - q) / T`` is first scaled uniformly (direction of
motion kept) to fit the speed limit and the speed from which each joint can still stop at the
target. The guard then moves from the previous velocity toward it by the largest uniform
fraction ``t`` in [0, 1] of the change that fits every joint's interval (acceleration, speed,
braking): the change keeps its direction and the velocity converges to the wanted one, where a
uniform scale of the wanted velocity alone would stall whenever its direction turns. If no
``t`` fits (e.g. the previous velocity must shed speed faster than a turn allows) it brakes along
the previous velocity, uniformly when possible; if the joints' intervals admit no common scale
(one joint must brake harder than another may), each joint takes its own velocity closest to
zero: limits win over direction.

Hold (invalid command, no target, :meth:`JointGuard.hold`, e-stop): brake to zero velocity
within the limits and stay there. The resting point is the hold target; it equals the last
measured position when the robot tracks its commands (design.md §5.2), and is reached without
reversing, which a jump back to a lagging measurement would require.

Jerk (``JointLimits.jerk_max``): consecutive accelerations differ by at most ``2 a`` per step,
so the guard uses ``a = min(acceleration_max, jerk_max * T / 2)`` (:attr:`acceleration_limit`)
and every bound above holds with it: ``|a_k - a_{k-1}| / T <= jerk_max`` follows. This is exact
and simple but conservative where ``jerk_max * T / 2 < acceleration_max`` (fast loops).
"""

from __future__ import annotations

import math

import numpy as np

from hv2r_ros.core.errors import LimitsError
from hv2r_ros.core.limits import JointLimits
from hv2r_ros.core.status import Status


class JointGuard:
    """Stateful joint-level limit guard (position, velocity, acceleration, braking).

    Args:
        limits: Joint limits in the profile's joint order.
        period_s: Control period [s], finite and > 0: the time between two :meth:`step` calls.

    Raises:
        LimitsError: ``period_s`` is not a positive finite number.
    """

    def __init__(self, limits: JointLimits, period_s: float) -> None:
        period = float(period_s)
        if not np.isfinite(period) or period <= 0.0:
            raise LimitsError("must be a positive finite period", field="control_period_s",
                              value=period_s)
        self.limits = limits
        self.period_s = period
        n = limits.size
        self._n = n
        self._qmin = limits.position_min
        self._qmax = limits.position_max
        self._vmax = limits.velocity_max
        accel = limits.acceleration_max
        if limits.jerk_max is not None:
            accel = np.minimum(accel, 0.5 * limits.jerk_max * period)
        #: Acceleration bound actually used [rad/s^2 or m/s^2], shape (n,): jerk-limited.
        self.acceleration_limit = accel
        self._b = accel * period  # largest velocity change per step
        # Constants of V(d) for the 3n distances evaluated each step (upper, lower, target).
        b3 = np.tile(self._b, 3)
        self._half_b3 = 0.5 * b3
        self._c8 = 8.0 / (b3 * period)
        self._inv_T = 1.0 / period
        self._neg_vmax = -self._vmax
        self._zeros = np.zeros(n)
        self._d = np.empty(3 * n)
        self._q: np.ndarray | None = None
        self._v = np.zeros(n)
        self._hold_requested = False
        self._target_prev: np.ndarray | None = None

    # ------------------------------------------------------------------ state
    @property
    def seeded(self) -> bool:
        """True once :meth:`reset` (or a first step with a valid measurement) seeded the guard."""
        return self._q is not None

    @property
    def position(self) -> np.ndarray | None:
        """Last commanded position [rad or m], shape (n,), or None before seeding."""
        return None if self._q is None else self._q.copy()

    @property
    def velocity(self) -> np.ndarray:
        """Velocity of the last command [rad/s or m/s], shape (n,)."""
        return self._v.copy()

    def hold(self) -> None:
        """Request a hold: brake to rest and stay until :meth:`reset` re-seeds (resume)."""
        self._hold_requested = True

    def reset(self, q_measured: np.ndarray) -> tuple[np.ndarray | None, Status]:
        """Re-seed from the measured state (start, resume, reset) and clear a hold request.

        The returned command is the measured position with zero velocity. A measurement
        outside the position limits (margin included) is clamped into them: the seed then
        differs from the measurement by the excess and the status is ``CLAMPED_POSITION``.

        Args:
            q_measured: Measured joint positions [rad or m], shape (n,), profile order.

        Returns:
            ``(q_cmd, status)``; ``(None, HOLD_INVALID_MEASUREMENT)`` when the measurement is
            not finite or has the wrong length: the reset is refused, a seeded guard keeps its
            state and brakes to rest (hold requested) until a reset succeeds.
        """
        q = np.asarray(q_measured, dtype=np.float64)
        if q.shape != (self._n,) or not _all_finite(q):
            self._hold_requested = True
            return None, Status.HOLD_INVALID_MEASUREMENT
        seed = np.clip(q, self._qmin, self._qmax)
        self._q = seed
        self._v = np.zeros(self._n)
        self._hold_requested = False
        self._target_prev = None
        status = Status.OK if np.array_equal(seed, q) else Status.CLAMPED_POSITION
        return seed.copy(), status

    # ------------------------------------------------------------------ step
    def step(
        self,
        target_q: np.ndarray | None,
        q_measured: np.ndarray | None,
        *,
        hold: Status | None = None,
        authority: float = 1.0,
    ) -> tuple[np.ndarray | None, Status]:
        """Compute the next joint command.

        Args:
            target_q: Validated target positions [rad or m], shape (n,), profile order, or
                None for "no valid command" (hold).
            q_measured: Measured positions [rad or m], shape (n,); only checked (a non-finite
                one holds) and used to seed an unseeded guard.
            hold: A hold reason decided by the caller (``HOLD_ESTOP``, ``HOLD_STALE``,
                ``HOLD_TIMEOUT``...); when given the guard brakes and returns it.
            authority: Factor in [0, 1] on the velocity limit (authority ramp).

        Returns:
            ``(q_cmd, status)`` with ``q_cmd`` of shape (n,). ``q_cmd`` is None only while the
            guard is unseeded and the measurement is invalid: publish nothing then.
        """
        measured_ok = q_measured is not None
        if measured_ok:
            qm = np.asarray(q_measured, dtype=np.float64)
            measured_ok = qm.shape == (self._n,) and _all_finite(qm)
        if self._q is None:
            if not measured_ok:
                return None, Status.HOLD_INVALID_MEASUREMENT
            seed, _ = self.reset(qm)
            return seed, Status.HOLD_NOT_STARTED

        reason = hold
        if reason is None and not measured_ok:
            reason = Status.HOLD_INVALID_MEASUREMENT
        if reason is None and (self._hold_requested or target_q is None):
            reason = Status.HOLD_REQUESTED
        if reason is None:
            target = np.asarray(target_q, dtype=np.float64)
            if target.shape != (self._n,):
                reason = Status.HOLD_WRONG_LENGTH
            elif not _all_finite(target):
                reason = Status.HOLD_NON_FINITE

        n, q, v_prev, b = self._n, self._q, self._v, self._b
        d = self._d
        np.subtract(self._qmax, q, out=d[:n])
        np.subtract(q, self._qmin, out=d[n:2 * n])
        if reason is None:
            target_c = np.minimum(np.maximum(target, self._qmin), self._qmax)
            error = target_c - q
            np.abs(error, out=d[2 * n:])
        else:
            d[2 * n:] = 0.0
        stop = self._stopping_speed(d)
        lo = np.maximum(np.maximum(self._neg_vmax, v_prev - b), -stop[n:2 * n])
        hi = np.minimum(np.minimum(self._vmax, v_prev + b), stop[:n])

        if reason is not None:
            v, status = self._brake(lo, hi), reason
            self._target_prev = None
        else:
            stop_err = stop[2 * n:]
            if self._target_prev is not None:
                stop_err = stop_err + self._target_speed(target_c, error)
            self._target_prev = target_c
            v, status = self._track(error, lo, hi, stop_err, float(authority))
            if status is Status.OK and target_c.tolist() != target.tolist():
                status = Status.CLAMPED_POSITION
        # Round-off can leave lo a few ulp above hi; hi then wins and the position clip below
        # keeps q inside the limits whatever happens.
        np.minimum(np.maximum(v, lo), hi, out=v)
        q_new = q + v * self.period_s
        np.minimum(np.maximum(q_new, self._qmin, out=q_new), self._qmax, out=q_new)
        self._v = (q_new - q) * self._inv_T
        self._q = q_new
        return q_new.copy(), status

    # ------------------------------------------------------------------ internals
    def _stopping_speed(self, d: np.ndarray) -> np.ndarray:
        """V(d) of the module docstring for the distances ``d >= 0``, shape (3n,)."""
        m = np.sqrt(d * self._c8 + 1.0)
        m -= 1.0
        m *= 0.5
        np.floor(m, out=m)
        # m is floor-exact up to round-off next to a breakpoint, where neighbouring pieces of V
        # agree to round-off: the error is a few ulp, absorbed by the final clips.
        v = d * self._inv_T
        v /= m + 1.0
        m *= self._half_b3
        v += m
        return v

    def _target_speed(self, target: np.ndarray, error: np.ndarray) -> np.ndarray:
        """Speed [rad/s or m/s] at which a streamed target moves away from the command.

        A target that moves on each period is a point of a trajectory, not a place to stop: the
        stop-at-target speed cap is raised by the target's own speed away from the command, so
        the guard follows a stream instead of braking toward every point of it. A jump faster
        than the speed limit is a new goal, not a stream, and adds nothing.
        """
        speeds = []
        inv_t = self._inv_T
        for t, t0, e, vmax in zip(target.tolist(), self._target_prev.tolist(), error.tolist(),
                                  self._vmax.tolist()):
            vt = (t - t0) * inv_t
            if abs(vt) > vmax:
                return self._zeros
            speeds.append(abs(vt) if vt * e > 0.0 else 0.0)
        return np.array(speeds)

    def _track(
        self, error: np.ndarray, lo: np.ndarray, hi: np.ndarray, stop_err: np.ndarray,
        authority: float,
    ) -> tuple[np.ndarray, Status]:
        # 1. The velocity wanted: reach the target this period, scaled uniformly (direction of
        #    motion kept) under the speed limit and the speed from which it can stop there.
        vd = error * self._inv_T
        vcap = self._vmax if authority >= 1.0 else self._vmax * max(0.0, authority)
        cap = np.minimum(vcap, stop_err)
        s_goal, by_speed = 1.0, False
        for c, x, vmax in zip(cap.tolist(), vd.tolist(), vcap.tolist()):
            if x != 0.0 and c < abs(x) * s_goal:
                s_goal = c / abs(x)
                by_speed = c >= vmax
        v_goal = vd * s_goal
        # 2. Move from the previous velocity toward it by the largest uniform fraction of the
        #    change that the acceleration, speed and braking bounds allow: the change keeps its
        #    direction, and the velocity converges to the wanted one instead of stalling when
        #    the wanted direction turns (a uniform scale of v_goal alone would).
        change = v_goal - self._v
        t_low, t_high = _scale_bounds(change.tolist(), (lo - self._v).tolist(),
                                      (hi - self._v).tolist())
        t = min(1.0, t_high)
        if t < max(0.0, t_low):
            return self._brake(lo, hi), Status.BRAKING
        v = self._v + change * t
        if t < 1.0:
            return v, Status.SCALED_ACCELERATION
        if s_goal < 1.0:
            return v, Status.SCALED_VELOCITY if by_speed else Status.SCALED_ACCELERATION
        return v, Status.OK

    def _brake(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Fastest uniform slow-down of the previous velocity; per joint if none fits."""
        v = self._v
        s_low, s_high = _scale_bounds(v.tolist(), lo.tolist(), hi.tolist())
        s_min = max(0.0, s_low)
        if s_min <= min(1.0, s_high):
            return v * s_min
        return np.minimum(np.maximum(self._zeros, lo), hi)


def _all_finite(x: np.ndarray) -> bool:
    # Plain floats: cheaper than np.isfinite(x).all() for a handful of joints, and no warnings.
    return all(map(math.isfinite, x.tolist()))


def _scale_bounds(
    direction: list[float], lo: list[float], hi: list[float]
) -> tuple[float, float]:
    """Range ``[s_low, s_high]`` of scales with ``lo <= s * direction <= hi`` on every joint.

    The range is empty (``s_low > s_high``) when some joint's interval is empty, or a joint
    with zero direction has 0 outside its interval. Plain floats: faster than numpy at n < 30.
    """
    s_low, s_high = -math.inf, math.inf
    for x, a, c in zip(direction, lo, hi):
        if a > c:
            return math.inf, -math.inf
        if x > 0.0:
            a, c = a / x, c / x
        elif x < 0.0:
            a, c = c / x, a / x
        elif a <= 0.0 <= c:
            continue
        else:
            return math.inf, -math.inf
        if a > s_low:
            s_low = a
        if c < s_high:
            s_high = c
    return s_low, s_high
