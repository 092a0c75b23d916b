"""`hv2r run` and the in-process runner on real rclpy, against synthetic inputs.

The command runs as a subprocess (its own process, as a user starts it) with a tiny joint-space
model pair for the Panda whose actions lie around the home pose, generated camera videos and a
synthetic robot that follows the commands. A probe in this process, in the same fresh ROS
domain, records the controller topic and joint_states. Checked: commands arrive and move
within the profile's position and velocity limits; SIGINT ends the process with code 0 within
a few seconds, its last command equals the measured state, nothing publishes afterwards and no
process of the run is left; Fast DDS in that process mapped the 16 MiB shared-memory segment of
the shipped profile. In-process: two robots side by side in two namespaces.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from onnx_fixtures import make_encoder, make_policy, policy_spec, write_pair
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

import ros_testing
from hv2r_ros.cli import main as hv2r_main
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.ros import qos
from hv2r_ros.ros.fastdds import shared_memory_segment_bytes
from hv2r_ros.ros.runner import build_stack
from hv2r_ros.ros.stack_plan import NODE_TYPES
from hv2r_ros.ros.stamps import to_seconds

pytestmark = pytest.mark.ros

DISCOVERY_S = 15.0
STOP_WITHIN_S = 5.0      # SIGINT to exit: braking (< 1 s for the Panda) + settle + shutdown
HOLD_TOLERANCE_RAD = 1e-5
SHM_SEGMENT_BYTES = 16 * 1024 * 1024
RUN = [sys.executable, "-c", "import sys; from hv2r_ros.cli import main; sys.exit(main())",
       "run"]


def joint_pair(directory: Path, robot: str) -> Path:
    """A tiny joint-position pair whose targets lie within 0.2 rad of the home pose."""
    profile = load_robot_profile(robot)
    n, gripper = len(profile.joint_names), profile.gripper is not None
    spec = policy_spec(joint_order=profile.joint_names, robot=robot, gripper=gripper,
                       camera_order=tuple(profile.cameras), action_size=n + gripper,
                       action_mean=tuple(map(float, profile.home)) + (0.5,) * gripper,
                       action_std=(0.2,) * (n + gripper), proprio_size=n,
                       proprio_mean=(0.0,) * n, proprio_std=(1.0,) * n)
    return write_pair(directory / robot, make_encoder(), make_policy(spec))


class Probe:
    """Records commands (by topic) and joint_states in its own context, on its own thread."""

    def __init__(self, topics):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("probe", context=self.context)
        self.lock = threading.Lock()
        self.commands = {topic: [] for topic, _ in topics}
        self.states = {topic: [] for topic, _ in topics}
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        for topic, state_topic in topics:
            kind = Float64MultiArray if topic.endswith("/commands") else JointTrajectory
            self.node.create_subscription(kind, topic, lambda m, t=topic: self._command(t, m),
                                          reliable)
            self.node.create_subscription(JointState, state_topic,
                                          lambda m, t=topic: self._state(t, m),
                                          qos.sensor_qos(5))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _command(self, topic, msg):
        if isinstance(msg, JointTrajectory):
            q, stamp = msg.points[0].positions, to_seconds(msg.header.stamp)
        else:
            q, stamp = msg.data, time.time()
        with self.lock:
            self.commands[topic].append((stamp, np.array(q)))

    def _state(self, topic, msg):
        with self.lock:
            self.states[topic].append(np.array(msg.position))

    def count(self, topic):
        with self.lock:
            return len(self.commands[topic])

    def close(self):
        self.executor.shutdown()
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def assert_within_limits(profile, commands):
    """Position limits on every command, the velocity limit between consecutive ones."""
    limits, period = profile.limits, profile.control_period_s
    q = np.array([c[1] for c in commands])
    assert np.all(q >= limits.position_min - 1e-9) and np.all(q <= limits.position_max + 1e-9)
    stamps = np.array([c[0] for c in commands])
    periods = np.maximum(1.0, np.round(np.diff(stamps) / period))  # a lost message spans two
    steps = np.abs(np.diff(q, axis=0)) / periods[:, None]
    assert np.all(steps <= limits.velocity_max * period * (1 + 1e-6) + 1e-12)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner_pairs")
    return {robot: joint_pair(root, robot) for robot in ("panda", "so100")}


def test_hv2r_run_commands_within_limits_and_ctrl_c_holds_then_exits_zero(models, tmp_path):
    profile = load_robot_profile("panda")
    topic = profile.command_interface.topic
    env = dict(os.environ)
    domain = ros_testing.use_fresh_domain(env)
    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        env.pop(name, None)
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    probe = Probe([(topic, "joint_states")])
    log = (tmp_path / "run.log").open("w+")  # a file, not a pipe: the log never blocks the run
    process = subprocess.Popen(RUN + ["--robot", "panda", "--models", str(models["panda"]),
                                      "--synthetic"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, text=True)
    try:
        home = np.asarray(profile.home)

        def moved():
            with probe.lock:
                commands = list(probe.commands[topic])
            return len(commands) >= 200 and max(
                np.abs(q - home).max() for _, q in commands) > 0.01

        def moving_now():  # the last commands step at >= 20 % of the velocity limit
            with probe.lock:
                last = [q for _, q in probe.commands[topic][-3:]]
            return len(last) == 3 and np.all(np.abs(np.diff(last, axis=0)).max(axis=1) >= 0.2
                                             * profile.limits.velocity_max.max()
                                             * profile.control_period_s)

        ros_testing.wait_for(lambda: moved() or process.poll() is not None, DISCOVERY_S + 15,
                             "commands that move the robot")
        assert process.poll() is None, (tmp_path / "run.log").read_text()
        assert shared_memory_segment_bytes(process.pid) >= SHM_SEGMENT_BYTES
        # Ctrl-C while the robot moves: it must brake to rest, not stop where it is.
        ros_testing.wait_for(moving_now, 20.0, "a moment when the robot moves", poll_s=0.0005)
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        process.wait(timeout=30)
        stopped_s = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    output = (tmp_path / "run.log").read_text()
    try:
        assert process.returncode == 0, output
        assert stopped_s < STOP_WITHIN_S, f"exited {stopped_s:.2f} s after SIGINT"
        assert "held at the measured state" in output and "final command = measured state" \
            in output
        time.sleep(0.5)
        with probe.lock:
            commands, states = list(probe.commands[topic]), list(probe.states[topic])
        assert_within_limits(profile, commands)
        # At rest when it stopped (braked, not cut off), and at the measured state.
        np.testing.assert_allclose(commands[-1][1], commands[-2][1], atol=HOLD_TOLERANCE_RAD)
        np.testing.assert_allclose(commands[-1][1], states[-1], atol=HOLD_TOLERANCE_RAD)
        time.sleep(0.5)
        assert probe.count(topic) == len(commands), "commands after the process exited"
        assert not ros_testing.processes_mentioning(str(models["panda"])), "a process of the run is left"
    finally:
        probe.close()


def test_two_robots_side_by_side_in_namespaces(models):
    """A Panda in /left and an SO-100 in /right: each commands its own controller topic."""
    ros_testing.use_fresh_domain()
    context = rclpy.Context()
    rclpy.init(context=context)
    topics = {"left": ("panda", "/left/panda_arm_controller/joint_trajectory"),
              "right": ("so100", "/right/forward_position_controller/commands")}
    probe = Probe([(topic, f"/{ns}/joint_states") for ns, (_, topic) in topics.items()])
    stacks = []
    try:
        for namespace, (robot, _) in topics.items():
            stacks.append(build_stack(robot, models=str(models[robot]), synthetic=True,
                                      namespace=namespace, context=context))
            stacks[-1].start()
        ros_testing.wait_for(lambda: all(probe.count(t) >= 20 for _, t in topics.values()),
                             DISCOVERY_S, "commands on both controller topics")
        for stack in stacks:
            assert stack.stop()
        time.sleep(0.3)
        for namespace, (robot, topic) in topics.items():
            profile = load_robot_profile(robot)
            with probe.lock:
                commands, states = list(probe.commands[topic]), list(probe.states[topic])
            assert all(len(q) == len(profile.joint_names) for _, q in commands)
            np.testing.assert_allclose(commands[-1][1], states[-1], atol=HOLD_TOLERANCE_RAD)
        assert sorted(stacks[0].plan.cameras) == ["overhead", "wrist"]
        assert not (stacks[0].nodes or stacks[1].nodes)  # shut down
    finally:
        for stack in stacks:
            stack.shutdown()
        probe.close()
        rclpy.try_shutdown(context=context)


def test_duration_ends_the_run_with_a_hold_and_exit_code_zero(models):
    env = dict(os.environ)
    ros_testing.use_fresh_domain(env)
    result = subprocess.run(RUN + ["--robot", "so100", "--models", str(models["so100"]),
                                   "--synthetic", "--duration-s", "3"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "held at the measured state" in result.stdout


@pytest.mark.skipif("sim" in NODE_TYPES, reason="the simulated robot node is installed")
def test_sim_without_the_simulated_robot_node_is_a_clear_error(models, capsys):
    code = hv2r_main(["run", "--robot", "panda", "--models", str(models["panda"]), "--sim"])
    assert code == 2
    assert "the simulated robot node ('sim') is not installed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        hv2r_main(["run", "--robot", "panda", "--models", str(models["panda"]), "--sim",
                   "--synthetic"])
