"""SimWorld: a position controller within the robot's own limits, kinematic grasping, rates."""

import os
import time

os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np  # noqa: E402
import pinocchio as pin  # noqa: E402
import pytest  # noqa: E402
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hv2r_ros.core.errors import ConfigError  # noqa: E402
from hv2r_ros.core.robot_profile import load_robot_profile  # noqa: E402
from hv2r_ros.sim.controller import ControllerLimits, PositionController  # noqa: E402
from hv2r_ros.sim.task import sample_layout  # noqa: E402
from hv2r_ros.sim.world import SimConfig, SimWorld  # noqa: E402


@pytest.fixture(scope="module")
def panda():
    return load_robot_profile("panda")


@pytest.fixture()
def world(panda):
    with SimWorld(panda, SimConfig(), sample_layout(panda.workspace, 4)) as w:
        yield w


def solve_ik(world, grasp_xyz, iters=300):
    """Joint positions putting the grasp point at ``grasp_xyz`` [m], tool as at home."""
    profile = world.profile
    kin = profile.kinematic_model()
    fid = kin.frame_id(profile.end_effector_frames[0])
    rotation = kin.frame_pose(profile.home, fid).rotation
    target = pin.SE3(rotation, np.asarray(grasp_xyz) - rotation @ world.grasp_offset_m)
    q = world.q
    for _ in range(iters):
        error = pin.log6(kin.frame_pose(q, fid).inverse() * target).vector
        if np.linalg.norm(error) < 1e-7:
            break
        jac = pin.computeFrameJacobian(kin.model, kin.data, q, fid, pin.LOCAL)
        q = np.clip(q + jac.T @ np.linalg.solve(jac @ jac.T + 1e-6 * np.eye(6), error),
                    profile.limits.position_min, profile.limits.position_max)
    return q


def move(world, grasp_xyz, gripper, duration_s=2.5):
    world.step(solve_ik(world, grasp_xyz), gripper, duration_s)


# --- the position controller --------------------------------------------------------------

@st.composite
def controller_cases(draw):
    n = draw(st.integers(1, 7))
    floats = lambda lo, hi: st.lists(st.floats(lo, hi), min_size=n, max_size=n)  # noqa: E731
    lo = np.array(draw(floats(-3.0, -0.1)))
    hi = np.array(draw(floats(0.1, 3.0)))
    limits = ControllerLimits(lo, hi, np.array(draw(floats(0.1, 3.0))),
                              np.array(draw(floats(0.5, 30.0))), "test")
    unit = st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)
    targets = [lo + (hi - lo) * np.array(draw(unit)) for _ in range(draw(st.integers(1, 4)))]
    hold_steps = draw(st.lists(st.integers(1, 60), min_size=len(targets), max_size=len(targets)))
    dt = draw(st.sampled_from([0.002, 0.01, 0.02]))
    return limits, lo + (hi - lo) * np.array(draw(unit)), targets, hold_steps, dt


@settings(max_examples=300)
@given(controller_cases())
def test_controller_never_exceeds_velocity_acceleration_or_position_limits(case):
    limits, q0, targets, hold_steps, dt = case
    controller = PositionController(limits, q0)
    previous_qd = controller.qd
    for target, steps in zip(targets, hold_steps):
        assert controller.command(target)
        for _ in range(steps):
            q_before = controller.q
            controller.step(dt)
            qd = controller.qd
            assert np.all(np.abs(qd) <= limits.velocity_max * (1 + 1e-9))
            assert np.all(np.abs(qd - previous_qd) <= limits.acceleration_max * dt * (1 + 1e-9))
            assert np.allclose(controller.q - q_before, qd * dt)
            assert np.all(controller.q >= limits.position_min)
            assert np.all(controller.q <= limits.position_max)
            previous_qd = qd


@settings(max_examples=150)
@given(controller_cases())
def test_controller_reaches_a_fixed_target_from_rest_without_overshoot(case):
    limits, q0, targets, _, dt = case
    controller = PositionController(limits, q0)
    controller.command(targets[0])
    distance = np.abs(targets[0] - q0)
    # Time-optimal bound: accelerate, cruise, brake; plus a few steps of discretisation.
    bound = distance / limits.velocity_max + limits.velocity_max / limits.acceleration_max
    steps = int(np.max(bound) / dt) + 10
    assume(steps <= 2000)  # keeps the run short; the limits test covers the long ones
    direction = np.sign(targets[0] - q0)
    for _ in range(steps):
        controller.step(dt)
        assert np.all(direction * (targets[0] - controller.q) >= -1e-9)  # never past it
    assert np.allclose(controller.q, targets[0], atol=1e-9)
    assert np.allclose(controller.qd, 0.0, atol=1e-9)


def test_limits_are_the_robots_own(panda):
    limits = ControllerLimits.from_profile(panda)
    assert np.allclose(limits.velocity_max, panda.vendor_limits.velocity_max)
    assert np.allclose(limits.acceleration_max, panda.vendor_limits.acceleration_max)
    # Hard limits: the URDF range, wider than the profile's (margin applied there).
    assert np.allclose(limits.position_min, panda.limits.position_min - 0.05)
    so100 = ControllerLimits.from_profile(load_robot_profile("so100"))
    assert "acceleration: profile" in so100.source and np.allclose(so100.velocity_max, 4.71)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.lists(st.floats(0.0, 1.0), min_size=7, max_size=7), min_size=1,
                max_size=3), st.integers(0, 3))
