"""The sim node: ros2_control-like command handling, sensor streams, task and ground truth.

The command logic (``hv2r_ros.sim.command_interfaces``) and the JSON payloads
(``hv2r_ros.sim.task_messages``) are tested without ROS first. The node tests run it with real
rclpy in their own context and ``ROS_DOMAIN_ID``, on one executor thread with a probe node that
plays the controller's client and records what the node publishes. Rates and speeds are measured
from the published stamps.
"""

import json
import math
import threading

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

import ros_testing
from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.ros import qos
from hv2r_ros.ros.actions import gripper_chunk_to_msg
from hv2r_ros.ros.image import image_to_array
from hv2r_ros.ros.joints import joint_trajectory
from hv2r_ros.ros.stamps import to_nanoseconds, to_seconds
from hv2r_ros.sim.command_interfaces import CommandInterface, TimedTrajectory
from hv2r_ros.sim.controller import ControllerLimits
from hv2r_ros.sim.task import sample_layout
from hv2r_ros.sim.task_messages import (
    ground_truth_from_json, ground_truth_to_json, task_from_json, task_to_json)
from hv2r_ros.sim.world import GroundTruth

DISCOVERY_S = 10.0  # discovery usually takes < 0.3 s, now and then ~3 s


@pytest.fixture(scope="module")
def panda():
    return load_robot_profile("panda")


def interface_of(profile):
    limits = ControllerLimits.from_profile(profile)
    return CommandInterface(profile.command_interface.type, profile.joint_names,
                            limits.position_min, limits.position_max, profile.home)


# --- command logic and payloads, no ROS ----------------------------------------------------------

def test_trajectory_moves_linearly_from_the_current_target_to_each_point_then_stays():
    trajectory = TimedTrajectory(np.array([0.0, 1.0]))
    trajectory.start(np.array([[1.0, 1.0], [3.0, 0.0]]), np.array([0.5, 1.5]), 10.0, 10.1)
    assert np.allclose(trajectory.sample(10.1), [0.0, 1.0])      # from the target at receipt
    assert np.allclose(trajectory.sample(10.3), [0.5, 1.0])      # halfway to point 0 at 10.5
    assert np.allclose(trajectory.sample(11.0), [2.0, 0.5])      # halfway between the points
    assert np.allclose(trajectory.sample(99.0), [3.0, 0.0])      # stays on the last point
    # A new trajectory starts from where the current one is now, not from its end.
    trajectory.start(np.array([[0.0, 0.0]]), np.array([1.0]), 0.0, 11.0)  # stamp 0: now
    assert np.allclose(trajectory.sample(11.0), [2.0, 0.5])
    assert np.allclose(trajectory.sample(11.5), [1.0, 0.25])
    assert np.allclose(trajectory.sample(12.0), [0.0, 0.0])


def test_points_already_past_are_skipped_and_an_unstamped_past_point_is_taken_at_once():
    trajectory = TimedTrajectory(np.zeros(1))
    trajectory.start(np.array([[5.0], [6.0]]), np.array([0.1, 1.0]), 100.0, 100.5)
    assert np.allclose(trajectory.sample(100.5), [0.0])        # point 0 (due 100.1) is skipped
    assert np.allclose(trajectory.sample(100.75), [3.0])
    trajectory.start(np.array([[7.0]]), np.array([0.0]), 0.0, 100.0)  # due now
    assert np.allclose(trajectory.sample(100.0), [7.0])


def test_a_bad_point_anywhere_refuses_the_whole_command_and_keeps_the_target(panda):
    commands = interface_of(panda)
    home = np.array(panda.home)
    good = home + 0.1
    bad_range, bad_nan = good.copy(), good.copy()
    bad_range[3] = 0.5                      # panda_joint4 must stay below -0.0698 rad
    bad_nan[6] = math.nan
    reasons = [commands.trajectory(points, np.array([0.1, 0.2]), 0.0, 1.0)
               for points in (np.vstack([good, bad_range]), np.vstack([good, bad_nan]))]
    assert "panda_joint4 (point 1) outside" in reasons[0]
    assert reasons[1] == "non-finite target for panda_joint7 (point 1)"
    assert commands.trajectory(None, None, 0.0, 1.0, "wrong names ['a']") == "wrong names ['a']"
    assert "ended 400.0 ms ago" in commands.trajectory(good[None, :], np.array([0.1]), 0.5, 1.0)
    assert commands.gripper_trajectory(np.array([1.5]), np.array([0.1]), 0.0, 1.0) != ""
    assert commands.refusals == {"trajectory": 3, "late": 1, "gripper": 1}
    assert commands.accepted == 0
    target, gripper = commands.targets(5.0)
    assert np.array_equal(target, home) and gripper == 0.0


