"""The expert node and its closed loop: the scripted expert completes the task through the stack.

``ClosedLoopExpert`` is first run against a ``SimWorld`` in simulated time, with what the stack
does in between played by its core objects: chunks arrive two control periods late, the
``ChunkExecutor`` executes the newest in time and the ``CartesianCommandChain`` turns its
targets into joint commands. Then the real thing in one process, one executor per node:
sim -> joint_states -> expert -> hv2r/action -> safety_filter ->
hv2r/action_safe -> command_output -> JointTrajectory -> sim, with the gripper on hv2r/gripper,
all on the Panda profile, until sim/ground_truth reports success.
"""

import json
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory

import ros_testing
from hv2r_ros.core.chunk_executor import ChunkExecutor
from hv2r_ros.core.command_chain import CartesianCommandChain
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.status import Status
from hv2r_ros.ros import qos
from hv2r_ros.ros.actions import read_cartesian_chunk, read_gripper_chunk
from hv2r_ros.sim.expert import GRIPPER_ARRIVAL_M
from hv2r_ros.sim.expert_loop import ClosedLoopExpert
from hv2r_ros.sim.task import sample_layout
from hv2r_ros.sim.task_messages import SimTask
from hv2r_ros.sim.world import GroundTruth, SimConfig, SimWorld

CHUNK_EVERY = 7       # control periods between chunks (~14 Hz at 100 Hz)
DELAY = 2             # control periods from a joint state to its chunk's execution
HORIZON = 20
E2E_SEED = 3
E2E_BUDGET_S = 35.0   # the episode takes ~12 s of real time; the rest is slack for a busy CPU


@pytest.fixture(scope="module")
def panda_world():
    profile = load_robot_profile("panda")
    world = SimWorld(profile, SimConfig(), sample_layout(profile.workspace, 0))
    yield profile, CartesianCommandChain(profile), world
    world.close()


def task_of(world, episode=0):
    return SimTask(world.profile.name, episode, world.profile.base_frame, world.layout,
                   world.grasp_offset_m, world.mount.closing_axis)


def run_loop(profile, chain, world, seed, truth_filter=lambda truth, expert: truth, max_s=40.0):
    """The expert's chunks executed in the world in simulated time (module docstring).

    Args:
        truth_filter: (ground truth, expert) -> the ground truth the expert is given.

    Returns:
        (expert, log): log rows (time [s], gripper command, tool distance to the nearest grasp
        or release waypoint [m]) at every control step.
    """
    world.reset(sample_layout(profile.workspace, seed))
    expert = ClosedLoopExpert(profile)
    expert.set_task(task_of(world))
    chain.reset(world.q)
    clock = {"now": 0.0}
    arm = ChunkExecutor(clock=lambda: clock["now"])
    gripper = ChunkExecutor(clock=lambda: clock["now"])
    dt, pending, log = world.dt_s, [], []
    for k in range(int(max_s / dt)):
        t = clock["now"] = k * dt
        if k % CHUNK_EVERY == 0:
            out = expert.step(world.q, t, truth_filter(world.ground_truth(), expert), HORIZON, dt)
            pending.append((t + DELAY * dt, t, out))
        while pending and pending[0][0] <= t + 1e-9:
            _, stamp, out = pending.pop(0)
            assert arm.add(out.poses[:, None, :], out.times_s, stamp) is Status.OK
            assert gripper.add(out.gripper[:, None], out.times_s, stamp) is Status.OK
        target, _ = arm.target(t)
        command, _ = gripper.target(t)
        if target is None:
            world.step(None, None, dt)
            continue
        q_cmd, _ = chain.step(target, world.q)
        tool = expert.tool_pose(world.q)
        knots = expert.plan.poses[[i for i, p in enumerate(expert.plan.phases)
                                   if p in ("grasp", "release")]]
        log.append((t, float(command[0]), float(np.min(np.linalg.norm(
            knots[:, :3] - tool[:3], axis=1)))))
        world.step(q_cmd, float(command[0]), dt)
        if expert.outcome:
            break
    return expert, log


def test_closed_loop_expert_completes_tasks_and_moves_the_gripper_only_on_arrival(panda_world):
    profile, chain, world = panda_world
    for seed in range(3):
        expert, log = run_loop(profile, chain, world, seed)
        assert expert.outcome == "done" and expert.attempts == 1, (seed, expert.last_reason)
        assert world.ground_truth().success and world.refusals == 0
        commands = np.array([g for _, g, _ in log])
        switches = np.flatnonzero(np.diff(commands >= 0.5)) + 1
        assert len(switches) == 2, seed  # close once, open once
        for i in switches:  # each gripper change happens at its waypoint
            assert log[i][2] <= GRIPPER_ARRIVAL_M + 1e-3, (seed, log[i])


