"""The safety core (design.md §5): validate, then clamp; HOLD on anything odd.

- :mod:`~hv2r_ros.core.safety.validate`: names, lengths, finiteness and stamps of a command.
- :mod:`~hv2r_ros.core.safety.joint_guard`: the final joint-level guard (position, velocity,
  acceleration, braking distance) in discrete time.
- :mod:`~hv2r_ros.core.safety.cartesian`: workspace box and tool speed on end-effector poses.
- :mod:`~hv2r_ros.core.safety.watchdog`: command watchdog, authority ramp, e-stop latch.
- :mod:`~hv2r_ros.core.safety.fuzz`, :mod:`~hv2r_ros.core.safety.fuzz_cartesian`: adversarial
  streams and violation counters (property tests, ``hv2r bench fuzz``).
"""

from hv2r_ros.core.safety.cartesian import (
    CartesianFilter,
    check_poses,
    filter_pose_chunk,
    limit_pose_step,
)
from hv2r_ros.core.safety.joint_guard import JointGuard
from hv2r_ros.core.safety.validate import (
    FUTURE_TOLERANCE_S,
    CommandValidator,
    check_finite,
    check_stamp,
    map_by_name,
)
from hv2r_ros.core.safety.watchdog import AuthorityRamp, CommandWatchdog, EStopLatch

__all__ = [
    "FUTURE_TOLERANCE_S",
    "AuthorityRamp",
    "CartesianFilter",
    "CommandValidator",
    "CommandWatchdog",
    "EStopLatch",
    "JointGuard",
    "check_finite",
    "check_poses",
    "check_stamp",
    "filter_pose_chunk",
    "limit_pose_step",
    "map_by_name",
]