def test_forward_commands_need_one_finite_in_range_value_per_joint():
    so100 = load_robot_profile("so100")
    commands = interface_of(so100)
    home = np.array(so100.home)
    assert "4 values" in commands.forward(home[:4])
    assert "non-finite" in commands.forward(np.append(home[:4], math.inf))
    assert commands.forward(home + 0.05) == "" and commands.accepted == 1
    assert np.allclose(commands.targets(0.0)[0], home + 0.05)
    with pytest.raises(ConfigError, match="command_interface.type"):
        CommandInterface("unitree_arm_sdk", so100.joint_names, home, home, home)


def test_task_and_ground_truth_survive_the_json_round_trip(panda):
    layout = sample_layout(panda.workspace, 11)
    task = task_from_json(task_to_json("panda", 3, "panda_link0", layout, np.array([0, 0, .01]),
                                       np.array([0.0, 1.0, 0.0])))
    assert task.layout == layout and task.episode == 3 and task.robot == "panda"
    assert np.allclose(task.grasp_offset_m, [0, 0, 0.01])
    poses = {o.name: np.array([*o.position_m, 1.0, 0.0, 0.0, 0.0]) for o in layout.objects}
    truth = GroundTruth(poses, layout.objects[0].name, False, 0.25, "far", 1.5)
    sample = ground_truth_from_json(ground_truth_to_json(truth, 3, 1234.5))
    assert sample.episode == 3 and sample.stamp_s == 1234.5
    assert sample.truth.grasped == truth.grasped and sample.truth.reason == "far"
    assert all(np.array_equal(sample.truth.object_poses[k], v) for k, v in poses.items())
    with pytest.raises(ValueError, match="object_poses"):
        ground_truth_from_json(json.dumps({"episode": 0}))
    with pytest.raises(ValueError, match="not JSON"):
        task_from_json("{")


# --- the node on rclpy ---------------------------------------------------------------------------

class Rig:
    """The sim node and a probe in their own context, spun by one executor thread."""

    def __init__(self, robot="panda", **params):
        from hv2r_ros.nodes.sim import SimNode

        ros_testing.use_fresh_domain()
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        overrides = [Parameter(k, value=v) for k, v in dict(robot=robot, **params).items()]
        self.node = SimNode(context=self.context, parameter_overrides=overrides)
        self.profile = self.node.profile
        self.probe = Node("probe", context=self.context)
        self.lock = threading.Lock()
        self.states, self.images, self.tasks, self.truths = [], {}, [], []
        self.probe.create_subscription(JointState, "joint_states", self._on_state,
                                       qos.sensor_qos(5))
        for name in ("wrist", "overhead"):
            self.images[name] = []
            self.probe.create_subscription(
                Image, f"{name}_camera/image_raw",
                lambda msg, n=name: self._append(self.images[n], msg), qos.sensor_qos(5))
        self.probe.create_subscription(String, "sim/task",
                                       lambda m: self._append(self.tasks, m), qos.latched_qos())
        self.probe.create_subscription(String, "sim/ground_truth",
                                       lambda m: self._append(self.truths, m), qos.command_qos())
        interface = self.profile.command_interface
        kind = JointTrajectory if interface.type == "joint_trajectory_controller" \
            else Float64MultiArray
        self.command_pub = self.probe.create_publisher(kind, interface.topic, qos.command_qos())
        self.gripper_pub = self.probe.create_publisher(JointTrajectory, "hv2r/gripper",
                                                       qos.action_qos())
        self.reset_client = self.probe.create_client(Trigger, "sim/reset")
        self.executor = SingleThreadedExecutor(context=self.context)
        for node in (self.node, self.probe):
            self.executor.add_node(node)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()
        ros_testing.wait_for(lambda: self.command_pub.get_subscription_count() > 0
                             and self.gripper_pub.get_subscription_count() > 0 and self.states,
                             DISCOVERY_S, "the sim's subscriptions and first joint state")

    def _spin(self):
        while not self.stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def _append(self, into, msg):
        with self.lock:
            into.append(msg)

    def _on_state(self, msg):
        with self.lock:
            self.states.append((to_seconds(msg.header.stamp), list(msg.name),
                                np.array(msg.position), np.array(msg.velocity),
                                msg.header.stamp))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5.0)
        alive = self.thread.is_alive()
        self.node.destroy_node()
        self.probe.destroy_node()
        self.executor.shutdown()
        rclpy.shutdown(context=self.context)
        assert not alive, "the executor thread did not stop"

    def states_since(self, t_s):
        with self.lock:
            return [s for s in self.states if s[0] >= t_s]

    def arm(self, state):
        return state[2][:len(self.profile.joint_names)]

    def now(self):
        return self.node.get_clock().now().nanoseconds * 1e-9

    def trajectory(self, positions, times_s, names=None, stamp_s=0.0):
        names = names or self.profile.joint_names
        self.command_pub.publish(joint_trajectory(names, positions, times_s, stamp_s))