def test_world_tracks_random_targets_within_vendor_limits(panda, fractions, seed):
    limits = ControllerLimits.from_profile(panda)
    with SimWorld(panda, SimConfig(), sample_layout(panda.workspace, seed)) as world:
        previous = world.qd
        for fraction in fractions:
            target = limits.position_min + (limits.position_max - limits.position_min) * \
                np.array(fraction)
            for _ in range(40):
                assert world.step(target, None)
                qd = world.qd
                assert np.all(np.abs(qd) <= limits.velocity_max * (1 + 1e-9))
                assert np.all(np.abs(qd - previous) <= limits.acceleration_max * world.dt_s
                              * (1 + 1e-9))
                previous = qd
        assert world.refusals == 0


def test_bad_commands_are_refused_and_the_old_target_kept(world, panda):
    target = panda.home + 0.1
    assert world.step(target, None)
    hard_max = ControllerLimits.from_profile(panda).position_max
    bad = [np.full(7, np.nan), np.r_[target[:6], np.inf], target[:6], np.r_[target, 0.0],
           np.where(np.arange(7) == 3, hard_max + 0.01, target), "seven"]
    reasons = ["non-finite", "non-finite", "shape", "shape", "outside its position limits",
               "numeric"]
    for i, (command, reason) in enumerate(zip(bad, reasons)):
        assert not world.step(command, None)
        assert world.refusals == i + 1 and reason in world.last_refusal
        assert np.array_equal(world.controller.target, target)
    # Between the profile's margin and the hard limit: a real controller accepts it.
    inside = np.where(np.arange(7) == 3, hard_max - 0.01, target)
    assert world.step(inside, None) and world.refusals == len(bad)
    assert not world.step(None, float("nan")) and "gripper" in world.last_refusal
    assert not world.step(None, 1.5)
    world.step(None, None, 20.0)
    assert np.allclose(world.q, inside, atol=1e-9)


def test_reset_returns_home_and_dt_spans_split(world, panda):
    assert world.dt_s == pytest.approx(panda.control_period_s)
    world.step(panda.home + 0.2, 1.0, 0.05)
    assert world.ground_truth().time_s == pytest.approx(0.05)
    world.reset()
    assert np.array_equal(world.q, panda.home) and world.gripper_closure == 0.0
    layout = sample_layout(panda.workspace, 9)
    world.reset(layout)
    assert world.layout is layout
    for obj in layout.objects:
        assert np.allclose(world.ground_truth().object_poses[obj.name][:3], obj.position_m)


def test_config_and_time_step_errors(world):
    with pytest.raises(ConfigError, match="SimConfig.gripper_stroke_s.*> 0"):
        SimConfig(gripper_stroke_s=0.0)
    with pytest.raises(ConfigError, match="SimConfig.joint_noise_std"):
        SimConfig(joint_noise_std=float("nan"))
    with pytest.raises(ValueError, match="dt_s"):
        world.step(None, None, 0.0)


def test_measurement_noise(panda):
    config = SimConfig(joint_noise_std=0.001, seed=3)
    with SimWorld(panda, config, sample_layout(panda.workspace, 0)) as world:
        samples = []
        for _ in range(200):
            world.step(None, None)
            samples.append(world.q - world.controller.q)
    assert 0.0007 < np.std(samples) < 0.0013


def test_tool_pose_is_the_end_effector_pose(world, panda):
    kin = panda.kinematic_model()
    pose = kin.frame_pose(world.q, kin.frame_id("panda_hand_tcp"))
    tool = world.tool_pose()
    assert np.allclose(tool[:3], pose.translation)
    assert np.allclose(pin.Quaternion(tool[6], *tool[3:6]).matrix(), pose.rotation)
    assert np.allclose(world.grasp_point(), pose.translation)  # the Panda TCP is the grasp point


def test_kinematic_grasp_attach_carry_release(world):
    layout = world.layout
    cube = layout.object(layout.target_object)
    centre = np.array(cube.position_m)
    move(world, centre + [0, 0, 0.1], 0.0)
    move(world, centre, 0.0)
    assert world.ground_truth().grasped is None
    world.step(None, 1.0, 0.6)
    truth = world.ground_truth()
    assert truth.grasped == cube.name
    assert world.gripper_closure == pytest.approx(1 - cube.size_m / 0.08)  # fingers on the cube
    offset = truth.object_poses[cube.name][:3] - world.grasp_point()
    move(world, centre + [0.05, -0.1, 0.15], 1.0)
    carried = world.ground_truth().object_poses[cube.name][:3]
    assert np.allclose(carried - world.grasp_point(), offset, atol=1e-9)
    assert carried[2] > 0.15
    world.step(None, 0.0, 0.6)
    truth = world.ground_truth()
    assert truth.grasped is None
    assert np.allclose(truth.object_poses[cube.name][:3],
                       [*carried[:2], cube.size_m / 2], atol=1e-9)
    quat = truth.object_poses[cube.name][3:]
    assert quat[1] == pytest.approx(0.0) and quat[2] == pytest.approx(0.0)  # upright
    assert np.linalg.norm(quat) == pytest.approx(1.0)


