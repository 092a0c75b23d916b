"""Differential IK (pink QP + guards) on every robot of the project.

Robots come from their profiles (``config/robots/*.yaml``), stepped at 100 Hz.

Convergence: targets are FK of random configurations within +-0.4 rad of home (so they are
reachable, also for the 5-DOF SO-100), started near home. The per-step velocity limit bounds
how fast any IK can get there: a straight joint-space path needs
``ceil(max_i |q*_i - q0_i| / (v_i dt))`` steps. The budget is 4x that plus 100 steps, which
leaves room for the task-space path of a redundant arm; the loop stops at 1 mm / 0.01 rad.

Safety invariants (every step, every robot, whatever the target): joints stay inside their
position limits (or, when measured outside, never move further out) and never move more than
``velocity_max * dt`` per step.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pinocchio as pin
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hv2r_ros.core import ik as ik_module
from hv2r_ros.core.errors import ConfigError, FrameNotFoundError, LimitsError
from hv2r_ros.core.ik import DifferentialIK
from hv2r_ros.core.ik_config import IKConfig
from hv2r_ros.core.ik_targets import (
    forward_kinematics,
    pose_error,
    targets_from_array,
    validate_targets,
)
from hv2r_ros.core.kinematics import KinematicModel
from hv2r_ros.core.limits import JointLimits
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.singularity import singularity_scale
from hv2r_ros.core.status import Status

ROBOTS = ("panda", "ur5e", "xarm7", "so100", "g1")  # list_robot_profiles(), pinned
DT_S = 0.01
# The SO-100 reaches ~0.3 m: its raw (1 m) condition number is ~29 at home, so the 17/30
# thresholds need a 0.3 m characteristic length to mean what they mean on a 1 m arm.

@dataclasses.dataclass
class Rig:
    name: str
    kinematic_model: KinematicModel
    limits: JointLimits
    home: np.ndarray
    config: IKConfig

    def ik(self, **overrides) -> DifferentialIK:
        config = dataclasses.replace(self.config, **overrides)
        return DifferentialIK(self.kinematic_model, self.limits, config, self.home)


def _load_rig(name: str) -> Rig:
    profile = load_robot_profile(name)
    config = IKConfig.from_profile(profile, dt_s=DT_S)
    return Rig(name, profile.kinematic_model(), profile.limits, np.array(profile.home), config)


_RIGS: dict[str, Rig] = {}


@pytest.fixture(params=ROBOTS)
def rig(request) -> Rig:
    if request.param not in _RIGS:
        _RIGS[request.param] = _load_rig(request.param)
    return _RIGS[request.param]


def assert_step_invariants(limits: JointLimits, q: np.ndarray, q_next: np.ndarray, dt: float):
    assert q_next.shape == q.shape and np.all(np.isfinite(q_next))
    assert np.all(np.abs(q_next - q) <= limits.velocity_max * dt), "velocity limit exceeded"
    # Inside the limits, or no further outside than measured.
    assert np.all(q_next >= np.minimum(limits.position_min, q)), "moved below position_min"
    assert np.all(q_next <= np.maximum(limits.position_max, q)), "moved above position_max"


def _worst_error(ik: DifferentialIK, q: np.ndarray, targets) -> tuple[float, float]:
    poses = ik.forward_kinematics(q)
    errors = [pose_error(poses[frame], targets[frame]) for frame in ik.frames]
    return max(e[0] for e in errors), max(e[1] for e in errors)


def _inside(limits: JointLimits, q: np.ndarray) -> np.ndarray:
    return np.clip(q, limits.position_min, limits.position_max)


def test_reaches_fk_targets(rig: Rig):
    ik = rig.ik()
    limits = rig.limits
    rng = np.random.default_rng(ROBOTS.index(rig.name))
    slowdown = ik.config.singularity_slowdown_condition
    used = []
    for _ in range(12):
        while True:  # a target pose away from singularities, where the IK runs at full speed
            q_star = _inside(limits, rig.home + rng.uniform(-0.4, 0.4, limits.size))
            if ik.condition_number(q_star) < 0.8 * slowdown:
                break
        targets = ik.forward_kinematics(q_star)
        q = _inside(limits, rig.home + rng.uniform(-0.05, 0.05, limits.size))
        straight = int(np.ceil(np.max(np.abs(q_star - q) / (limits.velocity_max * DT_S))))
        budget = 4 * straight + 100
        for steps in range(budget + 1):
            position, orientation = _worst_error(ik, q, targets)
            if position < 1e-3 and orientation < 0.01:
                break
            q_next, status = ik.step(q, targets)
            assert not status.is_hold, status
            assert_step_invariants(limits, q, q_next, DT_S)
            q = q_next
        else:
            pytest.fail(
                f"{rig.name}: {position * 1e3:.2f} mm / {orientation:.4f} rad left after "
                f"{budget} steps toward q*={np.round(q_star, 3)}"
            )
        used.append(steps)
    assert max(used) > 0


def _pushed_out(pose: pin.SE3, distance_m: float) -> pin.SE3:
    """``pose`` moved ``distance_m`` further from the base origin (beyond reach: stretched)."""
    direction = pose.translation / np.linalg.norm(pose.translation)
    return pin.SE3(pose.rotation, pose.translation + distance_m * direction)


def _random_pose(rng: np.random.Generator, reach_m: float) -> pin.SE3:
    quaternion = rng.normal(size=4)
    quaternion /= np.linalg.norm(quaternion)
    rotation = pin.Quaternion(*quaternion).matrix()
    return pin.SE3(rotation, rng.uniform(-reach_m, reach_m, 3))


def test_limits_hold_for_unreachable_singular_and_random_targets(rig: Rig):
    ik = rig.ik()
    limits = rig.limits
    rng = np.random.default_rng(100 + ROBOTS.index(rig.name))
    home_poses = ik.forward_kinematics(rig.home)
    halt = ik.config.singularity_halt_condition
    scenarios = [
        ("far", {f: _pushed_out(p, 3.0) for f, p in home_poses.items()}, 200),
        ("stretched", {f: _pushed_out(p, 0.5) for f, p in home_poses.items()}, 200),
    ]
    q = rig.home.copy()
    seen = set()
    for label, targets, steps in scenarios:
        start_condition = ik.condition_number(q)
        for _ in range(steps):
            q_next, status = ik.step(q, targets)
            seen.add(status)
            assert_step_invariants(limits, q, q_next, DT_S)
            # Scaling makes the halt threshold a barrier: at most one step's overshoot.
            assert ik.condition_number(q_next) <= 1.02 * max(halt, start_condition), label
            q = q_next
    # Adversarial: random poses (many unreachable), switched every 5 steps, measured with noise
    # that can put the measured state slightly outside the limits.
    for i in range(300):
        if i % 5 == 0:
            targets = {f: _random_pose(rng, 2.0) for f in ik.frames}
        q_next, status = ik.step(q, targets)
        seen.add(status)
        assert_step_invariants(limits, q, q_next, DT_S)
        q = q_next + rng.uniform(-2e-3, 2e-3, limits.size)
    assert Status.HOLD_IK_FAILED not in seen


@pytest.mark.parametrize("name", ["ur5e", "xarm7"])
def test_leaves_an_exact_singularity(name):
    # Fully stretched (all zeros) is an exact singularity of both arms: motion that lowers the
    # condition number must be allowed, else the robot would hold there forever.
    rig = _load_rig(name)
    ik = rig.ik()
    q = _inside(rig.limits, np.zeros(rig.limits.size))
    assert ik.condition_number(q) > ik.config.singularity_halt_condition
    targets = ik.forward_kinematics(rig.home)
    for _ in range(1000):
        q_next, status = ik.step(q, targets)
        assert status is not Status.HOLD_SINGULAR
        assert_step_invariants(rig.limits, q, q_next, DT_S)
        q = q_next
    position, orientation = _worst_error(ik, q, targets)
    assert position < 1e-3 and orientation < 0.01


def test_measured_outside_limits_moves_back_inward(rig: Rig):
    ik = rig.ik()
    limits = rig.limits
    q = rig.home.copy()
    q[0] = limits.position_max[0] + 0.05  # e.g. a joint that coasted past its margin
    # A target that pulls that joint further outward.
    pulled = rig.home.copy()
    pulled[0] = limits.position_max[0] + 0.5
    targets = ik.forward_kinematics(pulled)
    for _ in range(20):
        q_next, status = ik.step(q, targets)
        assert_step_invariants(limits, q, q_next, DT_S)
        assert q_next[0] <= max(q[0], limits.position_max[0])  # never further out
        q = q_next
    assert q[0] <= limits.position_max[0]


def test_non_finite_and_malformed_inputs_hold(rig: Rig):
    ik = rig.ik()
    q = rig.home.copy()
    targets = ik.forward_kinematics(q)
    frame = ik.frames[0]

    bad_q = q.copy()
    bad_q[-1] = np.nan
    q_next, status = ik.step(bad_q, targets)
    assert status is Status.HOLD_INVALID_MEASUREMENT
    assert np.array_equal(q_next, bad_q, equal_nan=True)

    cases = [
        ({**targets, frame: pin.SE3(targets[frame].rotation, np.array([np.nan, 0.0, 0.0]))},
         Status.HOLD_NON_FINITE),
        ({**targets, frame: pin.SE3(np.diag([1.0, 1.0, -1.0]), np.zeros(3))},
         Status.HOLD_INVALID_ROTATION),
        ({**targets, frame: pin.SE3(np.diag([1.0, 1.0, 1.2]), np.zeros(3))},
         Status.HOLD_INVALID_ROTATION),
        ({**targets, "no_such_frame": targets[frame]}, Status.HOLD_WRONG_NAMES),
        ({f: p for f, p in targets.items() if f != frame}, Status.HOLD_WRONG_NAMES),
        ({**targets, frame: np.eye(4)}, Status.HOLD_WRONG_LENGTH),
        (np.full((len(ik.frames), 7), np.inf), Status.HOLD_NON_FINITE),
        (np.zeros((len(ik.frames), 7)), Status.HOLD_INVALID_ROTATION),
        (np.zeros((len(ik.frames) + 1, 7)), Status.HOLD_WRONG_LENGTH),
    ]
    for bad_targets, expected in cases:
        q_next, status = ik.step(q, bad_targets)
        assert status is expected
        assert np.array_equal(q_next, q)
    for dt, expected in ((math.nan, Status.HOLD_NON_FINITE), (0.0, Status.HOLD_NON_MONOTONIC)):
        q_next, status = ik.step(q, targets, dt_s=dt)
        assert status is expected and np.array_equal(q_next, q)
    q_next, status = ik.step(q[:-1], targets)
    assert status is Status.HOLD_WRONG_LENGTH


def test_array_targets_match_mapping_targets(rig: Rig):
    ik = rig.ik()
    rng = np.random.default_rng(7)
    q = rig.home.copy()
    poses = ik.forward_kinematics(_inside(rig.limits, rig.home + rng.uniform(-0.2, 0.2, q.size)))
    rows = np.array([
        np.concatenate([poses[f].translation, pin.Quaternion(poses[f].rotation).coeffs()])
        for f in ik.frames
    ])
    from_mapping, status_mapping = ik.step(q, poses)
    from_rows, status_rows = ik.step(q, rows)
    assert status_mapping is status_rows is Status.OK
    np.testing.assert_allclose(from_rows, from_mapping, atol=1e-9)


def test_unknown_frame_fails_at_construction_listing_frames():
    rig = _load_rig("panda")
    with pytest.raises(FrameNotFoundError) as error:
        rig.ik(frames=("panda_hand_tcp", "no_such_frame"))
    assert error.value.field == "frames[1]" and error.value.value == "no_such_frame"
    assert "panda_hand_tcp" in error.value.choices and "panda_link7" in str(error.value)


def test_ik_failure_holds(monkeypatch):
    from pink.exceptions import NoSolutionFound

    rig = _load_rig("panda")
    ik = rig.ik()

    def no_solution(*args, **kwargs):
        raise NoSolutionFound(None, None)

    monkeypatch.setattr(ik_module.pink, "solve_ik", no_solution)
    q = rig.home.copy()
    q_next, status = ik.step(q, ik.forward_kinematics(q + 0.1))
    assert status is Status.HOLD_IK_FAILED and np.array_equal(q_next, q)


def test_construction_rejects_mismatched_limits_and_posture():
    rig = _load_rig("panda")
    limits = rig.limits
    reversed_limits = JointLimits(
        tuple(reversed(limits.names)), limits.position_min, limits.position_max,
        limits.velocity_max, limits.acceleration_max,
    )
    with pytest.raises(LimitsError, match="model's joints"):
        DifferentialIK(rig.kinematic_model, reversed_limits, rig.config, rig.home)
    outside = rig.home.copy()
    outside[3] = limits.position_max[3] + 0.1
    with pytest.raises(LimitsError) as error:
        DifferentialIK(rig.kinematic_model, limits, rig.config, outside)
    assert limits.names[3] in error.value.field
    with pytest.raises(LimitsError):
        DifferentialIK(rig.kinematic_model, limits, rig.config, rig.home[:-1])


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"solver": "no_such_solver"}, "solver"),
        ({"singularity_halt_condition": 17.0}, "singularity_halt_condition"),
        ({"position_cost": -1.0}, "position_cost"),
        ({"frame_task_gain": 0.0}, "frame_task_gain"),
        ({"dt_s": math.nan}, "dt_s"),
        ({"frames": ()}, "frames"),
        ({"frames": "panda_hand_tcp"}, "frames"),
        ({"characteristic_length_m": 0.0}, "characteristic_length_m"),
    ],
)
def test_config_validation_names_the_field(overrides, field):
    with pytest.raises(ConfigError) as error:
        IKConfig(**{"frames": ("panda_hand_tcp",), **overrides})
    assert error.value.field == field
    if field == "solver":
        assert "daqp" in error.value.choices and "daqp" in str(error.value)


def test_default_solver_prefers_daqp():
    assert IKConfig(("tool0",)).solver in ("daqp", "quadprog")


def test_singularity_scale_is_linear_between_thresholds():
    assert singularity_scale(10.0, 17.0, 30.0) == 1.0
    assert singularity_scale(23.5, 17.0, 30.0) == pytest.approx(0.5)
    for condition in (30.0, 1e9, math.inf, math.nan):
        assert singularity_scale(condition, 17.0, 30.0) == 0.0


def test_condition_ignores_joints_that_do_not_move_the_frame():
    # Each G1 hand's Jacobian has 7 zero columns (the other arm); SO-100 has only 5 joints.
    for name in ("g1", "so100"):
        rig = _load_rig(name)
        ik = rig.ik()
        assert ik.condition_number(rig.home) < ik.config.singularity_slowdown_condition


def test_pose_helpers():
    a = pin.SE3(np.eye(3), np.array([0.1, 0.2, 0.3]))
    b = pin.SE3(pin.exp3(np.array([0.0, 0.0, 0.3])), np.array([0.1, 0.2, 0.4]))
    position, orientation = pose_error(a, b)
    assert position == pytest.approx(0.1) and orientation == pytest.approx(0.3)
    rig = _load_rig("panda")
    ik = rig.ik()
    frame = ik.frames[0]
    free = forward_kinematics(rig.kinematic_model, rig.home, ik.frames)[frame]
    assert pose_error(free, ik.forward_kinematics(rig.home)[frame]) == pytest.approx((0, 0))
    assert validate_targets(ik.frames, {frame: free}) is Status.OK
    targets, status = targets_from_array(ik.frames, [[0, 0, 0, 0, 0, 0, 1.0005]])
    assert status is Status.OK  # normalised within tolerance
    assert np.allclose(targets[frame].rotation, np.eye(3))


@settings(max_examples=40)
@given(
    fractions=st.lists(st.floats(-0.1, 1.1), min_size=7, max_size=7),
    position=st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3),
    quaternion=st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4).filter(
        lambda v: np.linalg.norm(v) > 0.1
    ),
    dt=st.floats(1e-3, 0.05),
)
def test_any_measured_state_and_target_respect_the_invariants(fractions, position, quaternion, dt):
    if "panda" not in _RIGS:
        _RIGS["panda"] = _load_rig("panda")
    rig = _RIGS["panda"]
    ik = rig.ik()
    limits = rig.limits
    # Anywhere in the limits, up to 0.2 rad beyond them.
    span = limits.position_max - limits.position_min
    q = limits.position_min + np.array(fractions) * span
    q = np.clip(q, limits.position_min - 0.2, limits.position_max + 0.2)
    row = np.concatenate([position, np.array(quaternion) / np.linalg.norm(quaternion)])
    q_next, status = ik.step(q, row[None, :], dt_s=dt)
    assert status in (Status.OK, Status.SCALED_VELOCITY, Status.SCALED_SINGULARITY,
                      Status.HOLD_SINGULAR)
    assert_step_invariants(limits, q, q_next, dt)
    diagnostics = ik.last_diagnostics
    assert math.isfinite(diagnostics.condition_number) or status is Status.HOLD_SINGULAR