@pytest.mark.ros
def test_streams_joint_states_and_both_cameras_with_increasing_stamps():
    with Rig(camera_rate_hz=10.0, image_width_px=96, image_height_px=72, seed=5) as rig:
        start = rig.now()
        ros_testing.wait_for(lambda: rig.now() - start > 2.0, 5.0, "two seconds")
        with rig.lock:
            states, images = list(rig.states), {k: list(v) for k, v in rig.images.items()}
            tasks, truths = list(rig.tasks), list(rig.truths)
        names = list(rig.profile.joint_names) + [rig.profile.gripper.joint]
        assert all(s[1] == names for s in states)
        stamps = np.array([s[0] for s in states])
        assert np.all(np.diff(stamps) > 0.0)
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        assert 60.0 < rate <= 101.0, rate            # 100 Hz, less when the machine is busy
        for name, msgs in images.items():
            assert msgs, name
            msg = msgs[-1]
            assert (msg.encoding, msg.width, msg.height) == ("rgb8", 96, 72)
            pixels, _ = image_to_array(msg)
            assert pixels.shape == (72, 96, 3) and pixels.std() > 5.0    # a scene, not a blank
            cam_stamps = np.array([to_seconds(m.header.stamp) for m in msgs])
            assert np.all(np.diff(cam_stamps) > 0.0)
            cam_rate = (len(cam_stamps) - 1) / (cam_stamps[-1] - cam_stamps[0])
            assert 6.0 < cam_rate <= 10.5, (name, cam_rate)
        both = {to_seconds(m.header.stamp) for m in images["wrist"]} & {
            to_seconds(m.header.stamp) for m in images["overhead"]}
        assert len(both) >= 0.8 * len(images["wrist"]), "both cameras render the same states"
        task = task_from_json(tasks[0].data)
        assert task.layout == sample_layout(rig.profile.workspace, 5) and task.episode == 0
        truth = ground_truth_from_json(truths[-1].data)
        assert not truth.truth.success and set(truth.truth.object_poses) == {
            o.name for o in task.layout.objects}
        print(f"\njoint_states {rate:.1f} Hz, cameras {cam_rate:.1f} Hz")


@pytest.mark.ros
def test_a_trajectory_moves_the_joints_within_the_vendor_velocity_limit():
    with Rig(camera_rate_hz=1.0) as rig:
        home = np.array(rig.profile.home)
        target = home + np.array([0.6, 0.0, 0.0, 0.5, 0.0, 0.0, -0.4])
        start = rig.now()
        rig.trajectory(target[None, :], [0.05])  # asks for ~12 rad/s: the controller limits it
        ros_testing.wait_for(lambda: np.allclose(rig.arm(rig.states[-1]), target, atol=1e-6), 5.0,
                             "the joints at the target")
        states = rig.states_since(start)
        # Stamp differences in exact nanoseconds: epoch seconds as floats lose ~0.2 us.
        dt_s = np.diff([to_nanoseconds(s[4]) for s in states]) * 1e-9
        q = np.array([rig.arm(s) for s in states])
        speed = np.abs(np.diff(q, axis=0)) / dt_s[:, None]
        vendor = np.array(rig.profile.vendor_limits.velocity_max)
        assert np.all(speed <= vendor * (1.0 + 1e-9))
        assert speed[:, 0].max() > 0.9 * vendor[0]   # as fast as the robot allows, no slower
        reported = np.array([s[3][:7] for s in states])
        assert np.all(np.abs(reported) <= vendor * (1.0 + 1e-9))
        print(f"\npeak joint speed / vendor limit: {np.max(speed / vendor):.4f}")


