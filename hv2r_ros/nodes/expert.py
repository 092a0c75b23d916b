"""expert: the scripted expert in place of the policy node: solves the sim's task from ground truth.

It publishes what the policy node publishes, so its chunks take the real command path
(safety_filter -> command_output -> the robot); it only reads the simulator's ground truth
instead of cameras and a goal. ``hv2r_ros.sim.expert_loop`` describes the planning.

Subscriptions:
    sim/task (std_msgs/String JSON, reliable + transient local): the episode's layout and goal;
        a new episode starts a new plan.
    sim/ground_truth (std_msgs/String JSON, reliable): object poses, grasped object, success.
    joint_states (sensor_msgs/JointState, sensor QoS): mapped by name; the tool pose comes from
        forward kinematics of the profile's first end-effector frame.
Publications:
    hv2r/action (trajectory_msgs/MultiDOFJointTrajectory, reliable depth 5): absolute tool poses
        [m, unit quaternion] in the base frame, ``chunk_length`` points at ``(i + 1) /
        control_rate_hz`` [s] after ``header.stamp`` = the stamp of the joint state it planned
        from (only when that stamp is newer than the previous chunk's).
    hv2r/gripper (trajectory_msgs/JointTrajectory, joint ``gripper``, commands in [0, 1], same
        stamp and times).
    diagnostics (diagnostic_msgs/DiagnosticArray, 1 Hz): chunk rate, joint-state-to-publication
        latency, phase, plan attempts, outcome.
Parameters (``PARAMS``): robot, rate_hz [Hz], chunk_length, control_rate_hz [Hz] (0: the
    profile's), max_attempts, max_truth_age_s [s].
Nothing is published without a task, a ground truth of the task's episode no older than
``max_truth_age_s``, and a valid joint state.
"""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.stats import StageStats
from hv2r_ros.ros import actions, qos
from hv2r_ros.ros.diagnostics import diagnostic_array, stage_status
from hv2r_ros.ros.joints import JointStateReader
from hv2r_ros.ros.params import ParamSpec, add_validator, declare
from hv2r_ros.ros.spin import run_node
from hv2r_ros.ros.stamps import to_nanoseconds
from hv2r_ros.sim.expert_loop import ClosedLoopExpert
from hv2r_ros.sim.task_messages import ground_truth_from_json, task_from_json

NAME = "expert"
PARAMS = (
    ParamSpec("robot", "str", "panda", "Robot profile name or profile YAML path", read_only=True),
    ParamSpec("rate_hz", "float", 15.0, "Chunk rate [Hz]; keep the period inside the safety "
              "filter's command timeout", min=1.0, max=200.0, read_only=True),
    ParamSpec("chunk_length", "int", 20, "Points per chunk", min=1, max=500, read_only=True),
    ParamSpec("control_rate_hz", "float", 0.0, "Point spacing rate [Hz]; 0: the profile's "
              "control rate", min=0.0, max=1000.0, read_only=True),
    ParamSpec("max_attempts", "int", 3, "Most plans per episode (re-plans after a missed "
              "grasp or a failed place)", min=1, max=100, read_only=True),
    ParamSpec("max_truth_age_s", "float", 0.5, "Oldest usable sim/ground_truth, joint-state "
              "stamp minus its stamp [s]", min=0.01, max=10.0, read_only=True),
)


