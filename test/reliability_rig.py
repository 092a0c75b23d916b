"""The rig of the reliability tests (``test_reliability_*.py``): the stack's nodes as separate
processes against the simulated robot, as on a robot (``hv2r_ros.ros.fault_rig``).

``Rig`` starts the simulated robot, a policy (the scripted ``expert``, which drives the sim
without trained models, or the real ``policy`` node with tiny fixture models), the safety filter
and the command output, each in its own process group, in a fresh ROS domain with LOCALHOST
discovery and the shipped Fast DDS profile; optionally fault relays in front of the safety
filter's action input, of the stack's joint_states, and of the policy's cameras. A monitor in
the test process records the joint commands and the simulator's own joint states. ``close``
stops every process and fails the test if one had to be killed or is left.

Every time is ROS time (the system clock) [s]; a command's time is its header stamp (the
publication time in command_output), so the monitor's own delays do not count.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import numpy as np

import ros_testing
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.ros.fault_rig import ProcessStack, wait_for
from hv2r_ros.ros.stack_monitor import Monitor
from hv2r_ros.sim.faults import count_violations, hold_timing, speeds

PROFILE = load_robot_profile("panda")
PERIOD_S = PROFILE.control_period_s
COMMAND_TIMEOUT_S = PROFILE.command_timeout_s
#: Stated tolerance on every deadline: scheduling on this 2-core machine and DDS delivery. A HOLD
#: crosses up to three Python processes (relay -> safety_filter -> command_output -> this
#: monitor), each with 100 Hz ticks that a busy 2-core machine delays by 10-20 ms now and then;
#: the deadline logic itself is tested exactly with injected clocks (test_watchdog.py and others).
SCHEDULING_TOLERANCE_S = 0.050
STARTUP_S = 60.0          # processes up, discovery, first commands (a loaded 2-core machine)
MOVING_FRACTION = 0.15    # "moving": the last commands step >= 15 % of v_max * T
AT_STATE_RAD = 1e-4       # "equals the measured state": the sim's tracking at rest is ~1e-6
SIM = {"seed": 3, "camera_rate_hz": 2.0, "image_width_px": 32, "image_height_px": 32}


class Rig:
    """sim + policy (+ relays) + safety_filter + command_output, as processes (module doc).

    Args:
        folder: Logs and parameter files.
        policy: ``expert`` or ``policy`` (then ``policy_params`` must name ``models_dir``).
        action_relay: A relay ``action_relay`` between the policy (publishing on
            ``hv2r/action_raw``) and the safety filter.
        joint_relay: A relay ``joint_relay`` between the sim (``sim/joint_states``) and every
            other node (``joint_states``); the monitor records the sim's own.
        camera_relays: One relay per camera between the sim (``sim/<camera>``) and the policy.
    """

    def __init__(self, folder: Path, *, policy: str = "expert", action_relay: bool = False,
                 joint_relay: bool = False, camera_relays: bool = False,
                 sim_params: dict | None = None, policy_params: dict | None = None,
                 action_space: str = "cartesian") -> None:
        self.stack = ProcessStack(folder, ros_testing.next_domain_id())
        self.stack.use_in_this_process()
        self.policy = policy
        relays = []
        joint_remap = {"joint_states": "sim/joint_states"} if joint_relay else {}
        sim_remaps = dict(joint_remap)
        if camera_relays:
            for camera in ("wrist", "overhead"):
                topic = PROFILE.cameras[camera].topic
                sim_remaps[topic] = f"sim/{topic}"
        self.stack.add("sim", "sim", {**SIM, **(sim_params or {})}, sim_remaps)
        if joint_relay:
            self.add_relay("joint_relay", "sensor_msgs/msg/JointState", "sensor",
                           "sim/joint_states", "joint_states")
            relays.append("joint_relay")
        if camera_relays:
            for camera in ("wrist", "overhead"):
                topic = PROFILE.cameras[camera].topic
                self.add_relay(f"{camera}_relay", "sensor_msgs/msg/Image", "sensor",
                               f"sim/{topic}", topic)
                relays.append(f"{camera}_relay")
        action_type = "MultiDOFJointTrajectory" if action_space == "cartesian" \
            else "JointTrajectory"
        if action_relay:
            self.add_relay("action_relay", f"trajectory_msgs/msg/{action_type}", "action",
                           "hv2r/action_raw", "hv2r/action")
            relays.append("action_relay")
        policy_remaps = {"hv2r/action": "hv2r/action_raw"} if action_relay else {}
        self.stack.add("policy", policy, policy_params, policy_remaps)
        self.stack.add("safety_filter", "safety_filter", {"action_space": action_space})
        self.stack.add("command_output", "command_output", {"action_space": action_space})
        from trajectory_msgs import msg as trajectory_msgs

        self.monitor = Monitor(PROFILE, tuple(relays),
                               action_type=getattr(trajectory_msgs, action_type),
                               state_topic="sim/joint_states" if joint_relay else "joint_states")
        self.closed = False

    def add_relay(self, name: str, message_type: str, qos: str, source: str, target: str):
        self.stack.add(name, "fault_relay", {"message_type": message_type, "qos": qos},
                       {"in": source, "out": target})

    # -- waiting ---------------------------------------------------------------------------
    def wait_started(self) -> None:
        """Until commands and joint states flow (every process up and discovered)."""
        try:
            wait_for(lambda: self.monitor.command_count() > 10
                     and self.monitor.last_state() is not None, STARTUP_S,
                     "the first commands and joint states")
        except TimeoutError:
            raise AssertionError(self.logs()) from None

    def moving(self, fraction: float = MOVING_FRACTION) -> bool:
        """The last three commands each stepped at >= ``fraction`` of the speed limit."""
        stamps, q = self.monitor.command_arrays(time.time() - 0.2)
        return len(q) >= 4 and bool(speeds(q[-4:], PROFILE.limits, PERIOD_S)[1:].min()
                                    >= fraction)

    def wait_moving(self, timeout_s: float = 40.0, episode_after_s: float = 8.0) -> float:
        """Until the robot moves (a new episode when it has not for ``episode_after_s``);
        the time [s]."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                wait_for(self.moving, min(episode_after_s, deadline - time.monotonic()),
                         "motion", poll_s=0.002)
                return time.time()
            except TimeoutError:
                if time.monotonic() < deadline:
                    self.new_episode()
        raise AssertionError(f"the robot did not move within {timeout_s} s\n{self.logs()}")

    def wait_rest(self, timeout_s: float = 5.0, still_s: float = 0.2) -> None:
        """Until the commands have not moved for ``still_s``."""
        def still():
            stamps, q = self.monitor.command_arrays(time.time() - still_s)
            return len(q) >= still_s / PERIOD_S / 2 and np.ptp(q, axis=0).max() == 0.0
        wait_for(still, timeout_s, "the commands at rest", poll_s=0.02)

    def new_episode(self) -> None:
        """Hold (safety filter inactive), reset the sim to its next layout, activate."""
        assert self.monitor.transition("deactivate")
        self.wait_rest()
        self.monitor.reset_sim()
        assert self.monitor.transition("activate")

    def hold_after(self, fault_s: float, window_s: float = 1.0, settle: int = 10):
        """``HoldTiming`` of the commands around a fault at ``fault_s`` (waits for the window);
        ``settle``: commands at rest that make a rest (fewer when the fault is short)."""
        wait_for(lambda: time.time() > fault_s + window_s, window_s + 1.0, "the window")
        stamps, q = self.monitor.command_arrays(fault_s - 0.5, fault_s + window_s)
        return hold_timing(stamps, q, fault_s, PROFILE.limits, PERIOD_S, settle)

    def violations(self, since_s: float = -math.inf, until_s: float = math.inf):
        """Position / velocity / acceleration violations of the commands in the window."""
        _, q = self.monitor.command_arrays(since_s, until_s)
        return count_violations(q, PROFILE.limits, PERIOD_S)

    def still_since(self, since_s: float, until_s: float = math.inf) -> bool:
        """No command moved in ``[since_s, until_s]`` (and there were commands)."""
        _, q = self.monitor.command_arrays(since_s, until_s)
        return len(q) > 0 and np.ptp(q, axis=0).max() == 0.0

    def first_motion_after(self, since_s: float) -> tuple[float, np.ndarray, np.ndarray]:
        """(stamp, command, measured state before it) of the last command before the first
        step that moves after ``since_s``: the re-seeded command motion starts from."""
        stamps, q = self.monitor.command_arrays(since_s)
        moved = np.flatnonzero(np.abs(np.diff(q, axis=0)).max(axis=1) > 0.0)
        assert moved.size, "no motion"
        k = int(moved[0])
        with self.monitor.lock:
            states = [(s, x) for s, _, x in self.monitor.states if s <= stamps[k]]
        return stamps[k], q[k], states[-1][1]

    def logs(self) -> str:
        return "\n".join(f"==== {name} ====\n{node.log()[-3000:]}"
                         for name, node in self.stack.nodes.items())

    def close(self) -> list[str]:
        if self.closed:
            return []
        self.closed = True
        try:
            self.monitor.close()
        finally:
            forced = self.stack.close()
        return forced


@contextlib.contextmanager
def running(rig: "Rig", before_start=None):
    """Start ``rig`` (``before_start(rig)`` first), yield it, close it; fail if a process had
    to be killed because it did not stop on SIGINT."""
    try:
        if before_start is not None:
            before_start(rig)
        rig.wait_started()
        yield rig
    finally:
        forced = rig.close()
    assert not forced, f"processes that did not stop on SIGINT: {forced}\n{rig.logs()}"
