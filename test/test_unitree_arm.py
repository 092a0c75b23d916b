"""The G1 arm SDK core: motor slots, gains, frame checks and the blend ramp (no SDK needed)."""

import math
import re

import numpy as np
import pytest

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.limits import JointLimits
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.safety import JointGuard
from hv2r_ros.core.unitree_arm import (
    ARM_SDK_SLOTS, DEFAULT_KD, DEFAULT_KP, G1_MOTOR_SLOTS, MOTOR_SLOT_COUNT, WEIGHT_SLOT,
    ArmSdkCommander, ArmSdkLayout, BlendRamp, FrameCheck)
from hv2r_ros.core.urdf import example_robot_data_dir

ARMS = tuple(n for n in G1_MOTOR_SLOTS if n.startswith(("left_sh", "left_el", "left_wr",
                                                          "right_sh", "right_el", "right_wr")))


@pytest.fixture(scope="module")
def g1():
    return load_robot_profile("g1")


@pytest.fixture
def layout(g1):
    return ArmSdkLayout(g1.joint_names, g1.limits)


def arms_only_limits(g1):
    idx = [g1.joint_names.index(n) for n in ARMS]
    lim = g1.limits
    return JointLimits(ARMS, lim.position_min[idx], lim.position_max[idx],
                       lim.velocity_max[idx], lim.acceleration_max[idx])


def motor_q(seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, MOTOR_SLOT_COUNT)


def test_motor_slots_follow_the_actuated_joints_of_unitrees_urdf(g1):
    urdf = (example_robot_data_dir() / "g1_description/urdf/g1_29dof_rev_1_0.urdf").read_text()
    actuated = [name for name, kind in re.findall(r'<joint\s+name="([^"]+)"\s+type="(\w+)"', urdf)
                if kind in ("revolute", "continuous", "prismatic")]
    assert list(G1_MOTOR_SLOTS) == actuated and list(G1_MOTOR_SLOTS.values()) == list(range(29))
    # The profile commands exactly the blended slots: waist 12-14, left arm 15-21, right 22-28.
    layout = ArmSdkLayout(g1.joint_names, g1.limits)
    assert sorted(layout.slots.tolist()) == list(ARM_SDK_SLOTS) and layout.held_slots.size == 0
    assert layout.slots[g1.joint_names.index("waist_yaw_joint")] == 12
    assert layout.slots[g1.joint_names.index("left_shoulder_pitch_joint")] == 15
    assert layout.slots[g1.joint_names.index("right_wrist_yaw_joint")] == 28


@pytest.mark.parametrize("name, why", [("left_knee_joint", "balance controller"),
                                       ("left_hand_thumb_0_joint", "no motor slot")])
def test_joints_off_the_arm_sdk_channel_are_refused_by_name(g1, name, why):
    names = (*g1.joint_names[:-1], name)
    with pytest.raises(ConfigError, match=why) as err:
        ArmSdkLayout(names, JointLimits(names, g1.limits.position_min, g1.limits.position_max,
                                        g1.limits.velocity_max, g1.limits.acceleration_max),
                     file="g1.yaml")
    assert err.value.field == "joints[16]" and err.value.value == name
    assert err.value.file == "g1.yaml" and "waist_yaw_joint" in err.value.choices


def test_gains_default_to_unitrees_examples_and_zero_off_the_channel(g1, layout):
    blended = list(ARM_SDK_SLOTS)
    assert np.all(layout.kp[blended] == DEFAULT_KP) and np.all(layout.kd[blended] == DEFAULT_KD)
    others = [s for s in range(MOTOR_SLOT_COUNT) if s not in blended]
    assert np.all(layout.kp[others] == 0.0) and np.all(layout.kd[others] == 0.0)
    kp = np.arange(1.0, 18.0) * 10.0
    custom = ArmSdkLayout(g1.joint_names, g1.limits, kp=kp, kd=[2.0] * 17)
    for i, name in enumerate(g1.joint_names):
        assert custom.kp[G1_MOTOR_SLOTS[name]] == kp[i]
    assert np.all(custom.kd[blended] == 2.0)


@pytest.mark.parametrize("field, values, message", [
    ("kp", [60.0] * 16, "expected 17 values"),
    ("kp", [60.0] * 16 + [math.nan], "finite"),
    ("kp", [60.0] * 16 + [0.0], "limp"),
    ("kp", [60.0] * 16 + [6000.0], r"\[0, 500\]"),
    ("kd", [1.5] * 16 + [-1.0], r"\[0, 20\]"),
])
def test_bad_gains_are_refused_naming_the_parameter(g1, field, values, message):
    with pytest.raises(ConfigError, match=message) as err:
        ArmSdkLayout(g1.joint_names, g1.limits, **{field: values})
    assert err.value.field == f"unitree_{field}"


def test_frame_puts_each_joint_in_its_slot_and_the_weight_in_slot_29(g1, layout):
    q = g1.home + 0.01 * np.arange(17)
    dq = np.linspace(-0.2, 0.2, 17)
    frame, check = layout.frame(q, dq, 0.25, motor_q())
    assert check is FrameCheck.OK and frame.weight == 0.25 and frame.q[WEIGHT_SLOT] == 0.25
    for i, name in enumerate(g1.joint_names):
        slot = G1_MOTOR_SLOTS[name]
        assert frame.q[slot] == q[i] and frame.dq[slot] == dq[i]
    assert np.all(frame.tau == 0.0)
    legs_and_spares = [s for s in range(MOTOR_SLOT_COUNT) if s not in ARM_SDK_SLOTS]
    assert np.all(frame.q[[s for s in legs_and_spares if s != WEIGHT_SLOT]] == 0.0)
    assert np.all(frame.kp[legs_and_spares] == 0.0)


