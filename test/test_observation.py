"""ObservationGate, chunk_to_targets and PolicyRunner: pure core, no ROS."""

import dataclasses

import numpy as np
import pinocchio as pin
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx_fixtures import make_encoder, make_policy, policy_spec, write_pair

from hv2r_ros.core.models.runtime import ModelPair
from hv2r_ros.core.observation import (
    FUTURE_TOLERANCE_S, ObservationGate, PolicyRunner, chunk_to_targets, default_max_age_s,
    rotvec_to_quat)
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.status import Status

CAMS = ("wrist", "overhead")
IMG = np.zeros((4, 4, 3), np.uint8)
Q = np.arange(7, dtype=float) * 0.1


def gate_with(wrist=1.0, overhead=1.0, joints=1.0, **kwargs):
    gate = ObservationGate(CAMS, **{"max_age_s": 0.1, "max_skew_s": 0.05, **kwargs})
    for name, stamp in (("wrist", wrist), ("overhead", overhead)):
        if stamp is not None:
            gate.update_camera(name, IMG + len(name), stamp)
    if joints is not None:
        gate.update_joints(Q, joints)
    return gate


def test_ok_observation_carries_images_in_order_q_and_oldest_camera_stamp():
    gate = gate_with(wrist=1.00, overhead=0.99, joints=0.995)
    obs, status = gate.observation(1.01)
    assert status is Status.OK
    assert obs.stamp_s == 0.99 and obs.camera_stamps_s == (1.00, 0.99)
    assert obs.images[0][0, 0, 0] == len("wrist") and obs.images[1][0, 0, 0] == len("overhead")
    np.testing.assert_array_equal(obs.q, Q)


@pytest.mark.parametrize("missing", ["wrist", "overhead", "joints"])
def test_missing_input_holds(missing):
    gate = gate_with(**{missing: None})
    obs, status = gate.observation(1.0)
    assert obs is None and status is Status.HOLD_NOT_STARTED
    assert gate.holds["missing"] == 1


@pytest.mark.parametrize("which", ["wrist", "overhead", "joints"])
def test_each_input_older_than_max_age_holds(which):
    stamps = {"wrist": 1.0, "overhead": 1.0, "joints": 1.0, which: 0.89}
    gate = gate_with(**stamps, max_skew_s=1.0)
    assert gate.observation(1.0) == (None, Status.HOLD_STALE)
    assert "old" in gate.reason and gate.holds["stale"] == 1
    assert gate_with(**{**stamps, which: 0.91}, max_skew_s=1.0).observation(1.0)[1] is Status.OK


def test_future_stamps_rejected_beyond_tolerance():
    assert gate_with(wrist=1.0 + FUTURE_TOLERANCE_S * 0.5).observation(1.0)[1] is Status.OK
    gate = gate_with(wrist=1.0 + FUTURE_TOLERANCE_S * 2)
    assert gate.observation(1.0) == (None, Status.HOLD_FUTURE_STAMP)
    assert gate_with(joints=1.01).observation(1.0)[1] is Status.HOLD_FUTURE_STAMP


def test_skew_between_cameras_and_joints():
    assert gate_with(wrist=1.0, overhead=0.94).observation(1.0)[1] is Status.HOLD_STALE
    gate = gate_with(wrist=1.0, overhead=0.96, joints=1.0)
    assert gate.observation(1.0)[1] is Status.OK


def test_joint_sample_nearest_the_capture_is_used():
    gate = gate_with(wrist=1.0, overhead=1.0, joints=0.95)
    gate.update_joints(Q + 1.0, 0.999)
    gate.update_joints(Q + 2.0, 1.03)  # newer but further from the capture
    obs, status = gate.observation(1.04)
    assert status is Status.OK and obs.joint_stamp_s == 0.999
    np.testing.assert_array_equal(obs.q, Q + 1.0)


def test_frozen_camera_gives_no_second_observation():
    gate = gate_with()
    assert gate.observation(1.01)[1] is Status.OK
    gate.update_joints(Q, 1.02)
    gate.update_camera("overhead", IMG, 1.02)  # only one camera moved on
    assert gate.observation(1.03) == (None, Status.HOLD_NON_MONOTONIC)
    assert "wrist" in gate.reason and gate.holds["frozen"] == 1
    gate.update_camera("wrist", IMG, 1.025)
    assert gate.observation(1.03)[1] is Status.OK


def test_constructor_validates():
    with pytest.raises(ValueError):
        ObservationGate(("a", "a"))
    with pytest.raises(ValueError):
        ObservationGate(("a",), max_age_s=0.0)
    with pytest.raises(KeyError):
        ObservationGate(("a",)).update_camera("b", IMG, 0.0)


