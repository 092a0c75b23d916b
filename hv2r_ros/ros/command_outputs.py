"""Where ``command_output`` sends the guarded joint commands, as the robot profile says.

- ``joint_trajectory_controller`` / ``forward_position_controller``: a ROS 2 topic of the
  ros2_control controller (:class:`Ros2ControlOutput`); the measured state comes from
  ``joint_states``.
- ``unitree_arm_sdk``: the G1's arm SDK channel through Unitree's Python SDK
  (:class:`UnitreeArmSdkOutput`, extra ``unitree``); the measured state comes from the robot's
  ``LowState``, and the blend weight ramps in before the output follows anything and out when
  it is released.

Both take the same guarded commands: what reaches the robot is the joint guard's output alone.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.unitree_arm import ArmSdkCommander, ArmSdkLayout, FrameCheck
from hv2r_ros.ros.joints import (
    check_controller_joint_order, float64_multi_array, joint_trajectory)
from hv2r_ros.ros.params import ParamSpec
from hv2r_ros.ros.qos import command_qos

__all__ = ["OUTPUT_TYPES", "UNITREE_PARAMS", "Ros2ControlOutput", "UnitreeArmSdkOutput",
           "make_output"]

_ROS2_CONTROL = {"joint_trajectory_controller": JointTrajectory,
                 "forward_position_controller": Float64MultiArray}
#: ``command_interface.type`` values this module can drive.
OUTPUT_TYPES = (*_ROS2_CONTROL, "unitree_arm_sdk")
_ONLY = " (unitree_arm_sdk output only)"
UNITREE_PARAMS = (
    ParamSpec("unitree_network_interface", "str", "", "Network interface on the robot's "
              "network, e.g. enp2s0; empty: Cyclone DDS chooses" + _ONLY, read_only=True),
    ParamSpec("unitree_domain_id", "int", 0, "DDS domain of the robot (0 on a G1)" + _ONLY,
              min=0, max=232, read_only=True),
    ParamSpec("unitree_blend_ramp_s", "float", 2.0, "Arm SDK blend weight ramp, 0 -> 1 before "
              "following and 1 -> 0 on release [s]" + _ONLY, min=0.1, max=30.0, read_only=True),
    ParamSpec("unitree_kp", "float[]", [], "Position gain per profile joint [N m/rad]; empty: "
              "60 each, as Unitree's arm SDK examples" + _ONLY, read_only=True),
    ParamSpec("unitree_kd", "float[]", [], "Velocity gain per profile joint [N m s/rad]; "
              "empty: 1.5 each, as Unitree's arm SDK examples" + _ONLY, read_only=True),
)


class Ros2ControlOutput:
    """A JointTrajectoryController (one point, one period ahead) or a forward controller."""

    measures_state = False  # the node reads joint_states
    engaged = True  # nothing to ramp in

    def __init__(self, node: Node, profile, period_s: float, params: dict[str, Any]) -> None:
        interface = profile.command_interface
        self.node, self.joint_names, self.period_s = node, profile.joint_names, period_s
        self.trajectory = interface.type == "joint_trajectory_controller"
        if not self.trajectory and params.get("controller_joints"):
            check_controller_joint_order(profile.joint_names, params["controller_joints"],
                                         parameter=f"{node.get_name()}.controller_joints")
        self.publisher = node.create_publisher(_ROS2_CONTROL[interface.type], interface.topic,
                                               command_qos())
        self._forward_msg = Float64MultiArray()

    def send(self, q_cmd: np.ndarray, dq_cmd: np.ndarray) -> bool:
        """Publish one command [rad or m], shape (n,), profile order."""
        if self.trajectory:
            now_s = self.node.get_clock().now().nanoseconds * 1e-9
            # The command is due one period after its stamp; a second point holds it one more
            # period, so a message delivered up to a period late has not "already ended" when it
            # arrives (a JointTrajectoryController drops such a trajectory) and the robot still
            # goes to exactly the guarded command.
            msg = joint_trajectory(self.joint_names, np.stack([q_cmd, q_cmd]),
                                   [self.period_s, 2.0 * self.period_s], now_s)
        else:
            msg = float64_multi_array(q_cmd, out=self._forward_msg)
        self.publisher.publish(msg)
        return True

    def poll(self) -> None:
        """Nothing to read: joint_states arrive by subscription."""

    def release(self, brake: Callable[[], tuple[np.ndarray | None, np.ndarray]]) -> None:
        """Nothing to let go: the controller holds its last setpoint."""

    def diagnostics(self) -> list[tuple[str, str]]:
        return []


class UnitreeArmSdkOutput:
    """The G1 arm SDK channel: blend ramp in, guarded frames with the SDK's CRC, ramp out.

    Args:
        node: For logging.
        profile: A G1 profile (joints on the arm SDK channel).
        period_s: Control period [s].
        params: The node's parameters (``UNITREE_PARAMS``).
        on_measured: Called by :meth:`poll` with the profile joints' measured positions [rad],
            shape (n,), when a valid ``LowState`` arrived since the last poll.

    Raises:
        UnitreeSdkError: The SDK (extra ``unitree``) is missing or DDS cannot start.
        ConfigError: Joints off the arm SDK channel, bad gains or ramp.
    """

    measures_state = True

    def __init__(self, node: Node, profile, period_s: float, params: dict[str, Any],
                 on_measured: Callable[[np.ndarray], None]) -> None:
        from hv2r_ros.io.unitree_sdk import ArmSdkChannel, UnitreeSdkError

        self.node, self.period_s, self.on_measured = node, period_s, on_measured
        self.layout = ArmSdkLayout(profile.joint_names, profile.limits, params["unitree_kp"],
                                   params["unitree_kd"], file=profile.file)
        self.commander = ArmSdkCommander(self.layout, params["unitree_blend_ramp_s"], period_s)
        self.refused: dict[str, int] = {}
        self._closed = False
        try:
            self.channel = ArmSdkChannel(
                domain_id=params["unitree_domain_id"],
                network_interface=params["unitree_network_interface"])
        except UnitreeSdkError as exc:
            raise UnitreeSdkError(exc.reason, file=profile.file, field=exc.field,
                                  value=exc.value, choices=exc.choices) from exc

    @property
    def engaged(self) -> bool:
        """The blend weight is 1: the output may follow the policy."""
        return self.commander.engaged

    def poll(self) -> None:
        """Read the newest ``LowState`` (once per period); a valid one goes to ``on_measured``."""
        motor_q = self.channel.poll_state()
        q = None if motor_q is None else self.layout.measured(motor_q)
        if q is not None:
            self.on_measured(q)

    def send(self, q_cmd: np.ndarray, dq_cmd: np.ndarray) -> bool:
        """One frame: joints at their slots, weight ramping in; False when refused."""
        frame, check = self.commander.command(q_cmd, dq_cmd, self.channel.motor_q)
        return self._send(frame, check)

    def _send(self, frame, check: FrameCheck) -> bool:
        if frame is None:
            self.refused[check.name] = self.refused.get(check.name, 0) + 1
            self.node.get_logger().error(f"arm SDK frame {check.value}",
                                         throttle_duration_sec=1.0)
            return False
        return self.channel.send(frame)

    def release(self, brake: Callable[[], tuple[np.ndarray | None, np.ndarray]]) -> None:
        """Lower the blend weight to 0, one frame per period, while ``brake`` stops the arms.

        Blocks for up to the ramp time; publishes through the SDK, so it works after rclpy has
        shut down (Ctrl-C). Then closes the channel. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        next_s = time.monotonic()
        while self.commander.started and not self.commander.released:
            self.poll()
            q_cmd, dq_cmd = brake()
            if q_cmd is None or not self._send(*self.commander.release_step(q_cmd, dq_cmd)):
                break  # nothing valid to send (logged): stop, the weight stays where it is
            next_s += self.period_s
            time.sleep(max(0.0, next_s - time.monotonic()))
        self.channel.close()

    def diagnostics(self) -> list[tuple[str, str]]:
        refused = ", ".join(f"{k}: {v}" for k, v in sorted(self.refused.items())) or "none"
        return [("arm_sdk_weight", f"{self.commander.ramp.weight:.3f}"),
                ("arm_sdk_frames_sent", str(self.channel.sent)),
                ("arm_sdk_frames_refused", refused)]


def make_output(node: Node, profile, period_s: float, params: dict[str, Any],
                on_measured: Callable[[np.ndarray], None]):
    """The output the profile's ``command_interface.type`` names.

    Raises:
        ConfigError: An output type this node cannot drive (names the field and the choices).
        UnitreeSdkError: ``unitree_arm_sdk`` without the Unitree SDK installed.
    """
    kind = profile.command_interface.type
    if kind in _ROS2_CONTROL:
        return Ros2ControlOutput(node, profile, period_s, params)
    if kind == "unitree_arm_sdk":
        return UnitreeArmSdkOutput(node, profile, period_s, params, on_measured)
    raise ConfigError("command_output cannot drive this command interface", file=profile.file,
                      field="command_interface.type", value=kind, choices=OUTPUT_TYPES)
