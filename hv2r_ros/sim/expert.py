"""The scripted expert: solves the task from ground truth, the source of robot demonstrations.

``run_expert_episode`` executes pick-and-place plans (``hv2r_ros.sim.expert_plan``) in a
``SimWorld`` through the core's ``CartesianCommandChain`` (Cartesian filter -> IK -> joint
guard), the same stages that drive a real robot, one control period at a time. When the
commanded tool falls behind the plan (joint limits, singularity slow-down) the plan's clock slows
so the two stay together, and the gripper acts only once the tool has arrived. It re-plans from
ground truth when a lift holds no cube or a plan ends without success. ``on_step`` hands every
step (observation, plan time, command) to a recorder; ``expert_chunk`` turns a step into the
policy contract's action chunk.

``TargetNoise`` perturbs the commanded tool position while the recorded labels stay the clean
plan (DART, Laskey et al. 2017): a policy trained only on perfect expert states never sees
itself off the path, drifts a little, and does not know the way back. Under noise, the states
are off the path and each recorded chunk (the plan relative to the measured tool) leads back.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import numpy as np

from hv2r_ros.core.status import Status
from hv2r_ros.sim.expert_plan import ExpertPlan, PlanSettings, expert_chunk, plan_pick_place

__all__ = ["EpisodeResult", "ExpertPlan", "ExpertStep", "PlanSettings", "TargetNoise",
           "expert_chunk", "plan_from_ground_truth", "plan_pick_place", "run_expert_episode"]

#: Plan time slows down when the commanded tool lags the plan by more than the first figure and
#: stops at the second [m], so joint limits or a singularity slow-down do not let the plan run
#: away from the robot; the gripper acts only within the third of its waypoint [m].
LAG_SLOW_M, LAG_STOP_M, GRIPPER_ARRIVAL_M = 0.005, 0.03, 0.003


def _advance(plan: ExpertPlan, plan_t: float, dt: float, lag_m: float) -> float:
    """The plan time after a step of ``dt`` [s] with the commanded tool ``lag_m`` behind."""
    rate = float(np.clip((LAG_STOP_M - lag_m) / (LAG_STOP_M - LAG_SLOW_M), 0.0, 1.0))
    after = plan_t + rate * dt
    gripper_next = plan.phase(after) in ("grasp", "release") and plan.phase(after) != \
        plan.phase(plan_t)
    return plan_t if gripper_next and lag_m > GRIPPER_ARRIVAL_M else after


#: Phases in which the gripper meets the cube or the pad: the noise fades out there, so the
#: grasp and the placement themselves are exact (the labels still show the way back).
QUIET_PHASES = ("descend", "grasp", "lower", "release")


@dataclasses.dataclass(frozen=True)
class TargetNoise:
    """Smooth random offsets of the commanded tool position (DART-style data collection).

    An Ornstein-Uhlenbeck process per axis (horizontal axes at ``sigma_m``, vertical at half):
    stationary standard deviation ``sigma_m``, correlation time ``tau_s``. Its gain ramps to
    zero over ``fade_s`` in ``QUIET_PHASES`` and back outside them.

    Attributes:
        sigma_m: Stationary standard deviation of the offset [m], 0 to 0.1.
        tau_s: Correlation time [s], > 0.
        fade_s: Time for the gain to go from 1 to 0 or back [s], > 0.
        seed: Random seed (an episode's layout seed keeps a dataset reproducible).
    """

    sigma_m: float = 0.02
    tau_s: float = 0.6
    fade_s: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        from hv2r_ros.core.errors import ConfigError
        if not 0.0 <= self.sigma_m <= 0.1:
            raise ConfigError("noise sigma out of range [0, 0.1] m", field="sigma_m",
                              value=self.sigma_m)
        for name in ("tau_s", "fade_s"):
            if not getattr(self, name) > 0.0:
                raise ConfigError("must be positive", field=name, value=getattr(self, name))


class _NoiseState:
    def __init__(self, noise: TargetNoise, dt: float) -> None:
        self.noise, self.dt = noise, dt
        self.rng = np.random.default_rng(noise.seed)
        self.decay = math.exp(-dt / noise.tau_s)
        self.scale = np.array([1.0, 1.0, 0.5]) * noise.sigma_m
        self.offset = np.zeros(3)
        self.gain = 0.0

    def __call__(self, phase: str) -> np.ndarray:
        kick = math.sqrt(1.0 - self.decay ** 2) * self.rng.standard_normal(3)
        self.offset = self.decay * self.offset + kick
        step = self.dt / self.noise.fade_s
        self.gain = max(0.0, self.gain - step) if phase in QUIET_PHASES else \
            min(1.0, self.gain + step)
        return self.gain * self.scale * self.offset


@dataclasses.dataclass(frozen=True)
class ExpertStep:
    """One control step of an expert episode, as ``run_expert_episode`` reports it.

    Attributes:
        time_s: Episode time at the observation [s] (before the step).
        plan: The plan being executed; ``plan_time_s`` is the time within it [s].
        q: Measured joint positions (n,) at the observation.
        tool_pose: Tool pose (7,) at the measured joints.
        target: The plan's tool pose (7,) for this step; ``gripper`` its gripper command.
        q_command: The chain's joint command (n,) sent to the world.
        status: Final status of the command chain.
    """

    time_s: float
    plan: ExpertPlan
    plan_time_s: float
    q: np.ndarray
    tool_pose: np.ndarray
    target: np.ndarray
    gripper: float
    q_command: np.ndarray
    status: Status


@dataclasses.dataclass(frozen=True)
class EpisodeResult:
    """How an expert episode went.

    Attributes:
        success: The task's success criteria held at the end.
        reason: ``ok`` or the first failing criterion (or ``timeout``).
        duration_s: Simulated duration [s]; ``steps`` control steps.
        attempts: Plans executed (1 when nothing had to be re-planned).
        refusals: Commands the world refused during the episode (0 for a correct expert).
        target_distance_m: Final table-plane distance of the cube to the pad centre [m].
        max_tracking_error_m: Largest distance between the commanded tool position and the
            plan's [m] (the Cartesian filter, IK and joint guard lagging the plan).
        peak_joint_speed_ratio: Largest |joint command velocity| / the profile's limit.
        statuses: Final chain status -> count of steps.
        step_wall_s: Wall-clock time per step [s]: ``chain`` and ``world`` medians and p99s.
    """

    success: bool
    reason: str
    duration_s: float
    steps: int
    attempts: int
    refusals: int
    target_distance_m: float
    max_tracking_error_m: float
    peak_joint_speed_ratio: float
    statuses: dict
    step_wall_s: dict


def plan_from_ground_truth(world, start_pose: np.ndarray, reference_pose: np.ndarray,
                           settings: PlanSettings = PlanSettings()) -> ExpertPlan:
    """A plan for the world's current state: pick the target cube (or carry it on if it is
    already grasped) and place it on the target pad."""
    layout = world.layout
    truth = world.ground_truth()
    pose = truth.object_poses[layout.target_object]  # x y z qw qx qy qz
    yaw = 2.0 * math.atan2(pose[6], pose[3])
    cube = layout.object(layout.target_object)
    pad = layout.pad(layout.target_pad)
    place = np.array([*pad.position_m, 0.5 * cube.size_m])
    return plan_pick_place(start_pose, pose[:3], yaw, place, world.profile.workspace, settings,
                           reference_pose=reference_pose, grasped=truth.grasped == cube.name,
                           grasp_offset_m=world.grasp_offset_m,
                           closing_axis=world.mount.closing_axis,
                           turn_with_base=len(world.joint_names) < 6,
                           return_pose=reference_pose if settings.return_home else None)


def run_expert_episode(world, layout=None, *, settings: PlanSettings = PlanSettings(),
                       chain=None, max_attempts: int = 3, settle_s: float = 0.2,
                       noise: TargetNoise | None = None,
                       on_step: Callable[[ExpertStep], None] | None = None) -> EpisodeResult:
    """Run the scripted expert in a ``SimWorld`` until the task succeeds or it gives up.

    Each control period: the plan's tool pose -> ``CartesianCommandChain.step`` (from the
    measured joints) -> ``world.step``. After a lift that holds no cube, and at the end of a
    plan that did not succeed, it re-plans from ground truth (up to ``max_attempts`` plans).

    Args:
        world: A ``SimWorld``.
        layout: Reset the world to this layout first; None restarts the current one.
        settings: Plan heights and pauses.
        chain: A ``CartesianCommandChain`` of the world's profile (built when None; building
            takes a moment, so pass one to run many episodes).
        max_attempts: Most plans per episode.
        settle_s: Time [s] success must hold at the end of a plan.
        noise: Perturb the commanded tool position (``TargetNoise``); ``on_step`` still
            reports the clean plan target.
        on_step: Called with every ``ExpertStep`` (recording).
    """
    from hv2r_ros.core.command_chain import CartesianCommandChain

    world.reset(layout)
    profile = world.profile
    chain = chain or CartesianCommandChain(profile)
    dt = chain.period_s
    refusals0 = world.refusals
    q_cmd, _ = chain.reset(world.q)
    home = chain.poses(np.asarray(profile.home, dtype=np.float64))[0]
    plan = plan_from_ground_truth(world, chain.poses(world.q)[0], home, settings)
    attempts, plan_t, held_s, step = 1, 0.0, 0.0, 0
    statuses: dict[str, int] = {}
    chain_s, world_s, error, speed = [], [], 0.0, 0.0
    limit = np.asarray(profile.limits.velocity_max)
    reason = "timeout"
    deadline_s = 3.0 * plan.duration_s + 5.0
    perturb = _NoiseState(noise, dt) if noise is not None and noise.sigma_m > 0 else None
    while step * dt < deadline_s:
        q = world.q
        target, gripper = plan.targets(plan_t)
        sent = target
        if perturb is not None:
            sent = target.copy()
            sent[:3] = np.clip(sent[:3] + perturb(plan.phase(plan_t)),
                               profile.workspace.box_min, profile.workspace.box_max)
        tic = time.perf_counter()
        q_next, status = chain.step(sent[None], q)
        tac = time.perf_counter()
        world.step(q_next, gripper, dt)
        world_s.append(time.perf_counter() - tac)
        chain_s.append(tac - tic)
        if on_step is not None:
            on_step(ExpertStep(step * dt, plan, plan_t, q, chain.poses(q)[0], target, gripper,
                               q_next, status.final))
        statuses[status.final.value] = statuses.get(status.final.value, 0) + 1
        lag = float(np.linalg.norm(chain.poses(q_next)[0, :3] - sent[:3]))
        error = max(error, lag)
        speed = max(speed, float(np.max(np.abs(q_next - q_cmd) / dt / limit)))
        q_cmd, step, previous_t = q_next, step + 1, plan_t
        plan_t = _advance(plan, plan_t, dt, lag)
        truth = world.ground_truth()
        missed = plan.phase(previous_t) == "lift" and plan.phase(plan_t) == "carry" and \
            truth.grasped != world.layout.target_object
        done = plan_t >= plan.duration_s
        held_s = held_s + dt if done and truth.success else 0.0
        if held_s >= settle_s:
            break
        if missed or (done and not truth.success):
            if attempts >= max_attempts:
                reason = "grasp missed" if missed else truth.reason
                break
            attempts += 1
            plan, plan_t = plan_from_ground_truth(world, chain.poses(q_cmd)[0], home,
                                                  settings), 0.0
    truth = world.ground_truth()
    return EpisodeResult(
        truth.success, reason if not truth.success else "ok", step * dt, step, attempts,
        world.refusals - refusals0, truth.target_distance_m, error, speed, statuses,
        {"chain_p50": float(np.median(chain_s)), "chain_p99": float(np.percentile(chain_s, 99)),
         "world_p50": float(np.median(world_s)), "world_p99": float(np.percentile(world_s, 99))})

