"""command_output: executes validated action chunks in time, runs IK and the final joint guard,
and sends the robot's joint commands to its ros2_control controller or, for the Unitree G1, to
the arm SDK channel through Unitree's SDK (extra ``unitree``; docs/unitree_g1.md).

Subscriptions:
    hv2r/action_safe (trajectory_msgs/MultiDOFJointTrajectory with ``action_space: cartesian``:
        absolute end-effector poses [m, unit quaternion] in the base frame; JointTrajectory with
        ``joint``: joint positions [rad or m]), reliable depth 5. Validated again; invalid: hold.
    hv2r/safety/state (std_msgs/String, latched): anything but ``ACTIVE`` holds; ``ACTIVE``
        after a hold resumes (re-seed from the measured state, once the command has rested
        ``RESUME_SETTLE_S`` = 50 ms with the robot stopped within ``v_max * T`` of it; a robot
        resting farther than ``a * T^2`` off resumes from the held command instead).
    hv2r/estop (std_msgs/Bool, latched): True holds at once; False alone does not resume.
    joint_states (sensor_msgs/JointState, sensor QoS): the measured state, mapped by name
        (ros2_control outputs; the arm SDK output reads the robot's ``rt/lowstate`` instead).
        A stamped one (stamp not zero) stamped in the future, not newer than the previous one
        or older than ``max_state_age_s`` at receipt is not used: a stalled driver repeating
        its last message is a missing measurement.
Publications:
    <profile command_interface.topic>: trajectory_msgs/JointTrajectory (the command at
        ``time_from_start`` = one control period, held to two so that a late delivery is not
        dropped as already ended; stamped at publication) for a
        ``joint_trajectory_controller``; std_msgs/Float64MultiArray (profile joint order) for a
        ``forward_position_controller``. Reliable depth 1. Nothing before the first valid
        joint state.
    rt/arm_sdk (``unitree_arm_sdk``; Unitree SDK over Cyclone DDS, not ROS): unitree_hg LowCmd
        with the profile joints at their motor slots, the blend weight in slot 29 ramped 0 -> 1
        before the output follows anything (HOLD at the measured state meanwhile) and 1 -> 0
        on shutdown while braking, and the SDK's CRC.
    diagnostics (diagnostic_msgs/DiagnosticArray, 1 Hz): chunk rate and latency (receipt -
        capture), control-step time, camera-to-command latency (publication - capture), holds.
Parameters: see ``parameter_table`` (units in names and descriptions).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

from hv2r_ros.core.chunk_executor import STRATEGIES, ChunkExecutor
from hv2r_ros.core.output_gate import OutputGate, ResumeReadiness
from hv2r_ros.core.command_chain import CartesianCommandChain
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.safety.joint_guard import JointGuard
from hv2r_ros.core.safety.validate import check_stamp
from hv2r_ros.core.stats import StageStats
from hv2r_ros.core.status import Status
from hv2r_ros.ros.actions import read_cartesian_chunk, read_joint_chunk
from hv2r_ros.ros.diagnostics import diagnostic_array, stage_status
from hv2r_ros.ros.command_outputs import UNITREE_PARAMS, make_output
from hv2r_ros.ros.spin import run_node
from hv2r_ros.ros.joints import JointStateReader
from hv2r_ros.ros.params import ParamSpec, add_validator, declare
from hv2r_ros.ros.qos import action_qos, diagnostics_qos, latched_qos, sensor_qos
from hv2r_ros.ros.stamps import to_seconds

NAME = "command_output"
ROBOT = ParamSpec("robot", "str", "panda", "Robot profile name or profile YAML path",
                  read_only=True)
DIAGNOSTICS_PERIOD_S = 1.0
#: A resume waits until the command has rested this long [s] with the robot stopped near it
#: (``ResumeReadiness``), so the re-seed to the measured state does not step back or jump.
RESUME_SETTLE_S = 0.05
#: Settable at run time: ChunkExecutor attributes, then OutputGate attributes.
_LIVE = ("strategy", "ensemble_decay_per_s", "command_timeout_s", "max_state_age_s")


def parameter_table(profile) -> tuple[ParamSpec, ...]:
    """The node's parameters; defaults come from the robot ``profile``."""
    period = 1.0 / profile.control_rate_hz
    return (
        ROBOT,
        ParamSpec("action_space", "str", "cartesian", "Chunks on hv2r/action_safe: end-effector "
                  "poses (IK runs here) or joint positions", read_only=True,
                  choices=("cartesian", "joint")),
        ParamSpec("strategy", "str", "receding_horizon", "Chunk execution: newest chunk, or "
                  "temporal ensembling of every chunk covering now", choices=STRATEGIES),
        ParamSpec("ensemble_decay_per_s", "float", 10.0, "Temporal ensembling weight "
                  "exp(-decay * chunk age) [1/s]", min=0.0, max=1000.0),
        ParamSpec("command_timeout_s", "float", float(profile.command_timeout_s),
                  "Hold when no valid chunk arrived for this long [s]", min=0.001, max=1.0),
        ParamSpec("max_state_age_s", "float",
                  float(min(profile.observation_max_age_s, 3.0 * period)),
                  "Hold when the last valid joint state is older [s] (default: the profile's "
                  "observation age limit or 3 control periods, the smaller)", min=0.001, max=1.0),
        ParamSpec("control_rate_hz", "float", float(profile.control_rate_hz),
                  "Control loop rate [Hz]", min=1.0, max=1000.0, read_only=True),
        ParamSpec("controller_joints", "str[]", [], "The forward position controller's "
                  "'joints' parameter, checked against the profile's joint order at start"),
        *UNITREE_PARAMS,
    )


