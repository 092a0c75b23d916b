"""The control step users run: Cartesian filter -> IK -> joint guard, on every robot profile."""

import numpy as np
import pytest

from hv2r_ros.core.command_chain import CartesianCommandChain
from hv2r_ros.core.robot_profile import list_robot_profiles, load_robot_profile
from hv2r_ros.core.status import Status
from hv2r_ros.sim.kinematic import KinematicRobot

ROBOTS = list_robot_profiles()
_CHAINS = {}


def chain_for(name):
    if name not in _CHAINS:
        _CHAINS[name] = CartesianCommandChain(load_robot_profile(name))
    return _CHAINS[name]


def joint_rates(q, period):
    v = np.diff(q, axis=0) / period
    a = np.diff(np.vstack([np.zeros(q.shape[1]), v]), axis=0) / period
    return v, a


def assert_joint_limits(profile, q):
    limits, period = profile.limits, profile.control_period_s
    v, a = joint_rates(q, period)
    assert np.all(q >= limits.position_min) and np.all(q <= limits.position_max)
    assert np.all(np.abs(v) <= limits.velocity_max * (1 + 1e-9) + 1e-12)
    assert np.all(np.abs(a) <= limits.acceleration_max * (1 + 1e-9) + 1e-9)


def test_robot_list_is_the_five_profiles():
    assert set(ROBOTS) == {"panda", "ur5e", "xarm7", "so100", "g1"}


@pytest.mark.parametrize("name", ROBOTS)
def test_first_command_after_reset_equals_the_measured_state(name):
    chain = chain_for(name)
    q_measured = np.array(chain.profile.home) + 0.01
    q_cmd, status = chain.reset(q_measured)
    assert status is Status.OK
    assert np.array_equal(q_cmd, q_measured)


@pytest.mark.parametrize("name", ROBOTS)
def test_fixed_goal_is_reached_without_overshoot(name):
    """A reachable goal (the pose of a nearby configuration) is reached to < 1 mm / 0.01 rad,
    and the tool never runs past it by more than 2 mm along the move."""
    chain = chain_for(name)
    profile = chain.profile
    home = np.array(profile.home)
    offset = np.random.default_rng(3).uniform(-0.2, 0.2, home.shape)
    goal = chain.poses(np.clip(home + offset, profile.limits.position_min,
                               profile.limits.position_max))
    chain.reset(home)
    start = chain.poses(home)
    q, qs = home, [home]
    for _ in range(int(6.0 / profile.control_period_s)):
        q, status = chain.step(goal, q)
        qs.append(q)
    qs = np.array(qs)
    tool = np.array([chain.poses(qk) for qk in qs])
    move = goal[:, :3] - start[:, :3]
    direction = move / np.linalg.norm(move, axis=1, keepdims=True)
    past_goal = np.einsum("kfi,fi->kf", tool[:, :, :3] - goal[:, :3], direction)
    assert np.all(past_goal <= 0.002)
    assert np.all(np.linalg.norm(tool[-1, :, :3] - goal[:, :3], axis=1) < 1e-3)
    # |<q_tool, q_goal>| > cos(0.005): orientation error below 0.01 rad.
    assert np.all(np.abs(np.einsum("fi,fi->f", tool[-1, :, 3:], goal[:, 3:])) > np.cos(0.005))
    assert_joint_limits(profile, qs)


@pytest.mark.parametrize("name", ROBOTS)
def test_adversarial_targets_never_break_joint_limits(name):
    """Targets far away, non-finite, huge or malformed, switching at random: zero violations."""
    chain = chain_for(name)
    profile = chain.profile
    rng = np.random.default_rng(7)
    home = np.array(profile.home)
    chain.reset(home)
    start = chain.poses(home)
    frames = len(profile.end_effector_frames)
    robot = KinematicRobot(home, profile.limits.position_min, profile.limits.position_max)
    qs, holds = [home], 0
    target = start
    for k in range(1500):
        if k % 25 == 0:
            kind = rng.integers(6)
            target = start.copy()
            target[:, :3] += rng.normal(0.0, 0.3, (frames, 3))
            if kind == 1:
                target[:, :3] *= 1e30
            elif kind == 2:
                target[rng.integers(frames), rng.integers(7)] = rng.choice([np.nan, np.inf, -np.inf])
            elif kind == 3:
                target = target[:, :6]  # wrong shape
            elif kind == 4:
                quaternion = rng.normal(size=(frames, 4))
                target[:, 3:] = quaternion / np.linalg.norm(quaternion, axis=1, keepdims=True)
            elif kind == 5:
                target = None
        q_cmd, status = chain.step(target, robot.measure())
        holds += status.final.is_hold
        robot.command(q_cmd, profile.control_period_s)
        qs.append(q_cmd)
    assert holds > 0
    assert_joint_limits(profile, np.array(qs))


def test_nan_target_holds_and_brakes():
    chain = chain_for("panda")
    profile = chain.profile
    home = np.array(profile.home)
    chain.reset(home)
    goal = chain.poses(home)
    goal[0, 1] += 0.2
    q = home
    for _ in range(60):
        q, _ = chain.step(goal, q)
    speed_before = np.abs(chain.guard.velocity).max()
    bad = goal.copy()
    bad[0, 0] = np.nan
    speeds = []
    for _ in range(30):
        q, status = chain.step(bad, q)
        assert status.final is Status.HOLD_NON_FINITE
        speeds.append(np.abs(chain.guard.velocity).max())
    assert speed_before > 0.05
    assert np.all(np.diff(speeds) <= 1e-12) and speeds[-1] == 0.0
