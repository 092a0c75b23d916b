"""QoS profiles for every hv2r topic (design.md section 1).

| use | reliability | durability | history |
| --- | --- | --- | --- |
| cameras, ``joint_states`` (``sensor_qos``) | best effort | volatile | keep last 1-5 |
| controller commands (``command_qos``) | reliable | volatile | keep last 1 |
| goal embedding, e-stop (``latched_qos``) | reliable | transient local | keep last 1 |
| ``hv2r/action``, ``hv2r/action_safe`` (``action_qos``) | reliable | volatile | keep last 5 |
| ``diagnostics`` (``diagnostics_qos``) | reliable | volatile | keep last 10 |

A best-effort subscription matches both reliable and best-effort publishers, so sensor topics
from drivers that publish reliable still arrive. A reliable subscription does not match a
best-effort publisher: ros2_control controllers subscribe reliable, hence ``command_qos``.
A latched topic is only latched when the subscriber asks for transient local too: subscribe to
goal and e-stop with ``latched_qos`` as well.
"""

from __future__ import annotations

from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
)

from hv2r_ros.core.errors import ConfigError

__all__ = [
    "SENSOR_DEPTH_MAX", "action_qos", "command_qos", "diagnostics_qos", "latched_qos",
    "sensor_qos",
]

#: Deepest sensor queue: older camera frames are worth nothing to a closed loop.
SENSOR_DEPTH_MAX = 5


def _profile(depth: int, reliable: bool, latched: bool = False) -> QoSProfile:
    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=(QoSReliabilityPolicy.RELIABLE if reliable
                     else QoSReliabilityPolicy.BEST_EFFORT),
        durability=(QoSDurabilityPolicy.TRANSIENT_LOCAL if latched
                    else QoSDurabilityPolicy.VOLATILE),
    )


def sensor_qos(depth: int = 1, *, field: str = "sensor_qos_depth") -> QoSProfile:
    """Best effort, volatile, keep last ``depth``: cameras and joint states.

    Args:
        depth: Queue depth, 1 to ``SENSOR_DEPTH_MAX``.
        field: Parameter name reported when ``depth`` is invalid.

    Raises:
        ConfigError: ``depth`` is not an integer in [1, 5].
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= SENSOR_DEPTH_MAX:
        raise ConfigError(f"sensor queue depth must be an integer in [1, {SENSOR_DEPTH_MAX}]",
                          field=field, value=depth)
    return _profile(depth, reliable=False)


def command_qos() -> QoSProfile:
    """Reliable, volatile, keep last 1: commands to ros2_control controllers."""
    return _profile(1, reliable=True)


def latched_qos() -> QoSProfile:
    """Reliable, transient local, keep last 1: goal embedding and e-stop (latched)."""
    return _profile(1, reliable=True, latched=True)


def action_qos(depth: int = 5) -> QoSProfile:
    """Reliable, volatile, keep last ``depth`` (default 5): action chunks between stages."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ConfigError("action queue depth must be a positive integer",
                          field="action_qos_depth", value=depth)
    return _profile(depth, reliable=True)


def diagnostics_qos() -> QoSProfile:
    """Reliable, volatile, keep last 10: ``diagnostics`` (as diagnostic_updater publishes)."""
    return _profile(10, reliable=True)
