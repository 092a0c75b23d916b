"""The scripted expert: plans within the tool limits, chunks in the policy contract's form, and
pick-and-place episodes in the simulated world through the real command chain."""

import math

import numpy as np
import pytest

from hv2r_ros.core.command_chain import CartesianCommandChain
from hv2r_ros.core.observation import chunk_to_targets, rotvec_to_quat
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.safety.cartesian import quat_angle
from hv2r_ros.sim.expert import PlanSettings, expert_chunk, plan_pick_place, run_expert_episode
from hv2r_ros.sim.expert_plan import MJ_PEAK_SPEED, minimum_jerk, quat_to_rotvec
from hv2r_ros.sim.task import sample_layout
from hv2r_ros.sim.world import SimConfig, SimWorld
from onnx_fixtures import PANDA_JOINTS, policy_spec

PANDA_SEEDS = range(20)


@pytest.fixture(scope="module")
def panda():
    profile = load_robot_profile("panda")
    chain = CartesianCommandChain(profile)
    world = SimWorld(profile, SimConfig(), sample_layout(profile.workspace, 0))
    yield profile, chain, world
    world.close()


@pytest.fixture(scope="module")
def panda_episodes(panda):
    profile, chain, world = panda
    return [run_expert_episode(world, sample_layout(profile.workspace, seed), chain=chain)
            for seed in PANDA_SEEDS]


def home_pose(chain):
    return chain.poses(np.array(chain.profile.home))[0]


def sampled(plan, dt=0.001):
    times = np.arange(0.0, plan.duration_s + dt, dt)
    targets = [plan.targets(t) for t in times]
    return times, np.array([p for p, _ in targets]), np.array([g for _, g in targets])


def test_minimum_jerk_starts_and_ends_at_rest_and_peaks_at_its_constant():
    s = np.linspace(0.0, 1.0, 100001)
    x = minimum_jerk(s)
    v = np.gradient(x, s)
    assert x[0] == 0.0 and x[-1] == 1.0 and np.all(np.diff(x) >= 0.0)
    assert abs(v[0]) < 1e-4 and abs(v[-1]) < 1e-4
    assert v.max() == pytest.approx(MJ_PEAK_SPEED, rel=1e-4)
    assert minimum_jerk(-1.0) == 0.0 and minimum_jerk(2.0) == 1.0


def test_rotation_vectors_round_trip_through_quaternions():
    rotvecs = np.random.default_rng(0).uniform(-1.0, 1.0, (200, 3)) * 1.7
    assert np.allclose(quat_to_rotvec(rotvec_to_quat(rotvecs)), rotvecs, atol=1e-9)
    assert np.allclose(quat_to_rotvec(np.array([0.0, 0.0, 0.0, 1.0])), 0.0)


def test_plan_stays_within_the_tool_limits_and_the_box(panda):
    profile, chain, _ = panda
    box = profile.workspace
    plan = plan_pick_place(home_pose(chain), [0.6, 0.3, 0.02], 1.2, [0.3, -0.35, 0.02], box)
    times, poses, _ = sampled(plan)
    dt = times[1] - times[0]
    speed = np.linalg.norm(np.diff(poses[:, :3], axis=0), axis=1) / dt
    accel = np.abs(np.diff(speed)) / dt
    turn = quat_angle(poses[:-1, 3:], poses[1:, 3:]) / dt
    assert speed.max() <= box.linear_speed_max
    assert speed.max() > 0.8 * box.linear_speed_max  # planned at the limits, not far below
    assert accel.max() <= box.linear_acceleration_max * 1.01
    assert turn.max() <= box.angular_speed_max
    assert np.all(poses[:, :3] >= box.box_min - 1e-12)
    assert np.all(poses[:, :3] <= box.box_max + 1e-12)