@pytest.mark.parametrize("change, expected", [
    (lambda q, dq, w: (q[:-1], dq, w), FrameCheck.WRONG_LENGTH),
    (lambda q, dq, w: (np.r_[q[:-1], math.nan], dq, w), FrameCheck.NON_FINITE),
    (lambda q, dq, w: (q, np.r_[dq[:-1], math.inf], w), FrameCheck.NON_FINITE),
    (lambda q, dq, w: (q, dq, 1.5), FrameCheck.NON_FINITE),
    (lambda q, dq, w: (q, dq, math.nan), FrameCheck.NON_FINITE),
    (lambda q, dq, w: (np.r_[q[:-1], 10.0], dq, w), FrameCheck.POSITION_OUT_OF_RANGE),
    (lambda q, dq, w: (q, np.r_[dq[:-1], 0.51], w), FrameCheck.VELOCITY_OUT_OF_RANGE),
])
def test_non_finite_or_out_of_range_frames_are_refused(g1, layout, change, expected):
    q, dq = g1.home.copy(), np.zeros(17)
    assert layout.frame(q, dq, 1.0, motor_q())[1] is FrameCheck.OK
    frame, check = layout.frame(*change(q, dq, 1.0), motor_q())
    assert frame is None and check is expected


def test_position_just_past_the_limit_is_refused(g1, layout):
    q = g1.home.copy()
    q[3] = g1.limits.position_max[3]
    assert layout.frame(q, np.zeros(17), 1.0, motor_q())[1] is FrameCheck.OK
    q[3] = np.nextafter(q[3], np.inf)
    assert layout.frame(q, np.zeros(17), 1.0, motor_q())[1] is FrameCheck.POSITION_OUT_OF_RANGE


def test_an_arms_only_profile_holds_the_waist_where_it_was_when_the_blend_began(g1):
    layout = ArmSdkLayout(ARMS, arms_only_limits(g1))
    assert layout.held_slots.tolist() == [12, 13, 14]
    commander = ArmSdkCommander(layout, ramp_s=0.1, period_s=0.02)
    q = np.zeros(len(ARMS))
    first = motor_q(1)
    frame, check = commander.command(q, q, first)
    assert check is FrameCheck.OK
    np.testing.assert_array_equal(frame.q[12:15], first[12:15])
    assert np.all(frame.kp[12:15] == DEFAULT_KP) and np.all(frame.kd[12:15] == DEFAULT_KD)
    later, _ = commander.command(q, q, motor_q(2))  # the waist moved: still held where it was
    np.testing.assert_array_equal(later.q[12:15], first[12:15])
    bad = first.copy()
    bad[13] = math.nan
    fresh = ArmSdkCommander(layout, ramp_s=0.1, period_s=0.02)
    assert fresh.command(q, q, bad) == (None, FrameCheck.NO_MEASUREMENT) and not fresh.started


def test_blend_weight_ramps_in_and_out_by_one_period_over_the_ramp(g1, layout):
    commander = ArmSdkCommander(layout, ramp_s=0.1, period_s=0.02)
    assert commander.released and not commander.engaged
    q, dq = g1.home.copy(), np.zeros(17)
    weights = [commander.command(q, dq, motor_q())[0].weight for _ in range(7)]
    np.testing.assert_allclose(weights, [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 1.0])
    assert commander.engaged and weights[4] == 1.0
    # A refused frame neither goes out nor moves the weight.
    assert commander.command(q * np.nan, dq, motor_q()) == (None, FrameCheck.NON_FINITE)
    down = []
    while not commander.released:
        frame, check = commander.release_step(q, dq)
        assert check is FrameCheck.OK
        down.append(frame.weight)
    np.testing.assert_allclose(down, [0.8, 0.6, 0.4, 0.2, 0.0], atol=1e-12)
    assert not commander.engaged


def test_a_ramp_that_is_not_positive_is_refused():
    for ramp in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ConfigError, match="unitree_blend_ramp_s"):
            BlendRamp(ramp, 0.02)


def test_every_joint_guard_output_passes_the_frame_check(g1, layout):
    """The guard's commands, even for wild targets, are frames the robot may receive."""
    rng = np.random.default_rng(3)
    guard = JointGuard(g1.limits, g1.control_period_s)
    guard.reset(g1.home)
    commander = ArmSdkCommander(layout, ramp_s=0.2, period_s=g1.control_period_s)
    span = g1.limits.position_max - g1.limits.position_min
    for k in range(600):
        target = g1.limits.position_min + rng.uniform(-0.3, 1.3, 17) * span
        if k % 50 == 7:
            target[rng.integers(17)] = math.nan
        q_cmd, _ = guard.step(None if k % 97 == 5 else target, guard.position)
        frame, check = commander.command(q_cmd, guard.velocity, motor_q())
        assert check is FrameCheck.OK, (k, check)
        np.testing.assert_array_equal(frame.q[layout.slots], q_cmd)
    assert commander.engaged
