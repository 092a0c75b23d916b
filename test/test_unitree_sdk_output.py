"""The G1 arm SDK output against Unitree's own SDK (``unitree_sdk2py``), without hardware.

Messages are the SDK's ``unitree_hg`` types and the CRC is the SDK's; frames travel over a
Cyclone DDS domain on the loopback interface, where the test plays the robot: it publishes
``rt/lowstate`` and records ``rt/arm_sdk``. The SDK's channel factory is one per process, so
every test here shares one DDS domain. Tests needing the SDK skip without the ``unitree`` extra
(``make unitree``); the stack without it is tested too.
"""

import importlib.abc
import json
import math
import os
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest

from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.unitree_arm import (
    ARM_SDK_SLOTS, MOTOR_SLOT_COUNT, WEIGHT_SLOT, ArmSdkLayout)
from hv2r_ros.io import unitree_sdk

DDS_DOMAIN = 200 + os.getpid() % 30  # the ROS node tests use 100-199
INTERFACE = "lo"  # nothing leaves the machine
RAMP_S = 0.2


@pytest.fixture(scope="module")
def g1():
    return load_robot_profile("g1")


@pytest.fixture(scope="module")
def sdk():
    pytest.importorskip("unitree_sdk2py", reason="the Unitree SDK is not installed (extra "
                        "'unitree': make unitree; docs/unitree_g1.md)")
    return unitree_sdk.load_sdk()


class FakeG1:
    """The robot's side: ``rt/lowstate`` at 200 Hz, blending what arrives on ``rt/arm_sdk``."""

    def __init__(self, sdk, g1):
        self.sdk, self.q = sdk, np.zeros(MOTOR_SLOT_COUNT)
        slots = ArmSdkLayout(g1.joint_names, g1.limits).slots
        self.q[slots] = g1.home  # the balance controller holds the arms at home
        self.balance_q = self.q.copy()
        self.frames = []  # (receipt [s], LowCmd_)
        self.publishing = True
        self._stop = threading.Event()
        self._publisher = sdk.Publisher(unitree_sdk.STATE_TOPIC, sdk.LowState_)
        self._publisher.Init()
        self._subscriber = sdk.Subscriber(unitree_sdk.COMMAND_TOPIC, sdk.LowCmd_)
        self._subscriber.Init(self._on_command, 0)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on_command(self, msg):
        self.frames.append((time.monotonic(), msg))
        w = msg.motor_cmd[WEIGHT_SLOT].q
        for slot in ARM_SDK_SLOTS:  # the robot's blend of the two controllers
            self.q[slot] = w * msg.motor_cmd[slot].q + (1.0 - w) * self.balance_q[slot]

    def _run(self):
        from unitree_sdk2py.idl.default import unitree_hg_msg_dds__LowState_
        state = unitree_hg_msg_dds__LowState_()
        while not self._stop.wait(0.005):
            if self.publishing:
                for motor, q in zip(state.motor_state, self.q.tolist()):
                    motor.q = q
                self._publisher.Write(state)

    def close(self):
        self._stop.set()
        self._thread.join()
        self._subscriber.Close()
        self._publisher.Close()


def frame_arrays(msgs, field):
    return np.array([[getattr(m, field) for m in msg.motor_cmd] for _, msg in msgs])


# --------------------------------------------------------------------------- without the SDK

def test_without_the_sdk_the_node_names_the_extra_to_install(g1, monkeypatch):
    rclpy = pytest.importorskip("rclpy")
    from rclpy.parameter import Parameter
    from hv2r_ros.nodes.command_output import CommandOutputNode

    for name in [m for m in sys.modules if m.startswith("unitree_sdk2py")] + ["unitree_sdk2py"]:
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    monkeypatch.setattr(unitree_sdk, "_sdk", None)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        with pytest.raises(unitree_sdk.UnitreeSdkError, match="requirements-unitree.txt") as err:
            CommandOutputNode(context=context, parameter_overrides=[
                Parameter("robot", value="g1"), Parameter("action_space", value="joint")])
        assert err.value.file == g1.file and err.value.field == "command_interface.type"
        assert "make unitree" in str(err.value)
    finally:
        rclpy.shutdown(context=context)


