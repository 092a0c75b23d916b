"""policy: runs the ONNX encoder and policy on consistent observations, publishes action chunks.

Subscriptions (one callback group with inference: a single-threaded executor runs them in
turn, and frames that arrive during an inference wait for it, the newest kept by the depth-1
queue. A second thread for inference cost more than it saved on two cores: Python threads
contend for the interpreter lock and the multi-threaded executor's dispatch costs CPU per
callback; measured in docs/performance.md):
    <camera>_camera/image_raw (sensor_msgs/Image, sensor QoS depth ``sensor_qos_depth``): one
        per camera in the policy's ``camera_order`` (the profile's ``cameras.<name>.topic``
        when it lists the camera), any colour encoding of ``hv2r_ros.ros.image``.
    joint_states (sensor_msgs/JointState, sensor QoS): mapped by name into the profile's order.
    hv2r/task/goal_embedding (std_msgs/Float32MultiArray, reliable + transient local): the goal;
        a wrong length or a NaN is ignored with a throttled warning.
Publications:
    hv2r/action (trajectory_msgs/MultiDOFJointTrajectory for ee_delta / ee_absolute policies:
        absolute poses [m, unit quaternion] per end-effector frame in the base frame;
        JointTrajectory for joint_position policies [rad or m]; reliable depth 5):
        ``header.stamp`` = capture time of the observation (oldest camera stamp), point i at
        ``(i + 1) / control_rate_hz`` [s].
    hv2r/gripper (trajectory_msgs/JointTrajectory, joint ``gripper``, commands in [0, 1],
        same stamp and times): only for policies with a gripper.
    diagnostics (diagnostic_msgs/DiagnosticArray, ``diagnostics_rate_hz``): chunk rate,
        capture-to-publication latency, encoder / policy / total compute latency p50/p99 [ms],
        holds by reason, inferences started by frames and by the timer.
Parameters (``PARAMS``): robot, models_dir, providers, inference_rate_hz [Hz],
    inference_trigger, max_age_s [s] (0: the profile's observation_max_age_s), max_skew_s [s],
    sensor_qos_depth, diagnostics_rate_hz [Hz].
Inference starts when the last frame of a fresh set arrives (every camera newer than the last
inference's, all captured within a quarter period of each other) and an inference is due at
``inference_rate_hz`` (``inference_trigger: frames``, ``hv2r_ros.core.frame_trigger``: no wait
for a timer tick), or at every tick of a timer at that rate (``timer``). With ``frames`` the
timer still runs a step once one is overdue (frames stopped), so holds are counted.
Nothing is published on a hold: missing, stale, future, skewed or frozen inputs, no goal, or a
non-finite policy output. A frame whose pixels equal the camera's previous frame keeps the stamp
of the first one (a frozen driver re-sending one image with fresh stamps ages out after
``max_age_s``; real sensors' noise makes consecutive frames differ). Construction raises (main exits non-zero) when the models do not load
or do not match the robot profile.
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32MultiArray
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

from hv2r_ros.core.frame_trigger import FrameTrigger
from hv2r_ros.core.models.contract import ModelContractError
from hv2r_ros.core.models.runtime import ModelPair
from hv2r_ros.core.observation import ObservationGate, PolicyRunner
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.status import Status
from hv2r_ros.ros import actions, qos
from hv2r_ros.ros.diagnostics import diagnostic_array, stage_status
from hv2r_ros.ros.image import image_to_array, to_rgb
from hv2r_ros.ros.joints import JointStateReader
from hv2r_ros.ros.params import ParamSpec, add_validator, declare
from hv2r_ros.ros.stamps import to_seconds
from hv2r_ros.ros.spin import run_node, wire_or_destroy

PARAMS = (
    ParamSpec("robot", "str", "panda", "Robot profile name or YAML path", read_only=True),
    ParamSpec("models_dir", "str", "", "Folder with encoder.onnx and policy.onnx (required)",
              read_only=True),
    ParamSpec("providers", "str[]", ["tensorrt", "cuda", "cpu"], "onnxruntime providers to "
              "try, in order", read_only=True),
    ParamSpec("inference_rate_hz", "float", 10.0, "Highest inference rate [Hz]", min=0.1,
              max=200.0, read_only=True),
    ParamSpec("inference_trigger", "str", "frames", "frames: infer on the last frame of a "
              "fresh set of camera frames, when due; timer: at every tick of a timer at "
              "inference_rate_hz", choices=("frames", "timer"), read_only=True),
    ParamSpec("max_age_s", "float", 0.0, "Oldest usable camera frame / joint state [s]; 0: "
              "the profile's safety.observation_max_age_s", min=0.0, max=1.0, read_only=True),
    ParamSpec("max_skew_s", "float", 0.05, "Largest spread of the camera and joint stamps of "
              "one observation [s]", min=0.0, max=1.0, read_only=True),
    ParamSpec("sensor_qos_depth", "int", 1, "Queue depth of camera and joint_states "
              "subscriptions", min=1, max=qos.SENSOR_DEPTH_MAX, read_only=True),
    ParamSpec("diagnostics_rate_hz", "float", 1.0, "diagnostics rate [Hz]", min=0.1, max=10.0,
              read_only=True),
)


def _check_against_profile(spec, profile, file: str) -> None:
    """The policy's joints (and frames) must be the profile's, in the profile's order."""
    if tuple(spec.joint_order) != tuple(profile.joint_names):
        raise ModelContractError(f"must equal the joints of robot profile {profile.name} "
                                 f"({profile.file})", file=file, field="hv2r.joint_order",
                                 value=list(spec.joint_order),
                                 choices=list(profile.joint_names))
    if spec.action_space != "joint_position" and \
            tuple(spec.end_effector_frames) != profile.end_effector_frames:
        raise ModelContractError(f"must equal the end-effector frames of robot profile "
                                 f"{profile.name} ({profile.file})", file=file,
                                 field="hv2r.end_effector_frames",
                                 value=list(spec.end_effector_frames),
                                 choices=list(profile.end_effector_frames))


