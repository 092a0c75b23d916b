"""sim: the simulated robot on the MuJoCo tabletop, standing in for ros2_control and the drivers.

Subscriptions:
    <profile command_interface.topic>: trajectory_msgs/JointTrajectory for a
        ``joint_trajectory_controller`` (points ``time_from_start`` after ``header.stamp``, 0:
        now; joints mapped by name; the target moves linearly in time from receipt), or
        std_msgs/Float64MultiArray for a ``forward_position_controller`` (one position per
        profile joint, profile order). Reliable depth 1. A command with wrong names or length,
        a NaN or inf, or any point outside the robot's hard position range is refused whole
        (logged, counted); the target being executed stays.
    hv2r/gripper (trajectory_msgs/JointTrajectory, joint ``gripper``, commands in [0, 1], >= 0.5
        closes), reliable depth 5: executed in time like the arm's trajectory.
Publications:
    joint_states (sensor_msgs/JointState, sensor QoS): profile joints (and the gripper joint
        where the profile has one), position [rad or m] and velocity, stamped with the time of
        the state, at ``control_rate_hz``.
    <camera>_camera/image_raw for each of ``cameras`` (the profile's camera topic where it
        lists the camera; sensor_msgs/Image rgb8, sensor QoS): ``image_width_px`` x
        ``image_height_px`` at ``camera_rate_hz``, stamped with the time of the rendered state.
    sim/task (std_msgs/String JSON, reliable + transient local): robot, episode, layout (cubes,
        pads, the goal pair), grasp point (``hv2r_ros.sim.task_messages``); on every reset.
    sim/ground_truth (std_msgs/String JSON, reliable depth 1, ``ground_truth_rate_hz``): object
        poses, grasped object, success, target distance [m], reason, stamp.
    diagnostics (diagnostic_msgs/DiagnosticArray, 1 Hz): step rate and time, render rate and
        time, commands accepted and refused (by reason), episode, success.
Services:
    ~/reset (std_srvs/Trigger): next episode, a new layout from the next seed; the arm returns
        home. Hold the stack first (safety filter inactive): the jump is not a motion.
Parameters (``PARAMS``): robot, seed, control_rate_hz [Hz] (0: the profile's), camera_rate_hz
    [Hz], image_width_px, image_height_px [px], cameras, ground_truth_rate_hz [Hz],
    joint_noise_std [rad or m], image_noise_std [8-bit levels] (sensor noise: without it, frames
    of a still scene are bit-identical, which the policy's observation gate refuses as a frozen
    camera).
The world advances in real time on the node clock: each control tick steps it by the time since
the previous tick (a stall longer than ``MAX_CATCH_UP_S`` is skipped, with a warning).
"""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.stats import StageStats
from hv2r_ros.ros import actions, qos
from hv2r_ros.ros.diagnostics import diagnostic_array, stage_status
from hv2r_ros.ros.image import array_to_image
from hv2r_ros.ros.params import ParamSpec, add_validator, declare
from hv2r_ros.ros.spin import run_node
from hv2r_ros.sim.camera_noise import ImageNoise
from hv2r_ros.sim.command_interfaces import CommandInterface
from hv2r_ros.sim.controller import ControllerLimits
from hv2r_ros.sim.task import sample_layout
from hv2r_ros.sim.task_messages import ground_truth_to_json, task_to_json
from hv2r_ros.sim.world import SimConfig, SimWorld

NAME = "sim"
MAX_CATCH_UP_S = 0.25  # longest span one tick simulates [s]; longer stalls are skipped
CAMERAS = ("wrist", "overhead", "side", "front")
PARAMS = (
    ParamSpec("robot", "str", "panda", "Robot profile name or profile YAML path", read_only=True),
    ParamSpec("seed", "int", 0, "Layout seed of the first episode; each ~/reset takes the next",
              min=0, max=2**31 - 1, read_only=True),
    ParamSpec("control_rate_hz", "float", 0.0, "Step and joint_states rate [Hz]; 0: the "
              "profile's control rate", min=0.0, max=1000.0, read_only=True),
    ParamSpec("camera_rate_hz", "float", 15.0, "Render and image rate of every camera [Hz]",
              min=0.1, max=60.0, read_only=True),
    ParamSpec("image_width_px", "int", 224, "Image width [px]", min=16, max=640, read_only=True),
    ParamSpec("image_height_px", "int", 224, "Image height [px]", min=16, max=480,
              read_only=True),
    ParamSpec("cameras", "str[]", ["wrist", "overhead"], "Cameras to publish", read_only=True,
              choices=CAMERAS),
    ParamSpec("ground_truth_rate_hz", "float", 20.0, "sim/ground_truth rate [Hz]", min=0.1,
              max=1000.0, read_only=True),
    ParamSpec("joint_noise_std", "float", 0.0, "Standard deviation of the measured joint "
              "positions' noise [rad or m]", min=0.0, max=0.1, read_only=True),
    ParamSpec("image_noise_std", "float", 2.0, "Standard deviation of the images' sensor noise "
              "[8-bit levels]; 0: none (frames of a still scene are then bit-identical, which "
              "the policy refuses as a frozen camera)", min=0.0, max=50.0, read_only=True),
)