class ExpertNode(Node):
    """Wiring of ``ClosedLoopExpert``: task, truth and joint state in; chunks out."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NAME, **kwargs)
        p = self.params = declare(self, PARAMS)
        add_validator(self, PARAMS)
        self.profile = profile = load_robot_profile(p["robot"])
        if len(profile.end_effector_frames) != 1:
            raise ConfigError("the scripted expert drives one end effector", file=profile.file,
                              field="end_effectors", value=list(profile.end_effector_frames))
        self.period_s = 1.0 / (p["control_rate_hz"] or profile.control_rate_hz)
        self.expert = ClosedLoopExpert(profile, max_attempts=p["max_attempts"])
        self.reader = JointStateReader(profile.joint_names)
        self.truth = self.joints = None
        self._last_stamp_ns = -1
        self._phase = ""
        self.stats = StageStats()
        self.create_subscription(String, "sim/task", self._on_task, qos.latched_qos())
        self.create_subscription(String, "sim/ground_truth", self._on_truth, qos.command_qos())
        self.create_subscription(JointState, "joint_states", self._on_joint_state,
                                 qos.sensor_qos())
        self.action_pub = self.create_publisher(MultiDOFJointTrajectory, "hv2r/action",
                                                qos.action_qos())
        self.gripper_pub = self.create_publisher(JointTrajectory, "hv2r/gripper",
                                                 qos.action_qos())
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics",
                                              qos.diagnostics_qos())
        self.create_timer(1.0 / p["rate_hz"], self._publish_chunk)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"{profile.name}: {p['chunk_length']} points every "
                               f"{self.period_s * 1e3:g} ms at {p['rate_hz']:g} Hz")

    def _on_task(self, msg: String) -> None:
        try:
            task = task_from_json(msg.data)
        except ValueError as exc:
            self.get_logger().error(f"sim/task ignored: {exc}")
            return
        if task.robot != self.profile.name:
            self.get_logger().error(f"sim/task ignored: the sim runs {task.robot}, this expert "
                                    f"{self.profile.name}")
            return
        if self.expert.set_task(task):
            layout = task.layout
            self.get_logger().info(f"episode {task.episode}: move {layout.target_object} to "
                                   f"{layout.target_pad}")

    def _on_truth(self, msg: String) -> None:
        try:
            self.truth = ground_truth_from_json(msg.data)
        except ValueError as exc:
            self.get_logger().error(f"sim/ground_truth ignored: {exc}", throttle_duration_sec=1.0)

    def _on_joint_state(self, msg: JointState) -> None:
        q, _, _ = self.reader.read(msg)
        if q is not None:
            self.joints = (q, msg.header.stamp)

    def _publish_chunk(self) -> None:
        task, truth, joints = self.expert.task, self.truth, self.joints
        if task is None or truth is None or joints is None or truth.episode != task.episode:
            return
        q, stamp = joints
        stamp_ns = to_nanoseconds(stamp)
        if stamp_ns <= self._last_stamp_ns:
            return  # the safety filter refuses a stamp not newer than the previous one
        stamp_s = stamp_ns * 1e-9
        if stamp_s - truth.stamp_s > self.params["max_truth_age_s"]:
            self.get_logger().warning("sim/ground_truth is stale: no chunk",
                                      throttle_duration_sec=1.0)
            return
        chunk = self.expert.step(q, stamp_s, truth.truth, self.params["chunk_length"],
                                 self.period_s)
        frames = self.profile.end_effector_frames
        self.action_pub.publish(actions.cartesian_chunk_to_msg(
            frames, chunk.poses[:, None, :], chunk.times_s, stamp, self.profile.base_frame))
        self.gripper_pub.publish(actions.gripper_chunk_to_msg(chunk.gripper, chunk.times_s,
                                                              stamp))
        self._last_stamp_ns = stamp_ns
        self.stats.record(time.monotonic(), self.get_clock().now().nanoseconds * 1e-9 - stamp_s)
        if chunk.phase != self._phase:
            self._phase = chunk.phase
            reason = f" ({self.expert.last_reason})" if self.expert.outcome else ""
            self.get_logger().info(f"phase: {chunk.phase}{reason}, plan "
                                   f"{self.expert.attempts} at {chunk.plan_time_s:.2f} s")

    def _publish_diagnostics(self) -> None:
        expert = self.expert
        extra = [("phase", self._phase or "none"), ("attempts", str(expert.attempts)),
                 ("outcome", expert.outcome or "running"),
                 ("episode", "none" if expert.task is None else str(expert.task.episode))]
        status = stage_status(f"{NAME}: chunks", self.stats.summary(time.monotonic()),
                              self.profile.name, stale_after_s=1.0, extra=extra)
        self.diag_pub.publish(diagnostic_array([status], self.get_clock().now().to_msg()))


def main(args: list[str] | None = None) -> None:
    """Console entry point ``expert``; exits 1 on a profile it cannot drive."""
    run_node(ExpertNode, args, name=NAME)


if __name__ == "__main__":
    main()