class PolicyNode(Node):
    """Wiring of ``PolicyRunner``: models load here, before the first message."""

    def __init__(self, node_name: str = "policy", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        wire_or_destroy(self, self._wire)

    def _wire(self) -> None:
        p = self.params = declare(self, PARAMS)
        add_validator(self, PARAMS)
        self.profile = profile = load_robot_profile(p["robot"])
        if not p["models_dir"]:
            raise ModelContractError("parameter models_dir is not set: a folder with "
                                     "encoder.onnx and policy.onnx", field="models_dir")
        models = ModelPair.load(p["models_dir"], p["providers"])
        spec = models.policy.spec
        _check_against_profile(spec, profile, str(models.policy.path))
        self.spec, self.cartesian = spec, spec.action_space != "joint_position"
        gate = ObservationGate(spec.camera_order, p["max_age_s"] or profile.observation_max_age_s,
                               p["max_skew_s"])
        poses = profile.kinematic_model() if spec.action_space == "ee_delta" else None
        self.runner = PolicyRunner(models.encoder, models.policy, gate, poses)
        self.reader = JointStateReader(profile.joint_names)
        sensor = qos.sensor_qos(p["sensor_qos_depth"])
        for name in spec.camera_order:
            camera = profile.cameras.get(name)
            topic = camera.topic if camera is not None and camera.topic \
                else f"{name}_camera/image_raw"
            self.create_subscription(Image, topic, lambda msg, n=name: self._on_image(n, msg),
                                     sensor)
        self.create_subscription(JointState, "joint_states", self._on_joint_state, sensor)
        self.create_subscription(Float32MultiArray, "hv2r/task/goal_embedding", self._on_goal,
                                 qos.latched_qos())
        self.action_pub = self.create_publisher(
            MultiDOFJointTrajectory if self.cartesian else JointTrajectory, "hv2r/action",
            qos.action_qos())
        self.gripper_pub = self.create_publisher(JointTrajectory, "hv2r/gripper",
                                                 qos.action_qos()) if spec.gripper else None
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics",
                                              qos.diagnostics_qos())
        self.trigger = FrameTrigger(spec.camera_order, p["inference_rate_hz"]) \
            if p["inference_trigger"] == "frames" else None
        # The last frame an inference needs starts it through a guard condition: the image
        # callback returns first, so the other cameras' callbacks are not delayed.
        self._frames_ready = self.create_guard_condition(self._infer)
        self.create_timer(1.0 / p["inference_rate_hz"], self._on_timer)
        self.create_timer(1.0 / p["diagnostics_rate_hz"], self._publish_diagnostics)
        self.get_logger().info(
            f"{profile.name}: {spec.action_space} policy, cameras {list(spec.camera_order)}, "
            f"H={spec.chunk_length} at {spec.control_rate_hz:g} Hz, inference up to "
            f"{p['inference_rate_hz']:g} Hz on {p['inference_trigger']}, encoder on "
            f"{models.encoder.provider}, policy on {models.policy.provider}, max age "
            f"{gate.max_age_s * 1e3:g} ms, max skew {gate.max_skew_s * 1e3:g} ms")

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, name: str, msg: Image) -> None:
        pixels, status = image_to_array(msg)
        if pixels is not None:
            pixels, status = to_rgb(pixels, msg.encoding)
        if pixels is None:
            self.runner.hold("invalid_image", status, f"{name}: {status.value}", self._now_s())
            self.get_logger().warning(f"{name} image dropped ({msg.encoding!r}): {status.value}",
                                      throttle_duration_sec=1.0)
            return
        stamp_s = to_seconds(msg.header.stamp)
        self.runner.gate.update_camera(name, pixels, stamp_s)
        if self.trigger is not None and self.trigger.on_frame(name, stamp_s, self._now_s()):
            self._frames_ready.trigger()

    def _on_joint_state(self, msg: JointState) -> None:
        positions, _, status = self.reader.read(msg)
        if positions is not None:
            self.runner.gate.update_joints(positions, to_seconds(msg.header.stamp))

    def _on_goal(self, msg: Float32MultiArray) -> None:
        if not self.runner.set_goal(msg.data):
            self.get_logger().warning(
                f"goal embedding ignored: {len(msg.data)} values, the encoder's embedding has "
                f"{self.spec.embedding_size} (or a value is not finite)",
                throttle_duration_sec=1.0)

    def _on_timer(self) -> None:
        if self.trigger is None or self.trigger.on_timer(self._now_s()):
            self._infer()

    def _infer(self) -> None:
        now_s = self._now_s()
        if self.trigger is not None:
            self.trigger.started(now_s)
        out, status = self.runner.step(now_s)
        if out is None:
            if status is Status.HOLD_NON_FINITE:
                self.get_logger().warning("policy output not finite: chunk dropped",
                                          throttle_duration_sec=1.0)
            return
        if self.cartesian:
            msg = actions.cartesian_chunk_to_msg(self.spec.end_effector_frames, out.targets,
                                                 out.times_s, out.stamp_s,
                                                 self.profile.base_frame)
        else:
            msg = actions.joint_chunk_to_msg(self.profile.joint_names, out.targets, out.times_s,
                                             out.stamp_s)
        self.action_pub.publish(msg)
        if self.gripper_pub is not None:
            self.gripper_pub.publish(actions.gripper_chunk_to_msg(out.gripper, out.times_s,
                                                                  msg.header.stamp))

    def _publish_diagnostics(self) -> None:
        r, now_s = self.runner, self._now_s()
        extra = [(f"{name}_latency_{q}_ms", f"{getattr(stats.summary(), f'latency_{q}_ms'):.2f}")
                 for name, stats in (("encoder", r.encoder_time), ("policy", r.policy_time),
                                     ("total", r.total_time)) for q in ("p50", "p99")]
        extra += [(f"holds_by_reason.{k}", str(v)) for k, v in sorted(r.holds.items())]
        if self.trigger is not None:
            extra += [("started_by_frames", str(self.trigger.frame_starts)),
                      ("started_by_timer", str(self.trigger.timer_starts))]
        extra.append(("last_reason", r.reason or "none"))
        status = stage_status(f"{self.get_name()}: inference", r.chunks.summary(now_s),
                              self.profile.name, stale_after_s=1.0, extra=extra)
        self.diag_pub.publish(diagnostic_array([status], self.get_clock().now().to_msg()))


def main(args: list[str] | None = None) -> None:
    """Run the node on a SingleThreadedExecutor (see the module docstring)."""
    run_node(PolicyNode, args)


if __name__ == "__main__":
    main()