def test_default_max_age():
    assert default_max_age_s(0.1) == 0.1
    assert default_max_age_s(0.1, 30.0) == 0.1
    assert default_max_age_s(0.1, 15.0) == pytest.approx(0.2)


stamp = st.floats(0.0, 2.0, allow_nan=False)


@given(wrist=stamp, overhead=stamp, joints=stamp, now=st.floats(1.0, 2.0))
def test_gate_decision_matches_the_rules(wrist, overhead, joints, now):
    gate = gate_with(wrist, overhead, joints)
    obs, status = gate.observation(now)
    stamps = (wrist, overhead, joints)
    future = any(s > now + FUTURE_TOLERANCE_S for s in stamps)
    stale = any(now - s > 0.1 for s in stamps)
    skew = max(stamps) - min(stamps) > 0.05
    assert (obs is not None) == (not (future or stale or skew))
    if obs is not None:
        assert obs.stamp_s == min(wrist, overhead)
        assert all(now - s <= 0.1 and s <= now + FUTURE_TOLERANCE_S for s in stamps)
        assert gate.observation(now)[1] is Status.HOLD_NON_MONOTONIC  # same frames again
    else:
        assert status.is_hold


# --- chunk_to_targets -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def panda():
    return load_robot_profile("panda")


def ee_spec(space, gripper=True, frames=("panda_hand_tcp",)):
    size = (6 if space == "ee_delta" else 7) * len(frames) + int(gripper)
    return policy_spec(action_space=space, gripper=gripper, end_effector_frames=frames,
                       action_size=size, action_mean=(0.0,) * size, action_std=(1.0,) * size)


