"""A kinematic stand-in for a position-controlled robot.

Joints follow the commanded position through a first-order lag (the tracking of a stiff joint
position controller), within the URDF limits, as ros2_control's position interface would. It has
no dynamics, no contacts and no cameras: it closes the loop for the IK and safety stages where the
MuJoCo scene is not needed.
"""

from __future__ import annotations

import numpy as np


class KinematicRobot:
    """Joints that track position commands with a first-order lag.

    Args:
        q_initial: Initial joint positions [rad or m], shape (n,).
        position_min: Hard lower limits [rad or m] (the URDF's), shape (n,).
        position_max: Hard upper limits [rad or m], shape (n,).
        time_constant_s: Tracking time constant [s]; 0 tracks exactly.
        noise_std: Standard deviation of measurement noise [rad or m].
        seed: Seed of the measurement noise.
    """

    def __init__(
        self,
        q_initial: np.ndarray,
        position_min: np.ndarray,
        position_max: np.ndarray,
        *,
        time_constant_s: float = 0.02,
        noise_std: float = 0.0,
        seed: int = 0,
    ) -> None:
        if time_constant_s < 0.0 or not np.isfinite(time_constant_s):
            raise ValueError(f"time_constant_s must be >= 0 and finite, got {time_constant_s}")
        self._q = np.array(q_initial, dtype=np.float64)
        self._lo = np.asarray(position_min, dtype=np.float64)
        self._hi = np.asarray(position_max, dtype=np.float64)
        self._tau = float(time_constant_s)
        self._noise = float(noise_std)
        self._rng = np.random.default_rng(seed)

    @property
    def q(self) -> np.ndarray:
        """True joint positions [rad or m], shape (n,) (a copy)."""
        return self._q.copy()

    def measure(self) -> np.ndarray:
        """Measured joint positions [rad or m]: the true ones plus measurement noise."""
        if self._noise == 0.0:
            return self._q.copy()
        return self._q + self._rng.normal(0.0, self._noise, self._q.shape)

    def command(self, q_command: np.ndarray, dt_s: float) -> np.ndarray:
        """Advance by ``dt_s`` [s] toward ``q_command`` and return the new true positions."""
        alpha = 1.0 if self._tau == 0.0 else 1.0 - np.exp(-dt_s / self._tau)
        self._q += alpha * (np.asarray(q_command, dtype=np.float64) - self._q)
        np.clip(self._q, self._lo, self._hi, out=self._q)
        return self._q.copy()
