"""The scripted expert in closed loop: action chunks from measured joints and ground truth.

``run_expert_episode`` (``hv2r_ros.sim.expert``) steps a ``SimWorld`` itself. ``ClosedLoopExpert``
is the same expert for a robot it does not step: it sees only what a policy sees (a joint state
and its stamp) plus the sim's task and ground truth, and returns chunks of absolute tool poses
and gripper commands, which the stack's safety filter and command output then execute.

- The plan (``plan_from_ground_truth``) starts at the measured tool pose.
- Its clock follows the stamps of the joint states, slowed as the measured tool lags the plan
  by more than ``LAG_SLOW_M`` and stopped at ``LAG_STOP_M`` (as in ``run_expert_episode``).
- A grasp or release waits for the measured tool to be within ``GRIPPER_ARRIVAL_M`` of its
  waypoint: chunk rows and the plan clock stop just before it until then, so no row closes or
  opens the gripper early.
- It re-plans from ground truth when a lift ends without the target cube in the gripper, or
  when a plan ended and success did not follow within ``settle_s``; after ``max_attempts``
  plans it gives up. Finished or given up, it streams the last pose (the robot holds there).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pinocchio as pin

from hv2r_ros.sim.expert import (
    GRIPPER_ARRIVAL_M, LAG_SLOW_M, LAG_STOP_M, ExpertPlan, PlanSettings, plan_from_ground_truth)
from hv2r_ros.sim.task_messages import SimTask
from hv2r_ros.sim.world import GroundTruth

__all__ = ["ClosedLoopExpert", "ExpertChunk"]

_GRIPPER_PHASES = ("grasp", "release")
_BEFORE_S = 1e-6  # a time just before a knot still belongs to the segment that ends there


@dataclasses.dataclass(frozen=True)
class _Mount:
    closing_axis: np.ndarray


class _TaskView:
    """What ``plan_from_ground_truth`` reads of a world, from the sim's messages."""

    def __init__(self, profile, task: SimTask, truth: GroundTruth) -> None:
        self.profile, self.layout, self._truth = profile, task.layout, truth
        self.joint_names = list(profile.joint_names)
        self.grasp_offset_m = task.grasp_offset_m
        self.mount = _Mount(task.closing_axis)

    def ground_truth(self) -> GroundTruth:
        return self._truth


@dataclasses.dataclass(frozen=True)
class ExpertChunk:
    """One chunk of the expert.

    Attributes:
        poses: Absolute tool poses (H, 7) ``[x y z qx qy qz qw]`` in the base frame.
        gripper: Gripper commands (H,) in [0, 1] (1 closed).
        times_s: Offset of each row from the observation's stamp [s], shape (H,).
        phase: The plan's phase at the observation (``PHASES``), or ``done`` / ``gave up``.
        plan_time_s: Plan time at the observation [s].
    """

    poses: np.ndarray
    gripper: np.ndarray
    times_s: np.ndarray
    phase: str
    plan_time_s: float


