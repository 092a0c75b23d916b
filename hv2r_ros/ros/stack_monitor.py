"""The monitor of the reliability rig and of ``hv2r soak`` (``hv2r_ros.ros.fault_rig`` starts
the processes): an rclpy node in the caller's process, on its own context and executor thread.

It records the joint commands (stamp = publication time in ``command_output``) and the measured
joint states, the safety filter's state and forwarded chunks, the policy's chunks and the fault
relays' events, each with its receipt time; and it plays the operator: e-stop, the safety
filter's lifecycle and e-stop reset, the simulator's reset, the goal embedding, the relays'
faults. Every time is ROS time (the system clock) [s], comparable with ``time.time()``.
"""

from __future__ import annotations

import bisect
import itertools
import json
import threading
import time

import numpy as np
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float32MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

from hv2r_ros.ros import qos
from hv2r_ros.ros.fault_rig import wait_for
from hv2r_ros.ros.stamps import to_seconds

__all__ = ["Monitor"]


class Monitor:
    """Records commands, states and the safety state; plays the operator (module docstring).

    Args:
        profile: The robot profile (command topic, joint names).
        relays: Names of the fault relay nodes to control.
        action_type: Message type of ``hv2r/action_safe``.
        state_topic: The measured joint states to record (the simulator's own topic when a
            relay sits between it and the stack).
    """

    def __init__(self, profile, relays: tuple[str, ...] = (), *,
                 action_type: type = MultiDOFJointTrajectory,
                 state_topic: str = "joint_states") -> None:
        self.profile = profile
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("reliability_monitor", context=self.context)
        self.lock = threading.Lock()
        self.commands: list[tuple[float, float, np.ndarray]] = []
        self._command_stamps: list[float] = []  # the stamps of ``commands``, sorted
        self.states: list[tuple[float, float, np.ndarray]] = []
        self.safety: list[tuple[float, str]] = []
        self.forwarded: list[tuple[float, float]] = []  # hv2r/action_safe: (receipt, stamp)
        self.actions: list[tuple[float, float]] = []  # hv2r/action: (receipt, stamp)
        self.events: dict[str, list[dict]] = {name: [] for name in relays}
        node, deep = self.node, QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(JointTrajectory, profile.command_interface.topic,
                                 self._on_command, deep)
        node.create_subscription(JointState, state_topic, self._on_state, qos.sensor_qos(5))
        node.create_subscription(String, "hv2r/safety/state", self._on_safety,
                                 qos.latched_qos())
        node.create_subscription(action_type, "hv2r/action_safe", self._on_forwarded, deep)
        node.create_subscription(action_type, "hv2r/action", self._on_action, deep)
        self.fault_pubs = {}
        for name in relays:
            self.fault_pubs[name] = node.create_publisher(String, f"{name}/fault", 10)
            node.create_subscription(String, f"{name}/events",
                                     lambda m, n=name: self._on_event(n, m), qos.latched_qos())
        self.estop_pub = node.create_publisher(Bool, "hv2r/estop", qos.latched_qos())
        self.goal_pub = node.create_publisher(Float32MultiArray, "hv2r/task/goal_embedding",
                                              qos.latched_qos())
        self.lifecycle = node.create_client(ChangeState, "safety_filter/change_state")
        self.reset_client = node.create_client(Trigger, "safety_filter/reset_estop")
        self.sim_reset = node.create_client(Trigger, "sim/reset")
        self._ids = itertools.count(1)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - the context shut down under it
            pass

    # -- recording -------------------------------------------------------------------------
    def _on_command(self, msg: JointTrajectory) -> None:
        if not msg.points:
            return
        where = dict(zip(msg.joint_names, msg.points[0].positions))
        try:
            q = np.array([where[name] for name in self.profile.joint_names])
        except KeyError:
            return
        stamp = to_seconds(msg.header.stamp)
        with self.lock:  # kept sorted by stamp (one publisher: appended in order)
            at = bisect.bisect_right(self._command_stamps, stamp)
            self.commands.insert(at, (stamp, time.time(), q))
            self._command_stamps.insert(at, stamp)

    def _on_state(self, msg: JointState) -> None:
        where = {n: i for i, n in enumerate(msg.name)}
        try:
            q = np.array([msg.position[where[n]] for n in self.profile.joint_names])
        except (KeyError, IndexError):
            return
        with self.lock:
            self.states.append((to_seconds(msg.header.stamp), time.time(), q))

    def _on_safety(self, msg: String) -> None:
        with self.lock:
            self.safety.append((time.time(), msg.data))

    def _on_forwarded(self, msg) -> None:
        with self.lock:
            self.forwarded.append((time.time(), to_seconds(msg.header.stamp)))

    def _on_action(self, msg) -> None:
        with self.lock:
            self.actions.append((time.time(), to_seconds(msg.header.stamp)))

    def _on_event(self, relay: str, msg: String) -> None:
        with self.lock:
            self.events[relay].append(json.loads(msg.data))

    def command_arrays(self, since_s: float = -np.inf, until_s: float = np.inf
                       ) -> tuple[np.ndarray, np.ndarray]:
        """``(stamps (N,), q (N, n))`` of the commands stamped in ``[since_s, until_s]``."""
        with self.lock:
            start = bisect.bisect_left(self._command_stamps, since_s)
            stop = bisect.bisect_right(self._command_stamps, until_s)
            rows = [(s, q) for s, _, q in self.commands[start:stop]]
        if not rows:
            return np.zeros(0), np.zeros((0, len(self.profile.joint_names)))
        return np.array([s for s, _ in rows]), np.stack([q for _, q in rows])

    def command_count(self) -> int:
        with self.lock:
            return len(self.commands)

    def last_state(self) -> np.ndarray | None:
        with self.lock:
            return self.states[-1][2].copy() if self.states else None

    def safety_state(self) -> str:
        with self.lock:
            return self.safety[-1][1] if self.safety else ""

    def safety_since(self, since_s: float) -> list[tuple[float, str]]:
        with self.lock:
            return [row for row in self.safety if row[0] >= since_s]

    # -- acting ----------------------------------------------------------------------------
    def wait_commands(self, count: int, timeout_s: float) -> None:
        """Wait until ``count`` more commands arrived."""
        target = self.command_count() + count
        wait_for(lambda: self.command_count() >= target, timeout_s, f"{count} commands")

    def set_fault(self, relay: str, mode: str, timeout_s: float = 10.0, **values) -> dict:
        """Set a fault on ``relay``; its event (when it took effect, the last valid message)."""
        publisher = self.fault_pubs[relay]
        wait_for(lambda: publisher.get_subscription_count() > 0, timeout_s,
                 f"{relay}/fault subscriber")
        ident = next(self._ids)
        publisher.publish(String(data=json.dumps({"mode": mode, "id": ident, **values})))

        def event():
            with self.lock:
                return next((e for e in self.events[relay] if e["id"] == ident), None)

        return wait_for(event, timeout_s, f"{relay} to set {mode}")

    def estop(self, asserted: bool) -> float:
        """Publish the e-stop input; the time just before [s]."""
        now = time.time()
        self.estop_pub.publish(Bool(data=asserted))
        return now

    def publish_goal(self, values) -> None:
        self.goal_pub.publish(Float32MultiArray(data=[float(v) for v in values]))

    def _call(self, client, request, timeout_s: float):
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"service {client.srv_name} not available")
        future = client.call_async(request)
        wait_for(future.done, timeout_s, f"{client.srv_name} response")
        return future.result()

    def transition(self, name: str, timeout_s: float = 10.0) -> bool:
        """``activate`` / ``deactivate`` / ``configure`` the safety filter; success."""
        request = ChangeState.Request()
        request.transition.id = getattr(Transition, f"TRANSITION_{name.upper()}")
        return bool(self._call(self.lifecycle, request, timeout_s).success)

    def reset_estop(self, timeout_s: float = 10.0) -> tuple[bool, str]:
        response = self._call(self.reset_client, Trigger.Request(), timeout_s)
        return response.success, response.message

    def reset_sim(self, timeout_s: float = 10.0) -> str:
        return self._call(self.sim_reset, Trigger.Request(), timeout_s).message

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