def test_a_missed_grasp_is_replanned_from_ground_truth(panda_world):
    profile, chain, world = panda_world

    def misplaced(truth, expert):
        """The first plan sees the target cube 6 cm off, so it grasps air."""
        if expert.attempts > 0:
            return truth
        poses = dict(truth.object_poses)
        name = world.layout.target_object
        poses[name] = poses[name] + np.array([0.06, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        return GroundTruth(poses, truth.grasped, truth.success, truth.target_distance_m,
                           truth.reason, truth.time_s)

    expert, _ = run_loop(profile, chain, world, 1, misplaced)
    assert expert.attempts == 2 and expert.outcome == "done", expert.last_reason
    assert world.ground_truth().success


def test_a_new_episode_drops_the_plan(panda_world):
    profile, _, world = panda_world
    world.reset(sample_layout(profile.workspace, 2))
    expert = ClosedLoopExpert(profile)
    assert expert.set_task(task_of(world, 0))
    expert.step(world.q, 0.0, world.ground_truth(), 5, 0.01)
    assert expert.plan is not None and not expert.set_task(task_of(world, 0))
    assert expert.set_task(task_of(world, 1)) and expert.plan is None and expert.attempts == 0
    with pytest.raises(RuntimeError, match="no task"):
        ClosedLoopExpert(profile).step(world.q, 0.0, world.ground_truth(), 5, 0.01)


# --- the whole command path on rclpy -------------------------------------------------------------

@pytest.mark.ros
def test_the_expert_completes_the_task_through_the_real_command_path():
    from hv2r_ros.nodes.command_output import CommandOutputNode
    from hv2r_ros.nodes.expert import ExpertNode
    from hv2r_ros.nodes.safety_filter import SafetyFilterNode
    from hv2r_ros.nodes.sim import SimNode

    ros_testing.use_fresh_domain()
    context = rclpy.Context()
    rclpy.init(context=context)
    built = time.monotonic()
    # The expert needs no images: a low camera rate leaves the 2-core CPU to the control path.
    nodes = [SimNode(context=context, parameter_overrides=[
                 Parameter("seed", value=E2E_SEED), Parameter("camera_rate_hz", value=2.0)]),
             ExpertNode(context=context),
             SafetyFilterNode(context=context, parameter_overrides=[
                 Parameter("enable_autostart", value=True)]),
             CommandOutputNode(context=context)]
    sim, expert, safety, output = nodes
    probe = Node("probe", context=context)
    truths, chunks, grippers, commands = [], [], [], []
    probe.create_subscription(String, "sim/ground_truth", lambda m: truths.append(
        json.loads(m.data)), qos.command_qos())
    probe.create_subscription(MultiDOFJointTrajectory, "hv2r/action", chunks.append,
                              qos.action_qos())
    probe.create_subscription(JointTrajectory, "hv2r/gripper", grippers.append, qos.action_qos())
    probe.create_subscription(JointTrajectory, sim.profile.command_interface.topic,
                              commands.append, qos.command_qos())
    safety.trigger_configure()
    safety.trigger_activate()
    # One single-threaded executor per node, each on its own thread: rclpy rebuilds an
    # executor's whole wait set on every spin, and one executor over five nodes spent most of
    # this 2-core machine's time doing that (joint_states fell to a few Hz).
    executors = []
    for node in (*nodes, probe):
        executors.append(SingleThreadedExecutor(context=context))
        executors[-1].add_node(node)
    stop = threading.Event()

    def spin(executor):
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)

    threads = [threading.Thread(target=spin, args=(e,), daemon=True) for e in executors]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    try:
        ros_testing.wait_for(lambda: truths and truths[-1]["success"], E2E_BUDGET_S,
                             "sim/ground_truth to report success")
    finally:
        elapsed = time.monotonic() - started
        stop.set()
        for thread in threads:
            thread.join(timeout=5.0)
        stalled = any(thread.is_alive() for thread in threads)
        for node in (*nodes, probe):
            node.destroy_node()
        for executor in executors:
            executor.shutdown()
        rclpy.shutdown(context=context)
        print(f"\nbuild {started - built:.1f} s, success after {elapsed:.1f} s wall "
              f"(sim time {truths[-1]['time_s'] if truths else float('nan'):.1f} s); "
              f"joint_states {sim.step_stats.summary().rate_hz:.0f} Hz, chunks "
              f"{expert.stats.summary().rate_hz:.1f} Hz, commands "
              f"{output.output_stats.summary().rate_hz:.0f} Hz, holds "
              f"{output.output_stats.summary().holds}, sim refusals {sim.commands.refusals} "
              f"of {sim.commands.accepted} accepted")
    assert not stalled
    refusals = sim.commands.refusals
    assert expert.expert.attempts == 1 and set(refusals) <= {"late"}, refusals
    # command_output holds each command a second period, so only a delivery later than two
    # periods has ended (a JointTrajectoryController refuses it too).
    assert refusals["late"] <= 0.1 * sim.commands.accepted, refusals
    assert sim.world.refusals == 0 and truths[-1]["grasped"] is None
    # Every chunk the expert sent is what a policy sends, stamped with a joint-state time.
    frames = sim.profile.end_effector_frames
    for msg in chunks[:: max(1, len(chunks) // 20)]:
        poses, times, stamp_s, status = read_cartesian_chunk(msg, frames, sim.profile.base_frame)
        assert poses is not None and poses.shape == (20, 1, 7) and times[0] == pytest.approx(0.01)
    paired = {msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec for msg in chunks}
    assert all(read_gripper_chunk(g)[0] is not None for g in grippers)
    assert {g.header.stamp.sec * 10**9 + g.header.stamp.nanosec for g in grippers} == paired
    assert commands, "command_output drove the sim"