@pytest.mark.ros
def test_nan_out_of_range_and_misnamed_commands_are_refused_and_nothing_moves():
    with Rig(camera_rate_hz=1.0) as rig:
        home = np.array(rig.profile.home)
        out_of_range, far = home.copy(), home + 0.3
        out_of_range[3] = 0.5
        misnamed = [*rig.profile.joint_names[:-1], "panda_joint8"]
        start = rig.now()
        nan_msg = joint_trajectory(rig.profile.joint_names, far[None, :], [0.5], 0.0)
        nan_msg.points[0].positions[2] = math.nan  # the writer refuses NaN: put it in by hand
        bad_gripper = gripper_chunk_to_msg(np.array([1.0]), np.array([0.1]), 0.0)
        bad_gripper.points[0].positions[0] = 1.5
        refusals = rig.node.commands.refusals
        # One at a time: the command topic keeps the last message only, as a controller's does.
        range_msg = joint_trajectory(rig.profile.joint_names, np.vstack([far, out_of_range]),
                                     [0.2, 0.4], 0.0)
        for publish, kind, count in (
                (lambda: rig.command_pub.publish(nan_msg), "trajectory", 1),
                (lambda: rig.command_pub.publish(range_msg), "trajectory", 2),
                (lambda: rig.trajectory(far[None, :], [0.2], names=misnamed), "trajectory", 3),
                (lambda: rig.gripper_pub.publish(bad_gripper), "gripper", 1)):
            publish()
            ros_testing.wait_for(lambda: refusals[kind] == count, 5.0, f"{kind} refusal {count}")
        wait_from = rig.now()
        ros_testing.wait_for(lambda: rig.now() - wait_from > 0.5, 2.0, "half a second")
        states = rig.states_since(start)
        assert len(states) > 30
        assert all(np.array_equal(rig.arm(s), home) for s in states)
        assert all(s[2][-1] == rig.profile.gripper.open_position for s in states)
        assert rig.node.commands.accepted == 0 and rig.node.world.refusals == 0
        # The same robot still follows a valid command.
        rig.trajectory(far[None, :], [0.5])
        ros_testing.wait_for(lambda: not np.array_equal(rig.arm(rig.states[-1]), home), 2.0,
                             "motion after a valid command")


@pytest.mark.ros
def test_forward_position_controller_drops_wrong_lengths():
    with Rig("so100", camera_rate_hz=1.0, cameras=["overhead"]) as rig:
        home = np.array(rig.profile.home)
        rig.command_pub.publish(Float64MultiArray(data=list(home[:4] + 0.2)))
        ros_testing.wait_for(lambda: rig.node.commands.refusals["forward"] == 1, 5.0, "a refusal")
        assert np.array_equal(rig.arm(rig.states[-1]), home)
        target = home + np.array([0.2, -0.1, 0.1, 0.0, 0.3])
        rig.command_pub.publish(Float64MultiArray(data=list(target)))
        ros_testing.wait_for(lambda: np.allclose(rig.arm(rig.states[-1]), target, atol=1e-6), 5.0,
                             "the joints at the forward command")


@pytest.mark.ros
def test_reset_starts_the_next_episode_from_the_next_seed():
    with Rig(camera_rate_hz=1.0, seed=40) as rig:
        rig.trajectory((np.array(rig.profile.home) + 0.2)[None, :], [0.3])
        ros_testing.wait_for(lambda: rig.node.commands.accepted == 1 and rig.tasks, 5.0,
                             "the command and the first task")
        assert task_from_json(rig.tasks[0].data).episode == 0
        ros_testing.wait_for(rig.reset_client.service_is_ready, DISCOVERY_S, "~/reset")
        future = rig.reset_client.call_async(Trigger.Request())
        ros_testing.wait_for(future.done, 5.0, "the reset")
        assert future.result().success and "seed 41" in future.result().message
        ros_testing.wait_for(lambda: task_from_json(rig.tasks[-1].data).episode == 1, 5.0,
                             "the second episode's task")
        assert task_from_json(rig.tasks[-1].data).layout == sample_layout(rig.profile.workspace, 41)
        after = rig.now()
        ros_testing.wait_for(lambda: rig.states_since(after), 2.0, "a state after the reset")
        assert np.array_equal(rig.arm(rig.states_since(after)[0]), rig.profile.home)


@pytest.mark.ros
def test_a_robot_without_a_ros2_control_interface_is_a_named_error():
    from hv2r_ros.nodes.sim import SimNode

    ros_testing.use_fresh_domain()
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(ConfigError, match="g1.yaml: command_interface.type.*unitree_arm_sdk"):
            SimNode(context=context, parameter_overrides=[Parameter("robot", value="g1")])
    finally:
        rclpy.shutdown(context=context)  # destroys the half-built node: must not raise