class CommandOutputNode(Node):
    """Chunk executor -> (IK) -> joint guard -> controller command, at the control rate."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NAME, **kwargs)
        profile = load_robot_profile(declare(self, (ROBOT,))["robot"])
        specs = parameter_table(profile)
        p = declare(self, specs[1:])
        profile = dataclasses.replace(profile, control_rate_hz=p["control_rate_hz"])
        self.profile, self.period_s = profile, profile.control_period_s
        interface = profile.command_interface
        self.cartesian = p["action_space"] == "cartesian"
        if self.cartesian:
            self.chain = CartesianCommandChain(profile)
            self.guard = self.chain.guard
        else:  # joint-space chunks skip the IK, never the guard
            self.chain = self.guard = JointGuard(profile.limits, self.period_s)
        self.chunks = ChunkExecutor(p["strategy"], ensemble_decay_per_s=p[
            "ensemble_decay_per_s"], clock=self._now_s)
        self.gate = OutputGate(p["command_timeout_s"], p["max_state_age_s"])
        self.reader = JointStateReader(profile.joint_names)
        self.q_measured = None
        self._state_stamp_s: float | None = None
        self.resume = ResumeReadiness(profile.limits.velocity_max, self.period_s,
                                      self.guard.acceleration_limit * self.period_s ** 2,
                                      math.ceil(RESUME_SETTLE_S / self.period_s))
        self.state_rejections: collections.Counter[str] = collections.Counter()
        self.output_stats, self.step_stats = StageStats(), StageStats()
        self._hold: Status | None = Status.HOLD_NOT_STARTED
        self.output = make_output(self, profile, self.period_s, p, self._on_measured)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics",
                                                     diagnostics_qos())
        action_type = MultiDOFJointTrajectory if self.cartesian else JointTrajectory
        self.create_subscription(action_type, "hv2r/action_safe", self._on_chunk, action_qos())
        self.create_subscription(String, "hv2r/safety/state", self._on_safety, latched_qos())
        self.create_subscription(Bool, "hv2r/estop", self._on_estop, latched_qos())
        if not self.output.measures_state:
            self.create_subscription(JointState, "joint_states", self._on_joint_state,
                                     sensor_qos())
        validator = add_validator(self, specs)
        self.add_on_set_parameters_callback(lambda params: self._apply(validator, params))
        self.timer = self.create_timer(self.period_s, self._tick)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self.get_logger().info(
            f"{profile.name}: {p['action_space']} chunks ({p['strategy']}) -> "
            f"{interface.type} on '{interface.topic}' at {profile.control_rate_hz:g} Hz")

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _apply(self, validator, params):
        result = validator(params)
        for param in params if result.successful else ():
            if param.name in _LIVE:
                setattr(self.chunks if param.name in _LIVE[:2] else self.gate, param.name,
                        param.value)
        return result

    def _on_chunk(self, msg) -> None:
        if self.cartesian:
            chunk, times, stamp_s, status = read_cartesian_chunk(
                msg, self.profile.end_effector_frames, self.profile.base_frame)
        else:
            chunk, times, stamp_s, status = read_joint_chunk(msg, self.profile.joint_names)
        if chunk is not None:
            status = self.chunks.add(chunk, times, stamp_s)
        else:
            self.chunks.reject(stamp_s, status)
        if status is Status.OK:
            self.gate.chunk_accepted()
        else:
            self.get_logger().warning(f"chunk rejected: {status.value}", throttle_duration_sec=1.0)

    def _on_safety(self, msg: String) -> None:
        self.gate.set_safety_state(msg.data)

    def _on_estop(self, msg: Bool) -> None:
        self.gate.set_estop(msg.data)

    def _on_joint_state(self, msg: JointState) -> None:
        q, _, _ = self.reader.read(msg)
        if q is None:
            return
        stamp_s = to_seconds(msg.header.stamp)
        if stamp_s > 0.0:
            status = check_stamp(stamp_s, self._now_s(), self._state_stamp_s,
                                 self.gate.max_state_age_s)
            if status is not Status.OK:
                self.state_rejections[status.name] += 1
                self.get_logger().warning(f"joint_states not used: {status.value}",
                                          throttle_duration_sec=1.0)
                return
            self._state_stamp_s = stamp_s
        self._on_measured(q)

    def _on_measured(self, q) -> None:
        self.resume.measured(q)
        self.q_measured = q
        self.gate.state_received()

    def _tick(self) -> None:
        self.output.poll()  # the arm SDK output reads the robot's state here
        if self.q_measured is None:
            return  # never seeded: nothing reaches the controller
        start = time.monotonic()
        # Sample the chunks at the tick's scheduled time, not at the late wall time of its
        # callback: the guard assumes exactly one period between commands, and so must the plan.
        until_next = self.timer.time_until_next_call()
        now = self._now_s()
        if until_next is not None:
            now += until_next * 1e-9 - self.period_s
        at_rest = self.resume.period(self.guard.position, self.guard.velocity.any())
        hold, reseed = self.gate.decide(at_rest=at_rest)
        if hold is None and not self.output.engaged:
            hold = Status.HOLD_NOT_STARTED  # the arm SDK blend is still ramping in
        if reseed:  # resume: the first command equals the measured state (ResumeReadiness)
            self.chunks.clear()
            self.chain.reset(self.resume.seed(self.guard.position, self.q_measured))
        target = None
        if hold is None:
            target, hold = self.chunks.target(now)
        step_hold = hold if target is None else None
        q_cmd, status = self.chain.step(target, self.q_measured, hold=step_hold)
        if q_cmd is None:
            return
        self.output.send(q_cmd, self.guard.velocity)
        done = time.monotonic()
        source = self.chunks.source_stamp_s if target is not None else None
        self.step_stats.record(done, done - start)
        status = status.final if self.cartesian else status
        self.output_stats.record(done, None if source is None else self._now_s() - source,
                                 status)
        if hold != self._hold:
            self.get_logger().info(f"output: {'following' if hold is None else hold.value}")
            self._hold = hold

    def release_output(self) -> None:
        """Let go of the robot: brake to rest while the output ramps its authority out (arm
        SDK: blend weight to 0; blocks up to the ramp time), then close it. Idempotent."""
        def brake():
            if self.q_measured is None:
                return None, None
            q_cmd, _ = self.chain.step(None, self.q_measured, hold=Status.HOLD_REQUESTED)
            return q_cmd, self.guard.velocity
        if hasattr(self, "output"):  # not when construction failed before building it
            self.output.release(brake)

    def destroy_node(self) -> None:
        self.release_output()
        super().destroy_node()

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        step = self.step_stats.summary(now)
        hold = "none" if self._hold is None else f"{self._hold.value} ({self.gate.detail()})"
        extra = [("step_p50_ms", f"{step.latency_p50_ms:.3f}"),
                 ("step_p99_ms", f"{step.latency_p99_ms:.3f}"), ("hold_reason", hold),
                 ("safety_state", self.gate.safety_state or "none"),
                 ("strategy", self.chunks.strategy), *self.output.diagnostics(),
                 *((f"joint_states_not_used.{k}", str(n))
                   for k, n in sorted(self.state_rejections.items()))]
        stale = 3.0 * self.period_s
        self.diagnostics_pub.publish(diagnostic_array([
            stage_status(f"{NAME}: chunks", self.chunks.stats.summary(self._now_s()),
                         self.profile.name),
            stage_status(f"{NAME}: command", self.output_stats.summary(now), self.profile.name,
                         stale_after_s=stale, extra=extra),
        ], self._now_s()))


def main(args: list[str] | None = None) -> None:
    """Console entry point ``command_output``; after Ctrl-C the output is released too."""
    built = []
    try:
        run_node(lambda: built.append(CommandOutputNode()) or built[-1], args, name=NAME)
    finally:
        for node in built:
            node.release_output()


if __name__ == "__main__":
    main()