class ClosedLoopExpert:
    """Chunks of the scripted expert for observations of a robot driven elsewhere.

    Args:
        profile: The robot profile (first end-effector frame; home pose = tool down).
        settings: Plan heights and pauses.
        max_attempts: Most plans per episode.
        settle_s: Time [s] after a plan's end within which ground truth must report success
            before it re-plans (covers the ground truth's rate and latency).
    """

    def __init__(self, profile, settings: PlanSettings = PlanSettings(), max_attempts: int = 3,
                 settle_s: float = 0.5) -> None:
        self.profile, self.settings = profile, settings
        self.max_attempts, self.settle_s = max_attempts, settle_s
        self._kin = profile.kinematic_model()
        self._ee = self._kin.frame_id(profile.end_effector_frames[0])
        self.home_pose = self.tool_pose(np.asarray(profile.home, dtype=np.float64))
        self.task: SimTask | None = None
        self.plan: ExpertPlan | None = None
        self.attempts, self.outcome, self.last_reason = 0, "", ""
        self._plan_t = self._stamp_s = self._done_s = 0.0

    def tool_pose(self, q: np.ndarray) -> np.ndarray:
        """Tool pose (7,) ``[x y z qx qy qz qw]`` at joint positions ``q`` (n,)."""
        return np.asarray(pin.SE3ToXYZQUAT(self._kin.frame_pose(q, self._ee)))

    def set_task(self, task: SimTask) -> bool:
        """Take the sim's task; a new episode drops the plan. Returns whether it was new."""
        if self.task is not None and task.episode == self.task.episode:
            return False
        self.task, self.plan, self.attempts, self.outcome = task, None, 0, ""
        return True

    def _new_plan(self, tool: np.ndarray, truth: GroundTruth, stamp_s: float) -> None:
        view = _TaskView(self.profile, self.task, truth)
        self.plan = plan_from_ground_truth(view, tool, self.home_pose, self.settings)
        self.attempts += 1
        self._plan_t, self._stamp_s, self._done_s = 0.0, stamp_s, -1.0

    def _gate_s(self, plan: ExpertPlan, plan_t: float, tool: np.ndarray) -> float:
        """Latest plan time allowed before the next grasp or release (inf when arrived)."""
        for k, phase in enumerate(plan.phases):
            start = float(plan.times_s[k])
            if phase in _GRIPPER_PHASES and start > plan_t:
                if np.linalg.norm(tool[:3] - plan.poses[k][:3]) > GRIPPER_ARRIVAL_M:
                    return start - _BEFORE_S
                return np.inf
        return np.inf

    def _advance(self, tool: np.ndarray, truth: GroundTruth, stamp_s: float) -> None:
        plan, previous = self.plan, self._plan_t
        lag = float(np.linalg.norm(tool[:3] - plan.targets(previous)[0][:3]))
        rate = float(np.clip((LAG_STOP_M - lag) / (LAG_STOP_M - LAG_SLOW_M), 0.0, 1.0))
        dt = max(0.0, stamp_s - self._stamp_s)
        self._plan_t = min(previous + rate * dt, self._gate_s(plan, previous, tool))
        self._stamp_s = stamp_s
        if self.outcome:
            return
        target = self.task.layout.target_object
        lift_end = [float(plan.times_s[k + 1]) for k, p in enumerate(plan.phases) if p == "lift"]
        missed = any(previous < t <= self._plan_t for t in lift_end) and truth.grasped != target
        done = self._plan_t >= plan.duration_s
        if done and self._done_s < 0.0:
            self._done_s = stamp_s
        if done and truth.success:
            self.outcome, self.last_reason = "done", "ok"
        elif missed or (done and stamp_s - self._done_s >= self.settle_s):
            self.last_reason = "grasp missed" if missed else truth.reason
            if self.attempts >= self.max_attempts:
                self.outcome = "gave up"
            else:
                self._new_plan(tool, truth, stamp_s)

    def step(self, q: np.ndarray, stamp_s: float, truth: GroundTruth, horizon: int,
             period_s: float) -> ExpertChunk:
        """The chunk for a joint state.

        Args:
            q: Measured joint positions (n,) [rad or m], profile order.
            stamp_s: The joint state's stamp [s]; the chunk's rows are timed from it.
            truth: The latest ground truth of the current task's episode.
            horizon: Rows H.
            period_s: Time between rows [s] (the control period).

        Raises:
            RuntimeError: No task yet (call ``set_task`` first).
        """
        if self.task is None:
            raise RuntimeError("no task: call set_task with the sim's task first")
        tool = self.tool_pose(q)
        if self.plan is None:
            self._new_plan(tool, truth, stamp_s)
        else:
            self._advance(tool, truth, stamp_s)
        plan, plan_t = self.plan, self._plan_t
        times = np.arange(1, horizon + 1, dtype=np.float64) * period_s
        gate = self._gate_s(plan, plan_t, tool)
        rows = [plan.targets(min(plan_t + t, gate)) for t in times]
        phase = self.outcome or plan.phase(plan_t)
        return ExpertChunk(np.array([pose for pose, _ in rows]),
                           np.array([gripper for _, gripper in rows]), times, phase, plan_t)
