"""One soak run (``hv2r soak``, whose docstring lists the faults): processes, episodes, faults,
outcomes and the final counts.

The faults run one at a time on this thread; the monitor records on its own. Times are ROS time
(the system clock) [s].
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import random
import signal
import time
from pathlib import Path

import numpy as np
from std_msgs.msg import String

from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.ros import qos
from hv2r_ros.ros.fault_rig import ProcessStack, wait_for
from hv2r_ros.ros.stack_monitor import Monitor
from hv2r_ros.sim.faults import (
    FAULT_KINDS, count_violations, hold_timing, speeds, violation_indices)

RECOVERY_S = 20.0
EPISODE_S = 60.0
STARTUP_S = 90.0
MOVING = 0.15  # fraction of v_max * T that counts as moving
#: Faults after which the commands must brake (their HOLD latency is measured when moving).
HOLD_KINDS = ("policy_stop", "policy_kill", "action_outage", "action_future",
              "action_duplicate", "joint_states_stall", "joint_states_repeat", "estop")


@dataclasses.dataclass
class FaultRecord:
    """One injected fault and how it ended."""

    kind: str
    start_s: float
    detail: str = ""
    moving: bool = False
    end_s: float = math.nan
    latched: str = ""
    outcome: str = ""
    recovery_s: float = math.nan
    hold_ms: float = math.nan


class SoakSession:
    """The processes, the monitor and the fault loop of one soak.

    Args:
        folder: Node logs.
        domain_id: ROS_DOMAIN_ID of every process.
        robot: Robot profile (one end effector: the expert drives one).
        seed: Seed of the schedule, the relays and the first layout.
        mean_gap_s: Mean pause between faults [s].
    """

    def __init__(self, folder: Path, domain_id: int, robot: str, seed: int,
                 mean_gap_s: float) -> None:
        self.profile = load_robot_profile(robot)
        self.period_s = self.profile.control_period_s
        self.rng = random.Random(seed)
        self.mean_gap_s = mean_gap_s
        stack = self.stack = ProcessStack(folder, domain_id, robot)
        stack.use_in_this_process()
        stack.add("sim", "sim", {"robot": robot, "seed": seed, "camera_rate_hz": 1.0,
                                 "image_width_px": 32, "image_height_px": 32},
                  {"joint_states": "sim/joint_states"})
        stack.add("joint_relay", "fault_relay", {"message_type": "sensor_msgs/msg/JointState",
                                                 "qos": "sensor", "seed": seed},
                  {"in": "sim/joint_states", "out": "joint_states"})
        stack.add("action_relay", "fault_relay", {"seed": seed + 1},
                  {"in": "hv2r/action_raw", "out": "hv2r/action"})
        stack.add("policy", "expert", {"robot": robot}, {"hv2r/action": "hv2r/action_raw"})
        stack.add("safety_filter", "safety_filter", {"robot": robot})
        stack.add("command_output", "command_output", {"robot": robot})
        self.monitor = Monitor(self.profile, ("action_relay", "joint_relay"),
                               state_topic="sim/joint_states")
        self.truth: dict = {}
        self.monitor.node.create_subscription(String, "sim/ground_truth", self._on_truth,
                                              qos.command_qos())
        self.records: list[FaultRecord] = []
        self.episodes, self.successes = 1, 0
        self._episode_start = time.monotonic()
        self._success_since: float | None = None
        self._t0 = time.time()

    def _on_truth(self, msg: String) -> None:
        self.truth = json.loads(msg.data)

    def log(self, text: str) -> None:
        print(f"[{time.time() - self._t0:7.1f} s] {text}", flush=True)

    # -- the loop --------------------------------------------------------------------------
    def start(self) -> None:
        wait_for(lambda: self.monitor.command_count() > 10, STARTUP_S, "the first commands")
        self._t0 = time.time()
        self.log(f"started: domain {self.stack.domain_id}, logs in {self.stack.folder}")

    def moving(self) -> bool:
        _, q = self.monitor.command_arrays(time.time() - 0.1)
        return len(q) >= 4 and speeds(q[-4:], self.profile.limits, self.period_s)[1:].min() \
            >= MOVING

    def run(self, duration_s: float) -> None:
        deadline = time.monotonic() + duration_s
        kinds = [k for k, w in FAULT_KINDS if w > 0]
        weights = [w for k, w in FAULT_KINDS if w > 0]
        while time.monotonic() < deadline:
            self._pause(min(self.rng.expovariate(1.0 / self.mean_gap_s), 15.0), deadline)
            if time.monotonic() >= deadline - 5.0:
                break
            self._pause_until_moving(min(5.0, deadline - time.monotonic()))
            self.inject(self.rng.choices(kinds, weights)[0])

    def _pause(self, seconds: float, deadline: float) -> None:
        end = min(time.monotonic() + seconds, deadline)
        while time.monotonic() < end:
            self._episodes()
            time.sleep(0.05)

    def _pause_until_moving(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.moving():
            self._episodes()
            time.sleep(0.005)

    def _episodes(self) -> None:
        """A new layout 1 s after a success, or when an episode ran ``EPISODE_S``."""
        truth, now = self.truth, time.monotonic()
        if truth.get("success") and self._success_since is None:
            self._success_since = now
            self.successes += 1
            self.log(f"episode {truth.get('episode')}: success")
        long = now - self._episode_start > EPISODE_S
        if (self._success_since is not None and now - self._success_since > 1.0) or long:
            if long and self._success_since is None:
                self.log(f"episode {truth.get('episode')}: no success in {EPISODE_S:g} s")
            self.new_episode()

    def new_episode(self) -> None:
        self.log(f"episode {self.episodes}: new layout")
        monitor = self.monitor
        monitor.transition("deactivate")
        try:
            wait_for(self._still, 10.0, "rest", poll_s=0.02)
        except TimeoutError:
            self.log("new episode: the commands did not come to rest within 10 s")
        monitor.reset_sim()
        monitor.transition("activate")
        self.episodes += 1
        self._episode_start, self._success_since = time.monotonic(), None

    def _still(self) -> bool:
        """No command moved in the last 0.3 s (at least 3 commands: a busy CPU delays some)."""
        _, q = self.monitor.command_arrays(time.time() - 0.3)
        return len(q) >= 3 and np.ptp(q, axis=0).max() == 0.0

    # -- faults ----------------------------------------------------------------------------
    def inject(self, kind: str) -> FaultRecord:
        rec = FaultRecord(kind, time.time(), moving=self.moving())
        getattr(self, f"_fault_{kind}")(rec)
        if math.isnan(rec.end_s):
            rec.end_s = time.time()
        if not rec.outcome:  # the fault is over (or the operator acted on its latch)
            active = self._wait_active(rec.end_s, RECOVERY_S)
            rec.outcome = "NOT RECOVERED" if active is None else \
                "latched" if rec.latched else "recovered"
            rec.recovery_s = (active - rec.end_s) if active is not None else math.nan
        self.records.append(rec)
        self._report(rec)
        return rec

    def _wait_active(self, since_s: float, timeout_s: float) -> float | None:
        """When the safety state was ``ACTIVE`` at or after ``since_s``; None on timeout."""
        def active():
            rows = self.monitor.safety_since(since_s)
            if self.monitor.safety_state() == "ACTIVE" and not rows:
                return since_s
            return next((t for t, text in rows if text == "ACTIVE"), None)
        try:
            return wait_for(active, timeout_s, "ACTIVE", poll_s=0.02)
        except TimeoutError:
            return None

    def _relay(self, rec: FaultRecord, relay: str, mode: str, duration_s: float, **values):
        event = self.monitor.set_fault(relay, mode, duration_s=duration_s, **values)
        rec.start_s = event["last_valid_at_s"] or event["at_s"]
        rec.detail = f"{duration_s * 1e3:.0f} ms" + "".join(f", {k} {v:.2f}"
                                                            for k, v in values.items())
        time.sleep(duration_s)
        rec.end_s = time.time()

    def _fault_action_loss(self, rec):
        self._relay(rec, "action_relay", "drop", self.rng.uniform(1.0, 4.0),
                    rate=self.rng.uniform(0.1, 0.5))

    def _fault_action_outage(self, rec):
        self._relay(rec, "action_relay", "outage", 0.25)

    def _fault_action_future(self, rec):
        self._relay(rec, "action_relay", "future", 1.0, offset_s=0.5)

    def _fault_action_duplicate(self, rec):
        self._relay(rec, "action_relay", "duplicate", 1.0)

    def _fault_action_reorder(self, rec):
        self._relay(rec, "action_relay", "reorder", 2.0)

    def _fault_joint_states_stall(self, rec):
        self._relay(rec, "joint_relay", "outage", self.rng.uniform(0.1, 1.0))

    def _fault_joint_states_repeat(self, rec):
        self._relay(rec, "joint_relay", "repeat", 0.5)

    def _fault_camera_stall(self, rec):
        raise NotImplementedError("camera faults need the policy node: the tests cover them")

    def _fault_policy_stop(self, rec):
        pause = self.rng.uniform(0.2, 1.5)
        rec.detail = f"{pause * 1e3:.0f} ms"
        rec.start_s = self.stack.signal("policy", signal.SIGSTOP)
        time.sleep(pause)
        self.stack.signal("policy", signal.SIGCONT)
        rec.end_s = time.time()

    def _fault_policy_kill(self, rec):
        # The relay belongs to the policy's side of the graph: a restarted policy is a new
        # publisher on hv2r/action only when the relay in front of it restarts too.
        rec.start_s = self.stack.kill("policy")
        self.stack.kill("action_relay")
        time.sleep(0.5)
        self.stack.start("action_relay")
        self.stack.start("policy")
        self._latch(rec, "new publisher", "policy restarted")
        self.monitor.transition("deactivate")  # the operator activates the new policy
        self.monitor.transition("activate")
        rec.end_s = time.time()

    def _fault_estop(self, rec):
        rec.start_s = self.monitor.estop(True)
        time.sleep(0.5)
        self.monitor.estop(False)
        time.sleep(0.5)
        self._latch(rec, "HOLD_ESTOP", "e-stop released")
        ok, message = self.monitor.reset_estop()  # the operator's reset
        if not ok:
            rec.latched += f"; reset refused: {message}"
        rec.end_s = time.time()

    def _latch(self, rec: FaultRecord, marker: str, what: str) -> None:
        """Wait for the latched state naming ``marker`` and the robot at rest under it; the
        operator's action follows (the caller), and ``inject`` waits for ACTIVE."""
        def latched():
            text = self.monitor.safety_state()
            return text if marker in text else None
        try:
            text = wait_for(latched, 30.0, marker, poll_s=0.02)
        except TimeoutError:
            rec.latched, rec.outcome = f"{what}: no latch within 30 s", "NOT RECOVERED"
            return
        try:
            wait_for(self._still, 3.0, "rest", poll_s=0.02)
            rec.latched = f"{what}: {text[:60]}...; robot still"
        except TimeoutError:
            rec.latched, rec.outcome = f"{what}: {text[:60]}...; robot MOVING", "NOT RECOVERED"

    def _report(self, rec: FaultRecord) -> None:
        if rec.moving and rec.kind in HOLD_KINDS:
            wait_for(lambda: time.time() > rec.start_s + 1.0, 2.0, "window")
            stamps, q = self.monitor.command_arrays(rec.start_s - 0.5, rec.start_s + 1.0)
            hold = hold_timing(stamps, q, rec.start_s, self.profile.limits, self.period_s,
                               settle=3)
            rec.hold_ms = hold.latency_s(rec.start_s) * 1e3
        hold = f", HOLD {rec.hold_ms:.0f} ms" if math.isfinite(rec.hold_ms) else ""
        if math.isinf(rec.hold_ms):  # no rest in the monitor's record of the following second
            hold = ", HOLD not seen in the 1 s command record after the fault"
        latch = f", latched ({rec.latched}), the operator acted" if rec.latched else ""
        after = f" after {rec.recovery_s:.2f} s" if not math.isnan(rec.recovery_s) else ""
        self.log(f"fault {len(self.records)} {rec.kind} {rec.detail}"
                 f"{' while moving' if rec.moving else ''}{hold}{latch}: {rec.outcome}{after}")

    # -- the end ---------------------------------------------------------------------------
    def close(self) -> list[str]:
        """Stop everything; the nodes that had exited by themselves before."""
        died = [name for name, node in self.stack.nodes.items()
                if node.popen is not None and node.popen.poll() is not None]
        try:
            self.monitor.close()
        finally:
            forced = self.stack.close()
        return died + [f"forced: {name}" for name in forced]

    def report(self, died: list[str]) -> bool:
        """Print the counts; True when the soak passed."""
        stamps, q = self.monitor.command_arrays()
        violations = count_violations(q, self.profile.limits, self.period_s)
        for i in violation_indices(q, self.profile.limits, self.period_s)[:10]:
            print(f"hv2r soak: limit violation at {stamps[i] - self._t0:.2f} s: step "
                  f"{np.abs(q[i] - q[i - 1]).max():.2e} rad after "
                  f"{np.abs(q[i - 1] - q[i - 2]).max():.2e} rad", flush=True)
        by_kind = collections.Counter(r.kind for r in self.records)
        outcomes = collections.Counter(r.outcome for r in self.records)
        holds = collections.defaultdict(list)
        for r in self.records:
            if not math.isnan(r.hold_ms):
                holds[r.kind].append(r.hold_ms)
        print(f"hv2r soak: {time.time() - self._t0:.0f} s, {self.episodes} episodes "
              f"({self.successes} successes), {len(self.records)} faults injected "
              f"({', '.join(f'{k} {n}' for k, n in sorted(by_kind.items()))}): "
              f"{outcomes['recovered']} recovered, {outcomes['latched']} latched and cleared by "
              f"the operator, {outcomes['NOT RECOVERED']} not recovered", flush=True)
        for kind, values in sorted(holds.items()):
            seen = [v for v in values if math.isfinite(v)]
            unseen = f", {len(values) - len(seen)} not seen in the record" if len(seen) < len(
                values) else ""
            print(f"hv2r soak: HOLD after {kind} while moving: max "
                  f"{max(seen, default=math.nan):.0f} ms (n {len(seen)}{unseen})", flush=True)
        print(f"hv2r soak: joint commands: {violations}", flush=True)
        if died:
            print(f"hv2r soak: processes that exited by themselves or would not stop: "
                  f"{', '.join(died)}", flush=True)
        return violations.total == 0 and violations.acceleration == 0 and \
            outcomes["NOT RECOVERED"] == 0 and not died
