"""Closed-loop policy episodes in the simulator, in one process, on the stack's own core objects.

Per control period (the profile's rate): the chunk executor's target for now -> the Cartesian
command chain (Cartesian filter, IK, joint guard) -> ``world.step``. At the policy's rate: both
cameras are rendered, embedded by the ONNX encoder in one batch, the policy infers a chunk from
(camera embeddings, goal embedding, joint positions), and ``chunk_to_targets`` turns it into
absolute tool targets stamped with the observation time. The same objects run inside the ROS
nodes; here simulated time stands in for the clock and inference is instantaneous in it, so an
episode's outcome does not depend on how busy the machine is.

Used by ``hv2r eval`` (many episodes) and by the closed-loop CI check.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

from hv2r_ros.core.chunk_executor import ChunkExecutor
from hv2r_ros.core.command_chain import CartesianCommandChain
from hv2r_ros.core.observation import chunk_to_targets

__all__ = ["RolloutConfig", "RolloutResult", "run_policy_episode"]


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
    """Episode settings.

    Attributes:
        max_duration_s: Simulated time before the episode counts as failed [s].
        success_hold_s: Success must hold this long to end the episode early [s].
        image_size: Square camera image side [px] (rendered, then the encoder's preprocessing).
        strategy: Chunk execution strategy (``receding_horizon`` or ``temporal_ensembling``).
        rows_per_inference: Chunk rows executed before the next inference (action chunking:
            re-planning after every row lets a policy that starts from rest, where the
            demonstrations' first rows are near zero, stall at its own fixed point).
    """

    max_duration_s: float = 30.0
    success_hold_s: float = 0.5
    image_size: int = 224
    strategy: str = "receding_horizon"
    rows_per_inference: int = 5


@dataclasses.dataclass(frozen=True)
class RolloutResult:
    """Outcome of one episode.

    Attributes:
        success: Success criteria held at the end.
        reason: ``ok`` or the first failing criterion.
        duration_s: Simulated time [s].
        target_distance_m: Final table-plane distance of the target cube to the target pad [m].
        refusals: Commands the simulated controller refused (0 for a correct stack).
        holds: Control steps on which the chain held (status name -> count).
        inference_s: Median wall time of one encoder x2 + policy inference [s].
        wall_s: Wall time of the episode [s].
    """

    success: bool
    reason: str
    duration_s: float
    target_distance_m: float
    refusals: int
    holds: dict
    inference_s: float
    wall_s: float


def run_policy_episode(world, models, goal: np.ndarray, layout=None, *, chain=None,
                       config: RolloutConfig = RolloutConfig(),
                       on_frame: Callable[[float, dict], None] | None = None) -> RolloutResult:
    """Run one closed-loop episode of ``models`` prompted with ``goal``.

    Args:
        world: A ``SimWorld``.
        models: A ``ModelPair`` (encoder + policy).
        goal: Goal embedding (D,).
        layout: Reset the world to it first; None restarts the current layout.
        chain: A ``CartesianCommandChain`` of the world's profile (built when None).
        config: Settings.
        on_frame: Called at each inference with (time, {camera: image}) (videos).
    """
    started = time.perf_counter()
    world.reset(layout)
    profile = world.profile
    chain = chain or CartesianCommandChain(profile)
    spec = models.policy.spec
    dt = chain.period_s
    every = max(1, round(config.rows_per_inference / (spec.control_rate_hz * dt)))
    poses = ChunkExecutor(config.strategy)
    gripper = ChunkExecutor(config.strategy)
    chain.reset(world.q)
    goal = np.asarray(goal, dtype=np.float32).reshape(-1)
    holds: dict[str, int] = {}
    inference, held_s, step = [], 0.0, 0
    refusals0 = world.refusals
    grip = 0.0
    truth = world.ground_truth()
    while step * dt < config.max_duration_s:
        now = step * dt
        q = world.q
        if step % every == 0:
            images = {c: world.render(c, config.image_size, config.image_size)
                      for c in spec.camera_order}
            tic = time.perf_counter()
            embeddings = models.encoder.embed([images[c] for c in spec.camera_order])
            actions = models.policy.infer(embeddings, goal, q)
            inference.append(time.perf_counter() - tic)
            if on_frame is not None:
                on_frame(now, images)
            if np.isfinite(actions).all():
                targets, times, grip_rows = chunk_to_targets(spec, actions, q, chain)
                poses.add(targets, times, now, now_s=now)
                if grip_rows is not None:
                    gripper.add(grip_rows[:, None], times, now, now_s=now)
        target, _ = poses.target(now)
        grip_target, _ = gripper.target(now)
        if grip_target is not None:
            grip = float(np.clip(grip_target[0], 0.0, 1.0))
        q_cmd, status = chain.step(target, q)
        if status.final.is_hold:
            holds[status.final.value] = holds.get(status.final.value, 0) + 1
        world.step(q_cmd, grip, dt)
        step += 1
        truth = world.ground_truth()
        held_s = held_s + dt if truth.success else 0.0
        if held_s >= config.success_hold_s:
            break
    return RolloutResult(bool(truth.success), "ok" if truth.success else truth.reason,
                         step * dt, float(truth.target_distance_m), world.refusals - refusals0,
                         holds, float(np.median(inference)) if inference else 0.0,
                         time.perf_counter() - started)