def test_plan_phases_gripper_and_squared_cube(panda):
    """Open on the way down, closed from the grasp to the place, open after; the tool stays
    pointing down and turns about the vertical by the cube's yaw modulo 90 degrees."""
    profile, chain, _ = panda
    home = home_pose(chain)
    plan = plan_pick_place(home, [0.5, 0.1, 0.0225], math.radians(100.0), [0.4, -0.2, 0.0225],
                           profile.workspace)
    assert plan.phases == ("approach", "descend", "grasp", "lift", "carry", "lower", "release",
                           "retreat")
    assert list(plan.gripper) == [0, 0, 1, 1, 1, 1, 0, 0]
    grasp = plan.poses[2]
    assert np.allclose(grasp[:3], [0.5, 0.1, 0.0225])
    axis = _rotate(grasp[3:], [1.0, 0.0, 0.0])  # closing axis (default: the tool's x)
    squared = (math.atan2(axis[1], axis[0]) - math.radians(100.0)) % (math.pi / 2)
    assert min(squared, math.pi / 2 - squared) < 1e-9
    assert quat_angle(grasp[3:], home[3:]) < math.radians(10.1)  # the shortest turn
    assert np.allclose(plan.poses[6][:2], [0.4, -0.2]) and plan.poses[6][2] > 0.0225
    for pose in plan.poses:  # the Panda's tool z axis points out of the gripper: down
        assert _rotate(pose[3:], [0.0, 0.0, 1.0])[2] == pytest.approx(-1.0, abs=1e-6)


def test_plan_puts_the_grasp_point_not_the_tool_on_the_cube(panda):
    profile, chain, _ = panda
    offset = np.array([0.0, 0.0, 0.05])
    cube = np.array([0.5, 0.0, 0.0225])
    plan = plan_pick_place(home_pose(chain), cube, 0.0, [0.4, 0.2, 0.0225], profile.workspace,
                           grasp_offset_m=offset)
    grasp = plan.poses[2]
    rotated = rotvec_to_quat(quat_to_rotvec(grasp[3:]))  # same rotation, via the helpers
    point = grasp[:3] + _rotate(rotated, offset)
    assert np.allclose(point, cube, atol=1e-9)


def _rotate(quat, v):
    x, y, z, w = quat
    r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    return r @ v


def test_expert_chunk_is_the_policy_contracts_ee_delta(panda):
    """chunk_to_targets (what the policy node does with a model's output) turns the expert's
    chunk back into the plan's poses at the chunk's times."""
    profile, chain, _ = panda
    plan = plan_pick_place(home_pose(chain), [0.55, 0.2, 0.0225], 0.5, [0.35, -0.3, 0.0225],
                           profile.workspace)
    spec = policy_spec(action_space="ee_delta", end_effector_frames=("panda_hand_tcp",),
                       chunk_length=16, control_rate_hz=10.0, action_size=7,
                       action_mean=(0.0,) * 7, action_std=(1.0,) * 7, joint_order=PANDA_JOINTS)
    q_obs = np.array(profile.home) + 0.05
    obs_pose = chain.poses(q_obs)[0]
    for t_obs in (0.0, 2.5, plan.times_s[2] - 0.3, plan.duration_s - 0.5):
        chunk = expert_chunk(plan, t_obs, obs_pose, 16, 10.0)
        assert chunk.shape == (16, 7)
        targets, times, gripper = chunk_to_targets(spec, chunk, q_obs, chain)
        for i in range(16):
            pose, command = plan.targets(t_obs + times[i])
            assert np.allclose(targets[i, 0, :3], pose[:3], atol=1e-12)
            assert quat_angle(targets[i, 0, 3:], pose[3:]) < 1e-7
            assert gripper[i] == command


def test_panda_expert_succeeds_on_95_percent_of_seeded_episodes(panda_episodes):
    successes = [r.success for r in panda_episodes]
    assert sum(successes) >= math.ceil(0.95 * len(successes)), [
        (seed, r.reason) for seed, r in zip(PANDA_SEEDS, panda_episodes) if not r.success]
    for r in panda_episodes:
        if r.success:
            assert r.target_distance_m < 0.01


def test_panda_expert_never_commands_beyond_limits(panda_episodes):
    """The world (a position controller with the robot's own limits) refused nothing, and the
    chain's commands stayed within the profile's operational joint speed limits."""
    for r in panda_episodes:
        assert r.refusals == 0
        assert r.peak_joint_speed_ratio <= 1.0 + 1e-9
        assert not any(status.startswith("hold") for status in r.statuses)


