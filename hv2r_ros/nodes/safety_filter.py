"""safety_filter: validates, limits and gates the policy's action chunks (lifecycle node).

Subscriptions:
    hv2r/action (trajectory_msgs/MultiDOFJointTrajectory; JointTrajectory when
        ``action_space`` is ``joint``; reliable): the policy's chunks, stamped with the capture
        time of their observation; ``header.frame_id`` empty or the profile's base frame.
    joint_states (sensor_msgs/JointState, sensor QoS): measured state (tool pose by FK, age).
    hv2r/estop (std_msgs/Bool, reliable + transient local): True latches the e-stop.
Publications:
    hv2r/action_safe (same type as hv2r/action, reliable): validated, limited chunks, same
        stamp and times; only while active.
    hv2r/safety/state (std_msgs/String, reliable + transient local): ``ACTIVE`` or
        ``HOLD <STATUS_NAME>: <text>``, on every change; re-evaluated at ``state_rate_hz``.
    diagnostics (diagnostic_msgs/DiagnosticArray): chunk rate, latency, holds and reasons.
Services:
    ~/reset_estop (std_srvs/Trigger): operator reset; refused while hv2r/estop is asserted.
Parameters (``PARAMS``; read on configure): robot, action_space, command_timeout_s [s],
    max_action_age_s [s], max_state_age_s [s], authority_ramp_s [s], state_rate_hz [Hz],
    diagnostics_rate_hz [Hz], enable_autostart, estop_latch_file.
A latched e-stop survives a restart of the node: it is written to ``estop_latch_file`` and read
back on configure; only the operator reset removes it. Joint states stamped in the future, not
newer than the previous one or older than ``max_state_age_s`` are not used. The publishers of
hv2r/action present at the first chunk after activation are the only source: a new one (a
restarted policy) holds until the node is deactivated and activated again. Each chunk's publisher
comes from its message info where rclpy gives it (Kilted), else from the ROS graph.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.subscription import Subscription
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

from hv2r_ros.core.action_filter import ACTION_SPACES, ActionFilter, ActionFilterConfig, \
    state_message
from hv2r_ros.core.errors import ConfigError, Hv2rError
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.status import Status
from hv2r_ros.ros import actions, qos
from hv2r_ros.ros.diagnostics import diagnostic_array, stage_status
from hv2r_ros.ros.joints import JointStateReader
from hv2r_ros.ros.params import ParamSpec, add_validator, declare
from hv2r_ros.ros.spin import run_node
from hv2r_ros.ros.stamps import to_seconds

PARAMS = (
    ParamSpec("robot", "str", "panda", "Robot profile: a name under config/robots or a YAML "
              "path", read_only=True),
    ParamSpec("action_space", "str", "cartesian", "What hv2r/action carries: end-effector "
              "poses or joint positions", read_only=True, choices=ACTION_SPACES),
    ParamSpec("command_timeout_s", "float", 0.1, "Watchdog: HOLD when no valid chunk came for "
              "this long [s]; unset: the profile's safety.command_timeout_s", min=0.001, max=1.0),
    ParamSpec("max_action_age_s", "float", 0.2, "Oldest chunk at receipt, now - stamp [s]",
              min=0.001, max=1.0),
    ParamSpec("max_state_age_s", "float", 0.1, "Oldest usable joint_states [s]", min=0.001,
              max=1.0),
    ParamSpec("authority_ramp_s", "float", 1.0, "Speed authority ramp 0 -> 1 after activation "
              "and e-stop reset [s]", min=0.0, max=10.0),
    ParamSpec("state_rate_hz", "float", 100.0, "Rate at which the state is re-evaluated [Hz]",
              min=1.0, max=1000.0),
    ParamSpec("diagnostics_rate_hz", "float", 1.0, "diagnostics rate [Hz]", min=0.1, max=10.0),
    ParamSpec("enable_autostart", "bool", False, "main(): configure and activate at start",
              read_only=True),
    ParamSpec("estop_latch_file", "str", "", "File that keeps a latched e-stop across "
              "restarts (removed by ~/reset_estop); empty: $ROS_HOME/hv2r_ros/estop_latch/"
              "domain_<ROS_DOMAIN_ID>/<node namespace and name>", read_only=True),
)
SOURCE_CHECK_PERIOD_S = 0.1  # how often the publishers of hv2r/action are looked up [s]
#: rclpy passes each message's MessageInfo to a two-argument callback (Iron and newer; Kilted's
#: carries the publisher's GID). Humble's calls every callback with the message only.
_MESSAGE_INFO = hasattr(Subscription, "CallbackType")
_FROM_PROFILE = ("command_timeout_s",)  # declared without a value: the profile's when unset


class SafetyFilterNode(LifecycleNode):
    """Lifecycle wiring of ``ActionFilter``; everything is created on configure."""

    def __init__(self, node_name: str = "safety_filter", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.params = declare(self, [s for s in PARAMS if s.name not in _FROM_PROFILE])
        for spec in (s for s in PARAMS if s.name in _FROM_PROFILE):
            self.declare_parameter(spec.name, spec.ros_type, spec.descriptor())
        add_validator(self, PARAMS)
        self.filter: ActionFilter | None = None
        self._entities: list = []
        self._last_state = ""

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = {s.name: self.get_parameter_or(s.name).value for s in PARAMS}
        try:
            profile = load_robot_profile(values["robot"])
            if values["command_timeout_s"] is None:
                values["command_timeout_s"] = profile.command_timeout_s
                self.set_parameters([Parameter("command_timeout_s",
                                               value=profile.command_timeout_s)])
            config = ActionFilterConfig(**{k: values[k] for k in (
                "action_space", "command_timeout_s", "max_action_age_s", "max_state_age_s",
                "authority_ramp_s")})
            self.latch_file = self._latch_file(values["estop_latch_file"])
            self.filter = ActionFilter(profile, config)
        except Hv2rError as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.profile, self.reader = profile, JointStateReader(profile.joint_names)
        cartesian = self.filter.cartesian
        action_type = MultiDOFJointTrajectory if cartesian else JointTrajectory
        self.action_pub = self.create_lifecycle_publisher(action_type, "hv2r/action_safe",
                                                          qos.action_qos())
        self.state_pub = self.create_publisher(String, "hv2r/safety/state", qos.latched_qos())
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics",
                                              qos.diagnostics_qos())
        self._message_sources = False  # set once a message names its publisher
        self.action_sub = self.create_subscription(
            action_type, "hv2r/action",
            self._on_action_with_info if _MESSAGE_INFO else self._on_action, qos.action_qos())
        if self.latch_file.exists():
            self.filter.estop.trigger(f"e-stop latched before a restart ({self.latch_file})")
        self._entities = [
            self.action_sub,
            self.create_subscription(JointState, "joint_states", self._on_joint_state,
                                     qos.sensor_qos()),
            self.create_subscription(Bool, "hv2r/estop", self._on_estop, qos.latched_qos()),
            self.create_service(Trigger, "~/reset_estop", self._on_reset_estop),
            self.create_timer(1.0 / values["state_rate_hz"], self._publish_state),
            self.create_timer(1.0 / values["diagnostics_rate_hz"], self._publish_diagnostics),
            self.create_timer(SOURCE_CHECK_PERIOD_S, self._check_sources),
            self.state_pub, self.diag_pub,
        ]
        self._last_state = ""
        self._publish_state()
        self.get_logger().info(f"configured for {profile.name} ({profile.file}), "
                               f"{config.action_space} chunks, watchdog "
                               f"{self.filter.watchdog.timeout_s * 1e3:g} ms")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # hv2r/action_safe publishes from here on
        self.filter.activate()
        self._publish_state()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.filter.deactivate()
        self._publish_state()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.filter is None:  # shutdown from unconfigured
            return TransitionCallbackReturn.SUCCESS
        self.filter.deactivate()
        self._publish_state()
        self.destroy_lifecycle_publisher(self.action_pub)
        for entity in self._entities:
            for destroy in (self.destroy_subscription, self.destroy_service, self.destroy_timer,
                            self.destroy_publisher):
                if destroy(entity):
                    break
        self._entities, self.filter = [], None
        return TransitionCallbackReturn.SUCCESS

    on_shutdown = on_cleanup

    def _latch_file(self, value: str) -> Path:
        """The e-stop latch file (parameter, or the default under ``$ROS_HOME``), its folder
        created; ConfigError naming the parameter when it cannot be."""
        if value:
            path = Path(value).expanduser()
        else:
            home = Path(os.environ.get("ROS_HOME") or "~/.ros").expanduser()
            domain = os.environ.get("ROS_DOMAIN_ID") or "0"
            path = home / "hv2r_ros" / "estop_latch" / f"domain_{domain}" / \
                self.get_fully_qualified_name().lstrip("/")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot keep the e-stop latch across restarts: {exc}",
                              field="estop_latch_file", value=str(path)) from exc
        return path

    def _store_latch(self, latched: bool) -> None:
        try:
            if latched:
                self.latch_file.write_text(f"{time.time():.6f} {self.filter.estop.reason}\n")
            else:
                self.latch_file.unlink(missing_ok=True)
        except OSError as exc:  # the latch in memory still holds
            self.get_logger().error(f"e-stop latch file {self.latch_file}: {exc}")

    def _check_sources(self) -> None:
        """The publishers of hv2r/action from the ROS graph: the fallback when messages do not
        name their publisher (the graph can lag the data under load: a late entry holds)."""
        if self._message_sources or self.filter is None:
            return
        gids = [bytes(info.endpoint_gid).hex()[:32] for info in
                self.get_publishers_info_by_topic(self.action_sub.topic_name)]
        if self.filter.note_sources(gids):
            self._publish_state()

    def _on_action_with_info(self, msg, info=None) -> None:
        """rclpy passes the MessageInfo; a wrapper that passes the message only (a probe)
        falls back to the graph."""
        gid = (info.get("publisher_gid") or {}).get("data") if isinstance(info, dict) else None
        self._on_action(msg, bytes(gid).hex()[:32] if gid else None)

    def _on_action(self, msg, source: str | None = None) -> None:
        # A chunk of a new publisher must not pass before its source is checked.
        if source is not None:
            self._message_sources = True
            self.filter.note_sources({source})
        else:
            self._check_sources()
        now_s, names = self.get_clock().now().nanoseconds * 1e-9, self.filter.names
        if self.filter.cartesian:
            frame_id = self.profile.base_frame if msg.header.frame_id else None
            chunk, times, stamp_s, status = actions.read_cartesian_chunk(msg, names, frame_id)
        else:
            chunk, times, stamp_s, status = actions.read_joint_chunk(msg, names)
        if chunk is None:
            self.filter.reject(status, stamp_s, now_s)
        else:
            chunk, status = self.filter.on_chunk(names, chunk, times, stamp_s, now_s)
        self._publish_state()  # the state change first: a HOLD must not trail its chunk
        if chunk is None:
            self.get_logger().warning(f"chunk not forwarded: {status.value}",
                                   throttle_duration_sec=1.0)
        elif self.filter.cartesian:
            self.action_pub.publish(actions.cartesian_chunk_to_msg(
                names, chunk, times, msg.header.stamp, self.profile.base_frame))
        else:
            self.action_pub.publish(actions.joint_chunk_to_msg(names, chunk, times,
                                                               msg.header.stamp))

    def _on_joint_state(self, msg: JointState) -> None:
        positions, _, status = self.reader.read(msg)
        status = self.filter.on_joint_state(positions, status, to_seconds(msg.header.stamp),
                                            self.get_clock().now().nanoseconds * 1e-9)
        if status in (Status.HOLD_STALE, Status.HOLD_FUTURE_STAMP, Status.HOLD_NON_MONOTONIC):
            self.get_logger().warning(f"joint_states not used: {status.value}",
                                      throttle_duration_sec=1.0)
        self._publish_state()

    def _on_estop(self, msg: Bool) -> None:
        was = self.filter.estop.latched
        if self.filter.on_estop(msg.data) and not was:
            self._store_latch(True)
        self._publish_state()

    def _on_reset_estop(self, request: Trigger.Request, response: Trigger.Response):
        response.success, response.message = self.filter.reset_estop()
        if response.success:
            self._store_latch(False)  # rclpy fixes a call site's severity: one call per severity
            self.get_logger().info(f"~/reset_estop: {response.message}")
        else:
            self.get_logger().warning(f"~/reset_estop: {response.message}")
        self._publish_state()
        return response

    def _publish_state(self) -> None:
        if self.filter is None:
            return
        text = state_message(*self.filter.state())
        if text != self._last_state:
            self._last_state = text
            self.state_pub.publish(String(data=text))
            if text == "ACTIVE":
                self.get_logger().info(f"state: {text}")
            else:
                self.get_logger().warning(f"state: {text}")

    def _publish_diagnostics(self) -> None:
        summary = self.filter.summary()
        extra = [("state", self._last_state), ("authority", f"{self.filter.authority:.2f}"),
                 ("estop_latched", str(self.filter.estop.latched)),
                 *((f"joint_states_not_used.{k}", str(n))
                   for k, n in sorted(self.filter.state_rejections.items()))]
        status = stage_status(f"{self.get_name()}: chunks", summary, self.profile.name,
                              stale_after_s=1.0, extra=extra)
        self.diag_pub.publish(diagnostic_array([status], self.get_clock().now().to_msg()))


def _autostart(node: SafetyFilterNode) -> None:
    if node.params["enable_autostart"]:
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise SystemExit(1)
        node.trigger_activate()


def main(args: list[str] | None = None) -> None:
    """Run the node; ``enable_autostart`` configures and activates it at once."""
    run_node(SafetyFilterNode, args, start=_autostart)


if __name__ == "__main__":
    main()
