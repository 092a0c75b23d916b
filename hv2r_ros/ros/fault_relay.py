"""fault_relay: forwards one topic to another and injects faults on command (tests, soak).

Placed between two nodes by remapping, e.g. the policy publishing on ``hv2r/action_raw``
(``-r hv2r/action:=hv2r/action_raw``) and the relay forwarding to ``hv2r/action``. It passes
every message unchanged until a fault is set; ``hv2r_ros.sim.faults.RelayFaults`` decides what
each fault does (drop, outage, freeze, repeat, future, duplicate, reorder).

Subscriptions:
    in (``message_type``, QoS ``qos``): the stream to relay.
    ~/fault (std_msgs/String, reliable, depth 10): JSON ``{"mode": ..., "duration_s": ...,
        "rate": ..., "offset_s": ..., "burst_s": ..., "burst_every_s": ..., "id": ...}``;
        mode ``pass`` ends a fault.
Publications:
    out (``message_type``, QoS ``qos``): the relayed stream.
    ~/events (std_msgs/String, reliable + transient local, depth 1): JSON on each fault set:
        ``id``, ``mode``, ``at_s`` (ROS time it took effect [s]), ``last_valid_stamp_s`` and
        ``last_valid_at_s`` (stamp and forwarding time of the last message forwarded unaltered
        before it [s]), and the counts so far.
Parameters (``PARAMS``): message_type, qos, seed.
"""

from __future__ import annotations

import importlib
import json

from rclpy.node import Node
from std_msgs.msg import String

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.ros import qos
from hv2r_ros.ros.params import ParamSpec, declare
from hv2r_ros.ros.spin import run_node
from hv2r_ros.ros.stamps import from_seconds, to_seconds
from hv2r_ros.sim.faults import RelayFaults

NAME = "fault_relay"
QOS = {"sensor": lambda: qos.sensor_qos(1), "action": qos.action_qos,
       "command": qos.command_qos}
PARAMS = (
    ParamSpec("message_type", "str", "trajectory_msgs/msg/MultiDOFJointTrajectory",
              "Type of the relayed topic, package/msg/Name; it must have a header",
              read_only=True),
    ParamSpec("qos", "str", "action", "QoS of both sides", choices=tuple(QOS), read_only=True),
    ParamSpec("seed", "int", 0, "Seed of the drop decisions", min=0, max=2**31 - 1,
              read_only=True),
)


def message_class(name: str) -> type:
    """The message class of ``package/msg/Name``."""
    package, _, cls = name.replace("/msg/", "/").partition("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), cls)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("unknown message type", field="message_type", value=name) from exc


class FaultRelayNode(Node):
    """``in`` -> ``RelayFaults`` -> ``out``; faults set on ``~/fault``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NAME, **kwargs)
        p = declare(self, PARAMS)
        msg_type, profile = message_class(p["message_type"]), QOS[p["qos"]]()
        self.faults = RelayFaults(p["seed"])
        self.pub = self.create_publisher(msg_type, "out", profile)
        self.events = self.create_publisher(String, "~/events", qos.latched_qos())
        self.create_subscription(msg_type, "in", self._on_message, profile)
        self.create_subscription(String, "~/fault", self._on_fault, 10)

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_message(self, msg) -> None:
        stamp_s = to_seconds(msg.header.stamp)
        for payload, stamp in self.faults.process(msg, stamp_s, self._now_s()):
            if stamp != to_seconds(payload.header.stamp):  # publish() copies it out now
                payload.header.stamp = from_seconds(max(0.0, stamp))
            self.pub.publish(payload)

    def _on_fault(self, msg: String) -> None:
        try:
            spec = json.loads(msg.data)
            mode = spec.pop("mode")
            ident = spec.pop("id", None)
            now_s = self._now_s()
            self.faults.set(now_s, mode, **{k: float(v) for k, v in spec.items()})
        except (ValueError, KeyError, TypeError) as exc:
            self.get_logger().error(f"~/fault ignored: {exc}: {msg.data!r}")
            return
        last = self.faults.last_valid
        self.events.publish(String(data=json.dumps({
            "id": ident, "mode": mode, "at_s": now_s,
            "last_valid_stamp_s": None if last is None else last[1],
            "last_valid_at_s": None if last is None else last[2],
            "counts": self.faults.counts})))
        self.get_logger().info(f"fault {mode} {spec or ''}")


def main(args: list[str] | None = None) -> None:
    """``python -m hv2r_ros.ros.fault_relay --ros-args -r in:=A -r out:=B -p ...``."""
    run_node(FaultRelayNode, args, name=NAME)


if __name__ == "__main__":
    main()