class SimNode(Node):
    """``SimWorld`` + ``CommandInterface`` on timers; every callback in the default group."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NAME, **kwargs)
        self.world: SimWorld | None = None  # destroy_node runs on a construction error too
        p = self.params = declare(self, PARAMS)
        add_validator(self, PARAMS)
        self.profile = profile = load_robot_profile(p["robot"])
        interface = profile.command_interface
        rate_hz = p["control_rate_hz"] or profile.control_rate_hz
        limits = ControllerLimits.from_profile(profile)  # the world's controller enforces them
        self.commands = CommandInterface(interface.type, profile.joint_names, limits.position_min,
                                         limits.position_max, profile.home, file=profile.file)
        self.episode = 0
        self.world = SimWorld(profile, SimConfig(dt_s=1.0 / rate_hz, seed=p["seed"],
                                                 joint_noise_std=p["joint_noise_std"]),
                              sample_layout(profile.workspace, p["seed"]))
        self.image_noise = ImageNoise(p["image_noise_std"], seed=p["seed"])
        self.step_stats, self.render_stats = StageStats(), StageStats()
        self.state_msg = JointState(name=list(profile.joint_names) + (
            [profile.gripper.joint] if profile.gripper is not None else []))
        command_type = JointTrajectory if interface.type == self.commands.KINDS[0] \
            else Float64MultiArray
        self.create_subscription(command_type, interface.topic, self._on_command,
                                 qos.command_qos())
        self.create_subscription(JointTrajectory, "hv2r/gripper", self._on_gripper,
                                 qos.action_qos())
        self.state_pub = self.create_publisher(JointState, "joint_states", qos.sensor_qos())
        self.image_pubs = {}
        for name in p["cameras"]:
            camera = profile.cameras.get(name)
            topic = camera.topic if camera is not None and camera.topic \
                else f"{name}_camera/image_raw"
            self.image_pubs[name] = (self.create_publisher(Image, topic, qos.sensor_qos()),
                                     Image())
        self.task_pub = self.create_publisher(String, "sim/task", qos.latched_qos())
        self.truth_pub = self.create_publisher(String, "sim/ground_truth", qos.command_qos())
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics",
                                              qos.diagnostics_qos())
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._mark_state(self.get_clock().now())
        self._succeeded = False
        self._publish_task()
        self.create_timer(1.0 / rate_hz, self._tick)
        self.create_timer(1.0 / p["camera_rate_hz"], self._render)
        self.create_timer(1.0 / p["ground_truth_rate_hz"], self._publish_truth)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(
            f"{profile.name}: {interface.type} on '{interface.topic}', {rate_hz:g} Hz, cameras "
            f"{list(self.image_pubs)} {p['image_width_px']}x{p['image_height_px']} at "
            f"{p['camera_rate_hz']:g} Hz, seed {p['seed']} ({limits.source})")

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _mark_state(self, now) -> None:
        """The world's state is that of ``now`` (stamps of joint_states, images, truth)."""
        self._last_ns, self._state_s = now.nanoseconds, now.nanoseconds * 1e-9
        self._state_stamp = now.to_msg()

    def _on_command(self, msg) -> None:
        if isinstance(msg, JointTrajectory):
            chunk, times, stamp_s, status = actions.read_joint_chunk(msg, self.profile.joint_names)
            reason = self.commands.trajectory(chunk, times, stamp_s, self._now_s(),
                                              f"{status.value} {list(msg.joint_names)}")
        else:
            reason = self.commands.forward(msg.data)
        if reason:
            self.get_logger().warning(f"command refused: {reason}", throttle_duration_sec=1.0)

    def _on_gripper(self, msg: JointTrajectory) -> None:
        commands, times, stamp_s, status = actions.read_gripper_chunk(msg)
        reason = self.commands.gripper_trajectory(commands, times, stamp_s, self._now_s(),
                                                  f"{status.value} {list(msg.joint_names)}")
        if reason:
            self.get_logger().warning(f"gripper command refused: {reason}",
                                      throttle_duration_sec=1.0)

    def _tick(self) -> None:
        now = self.get_clock().now()
        now_s = now.nanoseconds * 1e-9
        dt_s = (now.nanoseconds - self._last_ns) * 1e-9  # exact: epoch seconds lose ~0.2 us
        if dt_s <= 0.0:
            return
        if dt_s > MAX_CATCH_UP_S:
            self.get_logger().warning(f"stalled {dt_s * 1e3:.0f} ms: simulating "
                                      f"{MAX_CATCH_UP_S * 1e3:.0f} ms of it")
            dt_s = MAX_CATCH_UP_S
        q_target, gripper = self.commands.targets(now_s)
        start = time.perf_counter()
        if not self.world.step(q_target, gripper, dt_s):
            self.get_logger().error(f"world refused a command: {self.world.last_refusal}")
        self.step_stats.record(time.monotonic(), time.perf_counter() - start)
        self._mark_state(now)
        msg, world = self.state_msg, self.world
        position, velocity = world.q.tolist(), world.qd.tolist()
        if self.profile.gripper is not None:
            g = self.profile.gripper
            position.append(g.open_position + (g.closed_position - g.open_position)
                            * world.gripper_closure)
            velocity.append(0.0)
        msg.header.stamp = self._state_stamp
        msg.position, msg.velocity = position, velocity
        self.state_pub.publish(msg)

    def _render(self) -> None:
        width, height = self.params["image_width_px"], self.params["image_height_px"]
        start = time.perf_counter()
        for name, (publisher, msg) in self.image_pubs.items():
            rgb = self.image_noise(self.world.render(name, width, height))
            publisher.publish(array_to_image(rgb, "rgb8", self._state_stamp,
                                             f"{name}_camera_optical_frame", out_msg=msg))
        self.render_stats.record(time.monotonic(), time.perf_counter() - start)

    def _publish_task(self) -> None:
        world = self.world
        self.task_pub.publish(String(data=task_to_json(
            self.profile.name, self.episode, self.profile.base_frame, world.layout,
            world.grasp_offset_m, world.mount.closing_axis)))

    def _publish_truth(self) -> None:
        truth = self.world.ground_truth()
        if truth.success != self._succeeded:
            self._succeeded = truth.success
            self.get_logger().info(f"episode {self.episode}: "
                                   f"{'success' if truth.success else truth.reason} at "
                                   f"{truth.time_s:.2f} s")
        self.truth_pub.publish(String(data=ground_truth_to_json(truth, self.episode,
                                                                self._state_s)))

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        self.episode += 1
        seed = self.params["seed"] + self.episode
        self.world.reset(sample_layout(self.profile.workspace, seed))
        self.commands.reset(self.profile.home)
        self._succeeded = False
        self._publish_task()
        layout = self.world.layout
        response.success = True
        response.message = (f"episode {self.episode}: layout seed {seed}, move "
                            f"{layout.target_object} to {layout.target_pad}")
        self.get_logger().info(f"~/reset: {response.message}")
        return response

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        c = self.commands
        extra = [("episode", str(self.episode)), ("seed", str(self.world.layout.seed)),
                 ("sim_time_s", f"{self.world.time_s:.2f}"), ("success", str(self._succeeded)),
                 ("commands_accepted", str(c.accepted)),
                 *((f"refused.{kind}", str(n)) for kind, n in sorted(c.refusals.items())),
                 ("last_refusal", c.last_refusal or "none"),
                 ("world_refusals", str(self.world.refusals))]
        self.diag_pub.publish(diagnostic_array([
            stage_status(f"{NAME}: step", self.step_stats.summary(now), self.profile.name,
                         stale_after_s=1.0, extra=extra),
            stage_status(f"{NAME}: cameras", self.render_stats.summary(now), self.profile.name,
                         stale_after_s=1.0),
        ], self._now_s()))

    def destroy_node(self) -> None:
        if self.world is not None:
            self.world.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Console entry point ``sim``; exits 1 on a profile or parameter it cannot run."""
    run_node(SimNode, args, name=NAME)


if __name__ == "__main__":
    main()