def test_the_broken_pypi_wheel_is_recognised(monkeypatch):
    """unitree-sdk2 1.0.1 on PyPI: its __init__ imports a b2 package the wheel lacks."""
    class PypiWheel(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "unitree_sdk2py":
                raise ImportError("cannot import name 'b2' from partially initialized module "
                                  "'unitree_sdk2py' (most likely due to a circular import)")

    for name in [m for m in sys.modules if m.startswith("unitree_sdk2py")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [PypiWheel(), *sys.meta_path])
    monkeypatch.setattr(unitree_sdk, "_sdk", None)
    with pytest.raises(unitree_sdk.UnitreeSdkError, match="lacks the b2 package"):
        unitree_sdk.load_sdk()


# --------------------------------------------------------------------------- SDK messages

def test_low_cmd_carries_each_slot_the_weight_and_the_sdks_crc(sdk, g1):
    layout = ArmSdkLayout(g1.joint_names, g1.limits, kp=np.linspace(40.0, 80.0, 17))
    q = g1.home + 0.05
    dq = np.linspace(-0.3, 0.3, 17)
    frame, _ = layout.frame(q, dq, 0.4, np.zeros(MOTOR_SLOT_COUNT))
    msg = sdk.new_low_cmd()
    unitree_sdk.fill_low_cmd(msg, frame, sdk.crc)
    for i, slot in enumerate(layout.slots):
        cmd = msg.motor_cmd[slot]
        assert (cmd.q, cmd.dq, cmd.kp, cmd.kd, cmd.tau) == (q[i], dq[i], layout.kp[slot], 1.5, 0.0)
    assert msg.motor_cmd[WEIGHT_SLOT].q == 0.4
    assert all(msg.motor_cmd[s].kp == 0.0 for s in range(12))  # the legs: not ours
    assert msg.crc == sdk.crc.Crc(msg) != 0
    msg.motor_cmd[WEIGHT_SLOT].q = 0.5  # the CRC covers the weight
    assert sdk.crc.Crc(msg) != frame_crc(sdk, frame)


def frame_crc(sdk, frame):
    msg = sdk.new_low_cmd()
    unitree_sdk.fill_low_cmd(msg, frame, sdk.crc)
    return msg.crc


# --------------------------------------------------------------------------- DDS on localhost

@pytest.fixture(scope="module")
def robot(sdk, g1):
    channel_probe = unitree_sdk.ArmSdkChannel(domain_id=DDS_DOMAIN, network_interface=INTERFACE)
    channel_probe.close()  # starts the process's factory on the test domain
    fake = FakeG1(sdk, g1)
    yield fake
    fake.close()


def wait_until(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def test_frames_cross_dds_with_a_valid_crc_and_lowstate_comes_back(sdk, g1, robot):
    channel = unitree_sdk.ArmSdkChannel(domain_id=DDS_DOMAIN, network_interface=INTERFACE)
    try:
        wait_until(lambda: channel.poll_state() is not None, 5.0, "LowState from the robot")
        np.testing.assert_allclose(channel.motor_q, robot.q, atol=1e-6)  # float32 on the wire
        # Polling takes the newest sample; the next poll finds only what arrived since.
        robot.publishing = False
        time.sleep(0.05)
        channel.poll_state()
        assert channel.poll_state() is None
        robot.publishing = True
        layout = ArmSdkLayout(g1.joint_names, g1.limits)
        frame, _ = layout.frame(g1.home, np.zeros(17), 0.5, channel.motor_q)
        robot.frames.clear()
        wait_until(lambda: channel.send(frame) and robot.frames, 5.0, "the frame on rt/arm_sdk")
        _, msg = robot.frames[-1]
        assert msg.crc == sdk.crc.Crc(msg) == frame_crc(sdk, frame)
        assert msg.motor_cmd[WEIGHT_SLOT].q == 0.5
        np.testing.assert_allclose([msg.motor_cmd[s].q for s in layout.slots], g1.home,
                                   atol=1e-6)
    finally:
        channel.close()


ROBOT_PROCESS = """
import json, sys, threading
from unitree_sdk2py.core.channel import ChannelFactoryInitialize, ChannelSubscriber
from unitree_sdk2py.idl.unitree_hg.msg.dds_ import LowCmd_
from unitree_sdk2py.utils.crc import CRC
ChannelFactoryInitialize(int(sys.argv[1]), sys.argv[2])
got, done = [], threading.Event()
def on_command(msg):
    got.append(msg)
    done.set()
ChannelSubscriber(sys.argv[3], LowCmd_).Init(on_command, 0)
print("ready", flush=True)
done.wait(20.0)
msg = got[0]
print(json.dumps({"weight": msg.motor_cmd[29].q, "crc_ok": CRC().Crc(msg) == msg.crc,
                  "q15": msg.motor_cmd[15].q}), flush=True)
"""


def test_frames_reach_another_process_over_the_loopback_interface(sdk, g1, robot):
    """Discovery and transport on the interface itself, as between a PC and the robot."""
    channel = unitree_sdk.ArmSdkChannel(domain_id=DDS_DOMAIN, network_interface=INTERFACE,
                                        command_topic="rt/arm_sdk_cross_process")
    process = subprocess.Popen(
        [sys.executable, "-c", ROBOT_PROCESS, str(DDS_DOMAIN), INTERFACE,
         "rt/arm_sdk_cross_process"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        layout = ArmSdkLayout(g1.joint_names, g1.limits)
        frame, _ = layout.frame(g1.home, np.zeros(17), 0.75, np.zeros(MOTOR_SLOT_COUNT))
        deadline = time.monotonic() + 15.0
        while process.poll() is None:
            assert time.monotonic() < deadline, "the other process received nothing"
            channel.send(frame)
            time.sleep(0.02)
        report = json.loads(process.stdout.read().strip().splitlines()[-1])
        assert report["weight"] == 0.75 and report["crc_ok"]
        assert report["q15"] == pytest.approx(g1.home[3], abs=1e-6)  # left_shoulder_pitch
    finally:
        process.kill()
        process.wait()
        channel.close()


def test_an_unknown_network_interface_is_named_with_the_interfaces_found(sdk):
    # Its own process: the SDK's factory is one per process, and this one must not start.
    script = ("from hv2r_ros.io.unitree_sdk import ArmSdkChannel, UnitreeSdkError\n"
              "try:\n    ArmSdkChannel(domain_id=1, network_interface='nosuch0')\n"
              "except UnitreeSdkError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60).stdout
    assert "unitree_network_interface" in out and "'nosuch0'" in out
    assert "valid choices:" in out and "lo" in out.split("valid choices:")[1]


def test_a_refused_command_never_reaches_the_wire(sdk, g1, robot):
    rclpy = pytest.importorskip("rclpy")
    from hv2r_ros.ros.command_outputs import UNITREE_PARAMS, UnitreeArmSdkOutput

    node = types.SimpleNamespace(get_logger=lambda: rclpy.logging.get_logger("test_unitree"))
    params = {spec.name: spec.default for spec in UNITREE_PARAMS}
    params.update(unitree_domain_id=DDS_DOMAIN, unitree_network_interface=INTERFACE)
    measured = []
    output = UnitreeArmSdkOutput(node, g1, g1.control_period_s, params, measured.append)
    try:
        wait_until(lambda: output.poll() or measured, 5.0, "LowState")
        np.testing.assert_allclose(measured[-1], g1.home, atol=1e-6)
        robot.frames.clear()
        bad = g1.home.copy()
        bad[5] = math.nan
        assert not output.send(bad, np.zeros(17))
        bad[5] = g1.limits.position_max[5] + 0.01
        assert not output.send(bad, np.zeros(17))
        assert not output.send(g1.home, np.full(17, 0.6))  # above the 0.5 rad/s limit
        time.sleep(0.1)
        assert robot.frames == [] and output.refused == {
            "NON_FINITE": 1, "POSITION_OUT_OF_RANGE": 1, "VELOCITY_OUT_OF_RANGE": 1}
        assert output.commander.ramp.weight == 0.0  # refused frames do not move the weight
        assert output.send(g1.home, np.zeros(17))
        wait_until(lambda: robot.frames, 5.0, "the valid frame")
        assert robot.frames[0][1].motor_cmd[WEIGHT_SLOT].q == pytest.approx(
            g1.control_period_s / params["unitree_blend_ramp_s"])
    finally:
        output.release(lambda: (g1.home, np.zeros(17)))


def test_a_second_domain_in_one_process_is_refused(robot):
    with pytest.raises(unitree_sdk.UnitreeSdkError, match="process-wide") as err:
        unitree_sdk.ArmSdkChannel(domain_id=DDS_DOMAIN + 1, network_interface=INTERFACE)
    assert err.value.field == "unitree_domain_id"


@pytest.mark.ros
def test_node_ramps_in_holding_the_measured_pose_follows_then_ramps_out(g1, robot):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from std_msgs.msg import String
    from trajectory_msgs.msg import JointTrajectory

    import ros_testing
    from hv2r_ros.nodes.command_output import CommandOutputNode
    from hv2r_ros.ros.actions import joint_chunk_to_msg
    from hv2r_ros.ros.qos import action_qos, latched_qos

    ros_testing.use_fresh_domain()
    context = rclpy.Context()
    rclpy.init(context=context)
    robot.frames.clear()
    node = CommandOutputNode(context=context, parameter_overrides=[
        Parameter("robot", value="g1"), Parameter("action_space", value="joint"),
        Parameter("max_state_age_s", value=0.1), Parameter("unitree_blend_ramp_s", value=RAMP_S),
        Parameter("unitree_domain_id", value=DDS_DOMAIN),
        Parameter("unitree_network_interface", value=INTERFACE)])
    harness = rclpy.create_node("unitree_harness", context=context)
    safety = harness.create_publisher(String, "hv2r/safety/state", latched_qos())
    actions = harness.create_publisher(JointTrajectory, "hv2r/action_safe", action_qos())
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(harness)
    period = g1.control_period_s
    steps = math.ceil(RAMP_S / period - 1e-9)
    goal = g1.home.copy()
    goal[3:10] += 0.3  # the left arm moves; far enough that it is still moving when we look

    def spin_for(duration_s):
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.005)

    def stream_chunks():
        now_s = node.get_clock().now().nanoseconds * 1e-9
        actions.publish(joint_chunk_to_msg(g1.joint_names, np.tile(goal, (5, 1)),
                                           np.arange(5) * 0.05, now_s))

    harness.create_timer(0.05, stream_chunks)
    try:
        safety.publish(String(data="ACTIVE"))  # active from the start: the ramp still holds
        start = time.monotonic()
        while len(robot.frames) < steps + 40:
            assert time.monotonic() - start < 15.0, "arm SDK frames did not arrive"
            spin_for(0.02)
        frames = list(robot.frames)
        weights = frame_arrays(frames, "q")[:, WEIGHT_SLOT]
        q = frame_arrays(frames, "q")[:, node.output.commander.layout.slots]
        # Ramp in by 1/N per frame to exactly 1, commanding the measured pose meanwhile.
        np.testing.assert_allclose(weights[:steps], np.arange(1, steps + 1) / steps, atol=1e-6)
        assert np.all(weights[steps:] == 1.0)
        np.testing.assert_allclose(q[:steps], np.tile(g1.home, (steps, 1)), atol=1e-6)
        # Then it follows the chunks, within the profile's limits, every frame with its CRC.
        assert np.abs(q[-1] - g1.home).max() > 0.05
        speed = np.abs(np.diff(q, axis=0)) / period
        assert np.all(speed <= g1.limits.velocity_max * (1 + 1e-5) + 1e-5)
        assert np.all(q >= g1.limits.position_min - 1e-6)
        assert np.all(q <= g1.limits.position_max + 1e-6)
        assert all(msg.crc == robot.sdk.crc.Crc(msg) for _, msg in frames)
        # LowState stops: HOLD (brake to rest) within a few periods of the 0.1 s state limit.
        robot.publishing = False
        spin_for(0.1 + 0.4)
        tail = frame_arrays(robot.frames[-5:], "q")[:, node.output.commander.layout.slots]
        assert np.abs(np.diff(tail, axis=0)).max() == 0.0
        robot.publishing = True
        spin_for(0.2)
        # Release (shutdown): the weight goes back to 0 one step per period, then silence.
        count = len(robot.frames)
        executor.shutdown()
        node.destroy_node()  # blocks through the ramp
        time.sleep(0.1)
        released = frame_arrays(robot.frames[count:], "q")[:, WEIGHT_SLOT]
        np.testing.assert_allclose(released, np.arange(steps - 1, -1, -1) / steps, atol=1e-6)
        after = len(robot.frames)
        time.sleep(0.1)
        assert len(robot.frames) == after
    finally:
        harness.destroy_node()
        rclpy.shutdown(context=context)