def test_no_grasp_when_missing_or_already_closed(world):
    cube = world.layout.objects[0]
    centre = np.array(cube.position_m)
    move(world, centre + [0.035, 0.0, 0.0], 0.0)  # beyond the 2.5 cm grasp radius
    world.step(None, 1.0, 0.6)
    assert world.ground_truth().grasped is None and world.gripper_closure == 1.0
    move(world, centre, 1.0)  # closed fingers arriving at the cube do not grasp it
    world.step(None, 1.0, 0.6)
    assert world.ground_truth().grasped is None


@pytest.mark.parametrize("arm", ["panda", "ur5e", "xarm7", "so100"])
def test_pick_and_place_succeeds_and_wrong_pad_fails(arm):
    profile = load_robot_profile(arm)
    layout = sample_layout(profile.workspace, 11)
    wrong = next(p for p in layout.pads if p.name != layout.target_pad)
    for pad, expected in ((layout.pad(layout.target_pad), True), (wrong, False)):
        with SimWorld(profile, SimConfig(), layout) as world:
            cube = np.array(layout.object(layout.target_object).position_m)
            place = np.array([*pad.position_m, cube[2]])
            for xyz, grip in ((cube + [0, 0, 0.08], 0.0), (cube, 0.0), (cube, 1.0),
                              (cube + [0, 0, 0.1], 1.0), (place + [0, 0, 0.1], 1.0),
                              (place, 1.0), (place, 0.0), (place + [0, 0, 0.08], 0.0)):
                move(world, xyz, grip, 1.5)
            truth = world.ground_truth()
            assert truth.success is expected, truth.reason
            assert (truth.target_distance_m < 0.01) is expected


def test_step_and_render_rates(world, capsys):
    """Measured figures (printed with -s); bounds are loose so a busy machine passes."""
    target = world.profile.home + 0.05
    start = time.perf_counter()
    for _ in range(200):
        world.step(target, 0.0)
    step_s = (time.perf_counter() - start) / 200
    world.render("overhead"), world.render("wrist")
    start = time.perf_counter()
    for _ in range(20):
        world.render("overhead"), world.render("wrist")
    pair_s = (time.perf_counter() - start) / 20
    start = time.perf_counter()
    world.render("overhead", 640, 480)
    for _ in range(5):
        world.render("overhead", 640, 480)
    large_s = (time.perf_counter() - start) / 5
    with capsys.disabled():
        print(f"\nsim rates (panda): step {1 / step_s:.0f} Hz ({step_s * 1e3:.2f} ms), two "
              f"224x224 renders {pair_s * 1e3:.1f} ms, one 640x480 render {large_s * 1e3:.1f} ms")
    assert step_s < 0.01 and pair_s < 0.2


def reach_down(world, xyz, iters=400):
    """Error [m] of a top-down IK (approach axis down, yaw free) for the grasp point at xyz."""
    profile = world.profile
    kin = profile.kinematic_model()
    fid = kin.frame_id(profile.end_effector_frames[0])
    axis, offset, q = world.mount.approach_axis, world.grasp_offset_m, profile.home.copy()
    for _ in range(iters):
        pose = kin.frame_pose(q, fid)
        error = np.r_[xyz - pose.act(offset), np.cross(pose.rotation @ axis, [0, 0, -1.0])[:2]]
        if np.linalg.norm(error) < 1e-6:
            break
        jac = pin.computeFrameJacobian(kin.model, kin.data, q, fid, pin.LOCAL_WORLD_ALIGNED)
        rows = np.r_[jac[:3] - pin.skew(pose.rotation @ offset) @ jac[3:], jac[3:5]]
        q = np.clip(q + rows.T @ np.linalg.solve(rows @ rows.T + 1e-6 * np.eye(5), 0.5 * error),
                    profile.limits.position_min, profile.limits.position_max)
    return float(np.linalg.norm(xyz - kin.frame_pose(q, fid).act(offset)))


@pytest.mark.parametrize("arm", ["panda", "ur5e", "xarm7", "so100"])
def test_sampled_items_are_reachable_from_above(arm):
    profile = load_robot_profile(arm)
    above = 0.05 if arm == "so100" else 0.1  # the SO-100 is short: approach from 5 cm
    with SimWorld(profile, SimConfig(), sample_layout(profile.workspace, 0)) as world:
        for seed in range(8):
            layout = sample_layout(profile.workspace, seed)
            points = [np.array(o.position_m) for o in layout.objects]
            points += [np.array([*p.position_m, layout.objects[0].size_m / 2])
                       for p in layout.pads]
            for point in points:
                for height in (0.0, above):
                    assert reach_down(world, point + [0, 0, height]) < 1e-3, (seed, point)