class MissFirstGrasp:
    """A world whose gripper slips on its first grasp (closing is ignored until it opens)."""

    def __init__(self, world):
        self._world = world
        self._slipping, self._closed_once = True, False

    def __getattr__(self, name):
        return getattr(self._world, name)

    def step(self, q_target, gripper_closed=None, dt_s=None):
        if gripper_closed is not None and gripper_closed >= 0.5 and self._slipping:
            self._closed_once = True
            gripper_closed = 0.0
        elif gripper_closed is not None and gripper_closed < 0.5 and self._closed_once:
            self._slipping = False
        return self._world.step(q_target, gripper_closed, dt_s)


def test_a_missed_grasp_is_planned_again_from_ground_truth(panda):
    profile, chain, world = panda
    result = run_expert_episode(MissFirstGrasp(world), sample_layout(profile.workspace, 5),
                                chain=chain)
    assert result.success and result.attempts == 2 and result.refusals == 0


def test_episode_steps_carry_what_recording_needs(panda):
    """Every step reports the observation (q, tool pose at q), the plan time and the command;
    the expert's chunk at a step starts at the plan's next target."""
    profile, chain, world = panda
    steps = []
    result = run_expert_episode(world, sample_layout(profile.workspace, 7), chain=chain,
                                on_step=steps.append)
    assert result.success and len(steps) == result.steps
    assert [s.time_s for s in steps[:3]] == pytest.approx([0.0, 0.01, 0.02])
    step = steps[len(steps) // 2]
    assert np.allclose(step.tool_pose, chain.poses(step.q)[0])
    chunk = expert_chunk(step.plan, step.plan_time_s, step.tool_pose, 4, profile.control_rate_hz)
    pose, _ = step.plan.targets(step.plan_time_s + profile.control_period_s)
    assert np.allclose(step.tool_pose[:3] + chunk[0, :3], pose[:3])


def test_five_joint_arm_turns_with_its_base_and_reaches_with_its_grasp_offset():
    """The SO-100 (5 joints, grasp point 8 cm from its end-effector frame) succeeds too."""
    profile = load_robot_profile("so100")
    with SimWorld(profile, SimConfig(), sample_layout(profile.workspace, 1)) as world:
        result = run_expert_episode(world, settings=PlanSettings())
    assert result.success and result.refusals == 0, result


def test_target_noise_is_refused_out_of_range():
    from hv2r_ros.core.errors import ConfigError
    from hv2r_ros.sim.expert import TargetNoise

    for bad in (dict(sigma_m=-0.01), dict(sigma_m=0.5), dict(tau_s=0.0), dict(fade_s=-1.0)):
        with pytest.raises(ConfigError):
            TargetNoise(**bad)


def test_noisy_expert_leaves_the_path_but_its_labels_lead_back(panda):
    """DART-style recording: under target noise the robot visits states off the plan, the
    episode still succeeds within limits, and each recorded chunk (the clean plan relative to
    the measured tool) points back toward the plan: the first row's correction is opposite
    to the deviation. The noise fades out while grasping and placing."""
    from hv2r_ros.sim.expert import QUIET_PHASES, TargetNoise

    profile, chain, world = panda
    results = []
    for seed in (11, 12):
        steps = []
        result = run_expert_episode(world, sample_layout(profile.workspace, seed), chain=chain,
                                    noise=TargetNoise(0.02, seed=seed), on_step=steps.append)
        results.append(result)
        deviation = np.array([s.tool_pose[:3] - s.target[:3] for s in steps])
        off = np.linalg.norm(deviation[:, :2], axis=1)
        assert np.percentile(off, 90) > 0.01  # it does leave the path
        far = [i for i in range(len(steps)) if off[i] > 0.015]
        agree = 0
        for i in far:
            chunk = expert_chunk(steps[i].plan, steps[i].plan_time_s, steps[i].tool_pose, 1,
                                 profile.control_rate_hz)
            agree += float(np.dot(chunk[0, :2], -deviation[i, :2])) > 0
        assert agree >= 0.95 * len(far)
        quiet = [i for i, s in enumerate(steps) if s.plan.phase(s.plan_time_s) in ("grasp",
                                                                                   "release")]
        assert quiet and np.max(off[quiet]) < 0.01  # faded out where the gripper acts
        assert set(QUIET_PHASES) >= {"grasp", "release"}
    assert all(r.success and r.refusals == 0 for r in results), results
    assert max(r.peak_joint_speed_ratio for r in results) <= 1.0 + 1e-6