def test_joint_position_targets_times_and_gripper():
    spec = policy_spec()
    actions = np.tile(np.arange(8, dtype=float), (4, 1))
    actions[:, -1] = [-0.5, 0.2, 0.9, 1.5]
    targets, times, gripper = chunk_to_targets(spec, actions, Q)
    np.testing.assert_array_equal(targets, actions[:, :7])
    np.testing.assert_allclose(times, [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(gripper, [0.0, 0.2, 0.9, 1.0])
    no_grip = policy_spec(gripper=False)
    assert chunk_to_targets(no_grip, actions[:, :7], Q)[2] is None


def test_ee_delta_zero_is_the_observed_tool_pose(panda):
    spec = ee_spec("ee_delta")
    model = panda.kinematic_model()
    tool = pin.SE3ToXYZQUAT(model.frame_pose(panda.home, model.frame_id("panda_hand_tcp")))
    targets, times, gripper = chunk_to_targets(spec, np.zeros((4, 7)), panda.home, model)
    assert targets.shape == (4, 1, 7)
    for row in targets[:, 0]:
        np.testing.assert_allclose(row, tool, atol=1e-12)
    np.testing.assert_array_equal(gripper, np.zeros(4))


def test_ee_delta_rows_are_relative_to_the_observation_not_cumulative():
    spec = ee_spec("ee_delta", gripper=False)
    start = np.array([[0.5, 0.0, 0.3, 0.0, 0.0, 0.0, 1.0]])
    actions = np.zeros((4, 6))
    actions[:, 0] = 0.01  # every row: 1 cm along x from the observed pose
    actions[:, 5] = [0.1, 0.1, 0.2, np.pi / 2]  # rotation about base z
    targets, _, _ = chunk_to_targets(spec, actions, Q, lambda q: start)
    np.testing.assert_allclose(targets[:, 0, 0], 0.51)
    angles = 2 * np.arctan2(np.linalg.norm(targets[:, 0, 3:6], axis=1), targets[:, 0, 6])
    np.testing.assert_allclose(angles, [0.1, 0.1, 0.2, np.pi / 2])
    np.testing.assert_allclose(targets[:, 0, 5], np.sin(angles / 2))


def test_ee_delta_rotation_is_applied_in_the_base_frame():
    start_rot = pin.utils.rpyToMatrix(0.3, -0.2, 0.5)
    start = np.array([[0, 0, 0, *pin.Quaternion(start_rot).coeffs()]])
    rotvec = np.array([0.2, -0.1, 0.4])
    actions = np.array([[0, 0, 0, *rotvec]])
    targets, _, _ = chunk_to_targets(dataclasses.replace(ee_spec("ee_delta", False),
                                                         chunk_length=1),
                                     actions, Q, lambda q: start)
    expected = pin.exp3(rotvec) @ start_rot
    got = pin.Quaternion(*targets[0, 0, [6, 3, 4, 5]]).matrix()
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_rotvec_to_quat_small_and_large_angles():
    for v in ([0, 0, 0], [1e-9, 0, 0], [0.3, -0.4, 1.2], [np.pi, 0, 0]):
        quat = rotvec_to_quat(np.array(v))
        np.testing.assert_allclose(np.linalg.norm(quat), 1.0)
        expected = pin.Quaternion(pin.exp3(np.array(v, dtype=float))).coeffs()
        assert min(np.abs(quat - expected).max(), np.abs(quat + expected).max()) < 1e-12


def test_ee_absolute_normalises_quaternions_two_frames():
    spec = ee_spec("ee_absolute", gripper=True, frames=("left", "right"))
    actions = np.zeros((4, 15))
    actions[:, :7] = [0.1, 0.2, 0.3, 0, 0, 0, 2.0]
    actions[:, 7:14] = [0.4, 0.5, 0.6, 0, 3.0, 0, 4.0]
    targets, _, _ = chunk_to_targets(spec, actions, Q)
    assert targets.shape == (4, 2, 7)
    np.testing.assert_allclose(targets[0, 0], [0.1, 0.2, 0.3, 0, 0, 0, 1.0])
    np.testing.assert_allclose(targets[0, 1], [0.4, 0.5, 0.6, 0, 0.6, 0, 0.8])
    actions[2, 10:14] = 0.0
    with pytest.raises(ValueError, match="zero quaternion"):
        chunk_to_targets(spec, actions, Q)


def test_bad_shapes_and_nan_raise():
    spec = policy_spec()
    with pytest.raises(ValueError):
        chunk_to_targets(spec, np.zeros((4, 7)), Q)
    with pytest.raises(ValueError):
        chunk_to_targets(spec, np.full((4, 8), np.nan), Q)
    with pytest.raises(ValueError, match="tool poses"):
        chunk_to_targets(ee_spec("ee_delta"), np.zeros((4, 7)), Q)


# --- PolicyRunner on a tiny ONNX pair --------------------------------------------------------

def runner_for(tmp_path, **policy_kwargs):
    pair = ModelPair.load(write_pair(tmp_path, make_encoder(), make_policy(**policy_kwargs)),
                          ["cpu"])
    gate = ObservationGate(pair.policy.spec.camera_order, 0.1, 0.05)
    return PolicyRunner(pair.encoder, pair.policy, gate), gate


def feed(gate, stamp):
    for name in ("wrist", "overhead"):
        gate.update_camera(name, np.full((20, 24, 3), 100, np.uint8), stamp)
    gate.update_joints(Q, stamp)


def test_runner_chunk_goal_and_holds(tmp_path):
    runner, gate = runner_for(tmp_path)
    feed(gate, 1.0)
    assert runner.step(1.01) == (None, Status.HOLD_NOT_STARTED)  # no goal yet
    assert not runner.set_goal(np.zeros(5)) and not runner.set_goal([np.nan] * 8)
    assert runner.set_goal(np.ones(8))
    out, status = runner.step(1.01)
    assert status is Status.OK and out.stamp_s == 1.0
    assert out.targets.shape == (4, 7) and np.isfinite(out.targets).all()
    assert out.gripper.shape == (4,) and ((0 <= out.gripper) & (out.gripper <= 1)).all()
    assert runner.step(1.02) == (None, Status.HOLD_NON_MONOTONIC)  # frozen frames
    summary = runner.chunks.summary()
    assert summary.count == 3 and runner.total_time.count == 1
    assert runner.holds == {"no_goal": 1, "frozen": 1}


def test_runner_holds_on_nan_output(tmp_path):
    runner, gate = runner_for(tmp_path, nan_output=True)
    runner.set_goal(np.ones(8))
    feed(gate, 1.0)
    assert runner.step(1.01) == (None, Status.HOLD_NON_FINITE)
    assert runner.holds == {"non_finite": 1}


def test_poses_to_ee_delta_inverts_chunk_to_targets_for_many_poses():
    from hv2r_ros.core.observation import poses_to_ee_delta, quat_to_rotvec, rotvec_to_quat

    rng = np.random.default_rng(7)
    for _ in range(200):
        frames = int(rng.integers(1, 3))
        start = np.concatenate([rng.normal(size=(frames, 3)),
                                rng.normal(size=(frames, 4))], axis=1)
        start[:, 3:] /= np.linalg.norm(start[:, 3:], axis=1, keepdims=True)
        rows = np.concatenate([rng.normal(scale=0.1, size=(5, frames, 3)),
                               rng.uniform(-1, 1, size=(5, frames, 3)) * 1.5], axis=2)
        absolute = np.empty((5, frames, 7))
        absolute[..., :3] = start[None, :, :3] + rows[..., :3]
        from hv2r_ros.core.safety.cartesian import quat_multiply
        absolute[..., 3:] = quat_multiply(rotvec_to_quat(rows[..., 3:]),
                                          np.broadcast_to(start[:, 3:], (5, frames, 4)))
        back = poses_to_ee_delta(absolute, start).reshape(5, frames, 6)
        np.testing.assert_allclose(back, rows, atol=1e-9)
    np.testing.assert_allclose(quat_to_rotvec(np.array([0.0, 0.0, 0.0, -1.0])), 0.0)


# --- frozen images: the same pixels with fresh stamps ---------------------------------------

def test_a_repeated_image_keeps_its_first_stamp_and_is_refused_once_too_old():
    gate = gate_with()
    frozen = IMG + 7
    for stamp in (1.00, 1.04, 1.08, 1.12):  # the driver re-sends one image, stamps fresh
        gate.update_camera("wrist", frozen, stamp)
        gate.update_camera("overhead", IMG + stamp * 100, stamp)  # this camera sees new things
        gate.update_joints(Q, stamp)
    obs, status = gate.observation(1.125)
    assert obs is None and status is Status.HOLD_STALE
    assert gate.holds["frozen_image"] == 1
    assert "wrist" in gate.reason and "unchanged" in gate.reason
    gate.update_camera("wrist", frozen + 1, 1.13)  # new pixels: fresh again
    gate.update_camera("overhead", IMG + 1, 1.13)
    gate.update_joints(Q, 1.13)
    assert gate.observation(1.135)[1] is Status.OK


def test_repeats_are_judged_per_camera_and_within_the_age_limit_pass():
    gate = gate_with()
    gate.update_camera("wrist", IMG + 5, 1.04)  # same content as at 1.0, 0.04 s later
    gate.update_camera("overhead", IMG + 9, 1.04)
    gate.update_joints(Q, 1.04)
    obs, status = gate.observation(1.06)
    assert status is Status.OK and obs.camera_stamps_s == (1.0, 1.04)  # the first stamp kept


@given(st.lists(st.tuples(st.integers(0, 2), st.floats(0.005, 0.06)), min_size=2, max_size=60),
       st.floats(0.03, 0.15))
def test_no_observation_uses_pixels_first_seen_longer_ago_than_the_age_limit(frames, max_age):
    """Generated streams: a camera re-sending one of three images (repeats of the same one
    are a frozen pipeline) with fresh stamps; the other camera always new."""
    gate = ObservationGate(CAMS, max_age_s=max_age, max_skew_s=1.0)
    now, first_seen, last = 1.0, None, None
    for i, (content, gap) in enumerate(frames):
        now += gap
        if content != last:
            first_seen, last = now, content
        gate.update_camera("wrist", IMG + content, now)
        gate.update_camera("overhead", IMG + (i % 200) + 3, now)
        gate.update_joints(Q, now)
        obs, status = gate.observation(now + 0.001)
        if obs is not None:
            assert now + 0.001 - first_seen <= max_age + 1e-9
            assert obs.camera_stamps_s[0] == first_seen
        elif now + 0.001 - first_seen > max_age:
            assert status is Status.HOLD_STALE


def test_a_reused_buffer_a_strided_view_and_a_one_pixel_change_are_judged_by_content():
    """The gate compares pixels with its own copy: a driver that writes each new frame into
    the same buffer is not taken for frozen, an equal row-strided view (a padded Image row
    step) is the same content, and one changed value is a new frame."""
    gate = ObservationGate(CAMS, max_age_s=0.1, max_skew_s=1.0)
    buffer = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    stamps = {}
    for i, stamp in enumerate((1.00, 1.05, 1.10, 1.15)):
        buffer[i, 0, 0] ^= 1  # the next frame, written in place
        gate.update_camera("wrist", buffer, stamp)
        gate.update_camera("overhead", IMG + 1 + i, stamp)
        gate.update_joints(Q, stamp)
        obs, status = gate.observation(stamp + 0.001)
        stamps[stamp] = obs.camera_stamps_s[0] if obs is not None else status
    assert stamps == {1.00: 1.00, 1.05: 1.05, 1.10: 1.10, 1.15: 1.15}
    padded = np.zeros((48, 70, 3), np.uint8)
    padded[:, :64] = buffer
    view = padded[:, :64]  # the same pixels, rows 70 px apart
    assert not view.flags.c_contiguous
    gate.update_camera("wrist", view, 1.18)
    gate.update_camera("overhead", IMG + 9, 1.18)
    gate.update_joints(Q, 1.18)
    obs, status = gate.observation(1.181)  # same content: its first stamp, already used
    assert obs is None and status is Status.HOLD_NON_MONOTONIC and gate.holds["frozen"] == 1
    changed = buffer.copy()
    changed[47, 63, 2] ^= 128
    gate.update_camera("wrist", changed, 1.2)
    gate.update_camera("overhead", IMG + 10, 1.2)
    gate.update_joints(Q, 1.2)
    assert gate.observation(1.201)[0].camera_stamps_s[0] == 1.2
