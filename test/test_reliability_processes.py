"""Reliability, process faults (issue 9, scenarios 1 and 6): the stack as separate processes
against the simulated robot, the scripted expert as the policy process.

1. The policy process frozen (SIGSTOP) or killed (SIGKILL) while the robot moves: the joint
   commands brake (HOLD) within the command timeout plus one period of the signal, with zero
   limit violations. A frozen policy that continues drives again; a restarted one does not until
   the operator activates the safety filter again, and the first command then equals the
   measured state.
6. The e-stop while the robot moves: HOLD within one period of its publication. It stays
   latched across a crash and restart of the safety filter and of the command output, with the
   e-stop input already released, until the operator reset.

One rig for the module; each test starts from a moving robot. Figures are printed (pytest -s).
"""

import signal
import time

import numpy as np
import pytest

from reliability_rig import (
    AT_STATE_RAD, COMMAND_TIMEOUT_S, PERIOD_S, PROFILE, SCHEDULING_TOLERANCE_S, STARTUP_S, Rig,
    running)
from hv2r_ros.ros.fault_rig import wait_for

pytestmark = pytest.mark.ros

BRAKE_S = float(np.max(PROFILE.limits.velocity_max / PROFILE.limits.acceleration_max))


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    with running(Rig(tmp_path_factory.mktemp("processes"))) as made:
        yield made


def assert_held(rig, fault_s, deadline_s, what):
    """The commands braked to rest within ``deadline_s`` of ``fault_s``, within limits."""
    hold = rig.hold_after(fault_s)
    latency = hold.latency_s(fault_s)
    braking = hold.rest_s - hold.onset_s if hold.rest_s is not None else float("inf")
    violations = rig.violations(fault_s - 1.0, fault_s + 1.0)
    with rig.monitor.lock:  # the watchdog runs from the last chunk sent before the fault
        last = max((s for _, s in rig.monitor.actions if s <= fault_s), default=float("nan"))
    print(f"\n{what}: HOLD {latency * 1e3:.1f} ms after the fault (deadline "
          f"{deadline_s * 1e3:.0f} ms + {SCHEDULING_TOLERANCE_S * 1e3:.0f} ms; "
          f"{(hold.onset_s - last) * 1e3:.0f} ms after the last chunk's stamp), at rest "
          f"{braking * 1e3:.0f} ms later from {hold.speed_at_onset:.0%} of v_max; {violations}")
    assert latency <= deadline_s + SCHEDULING_TOLERANCE_S, (what, latency)
    # braking within the acceleration limits from the speed it had: no longer than from v_max
    assert braking <= hold.speed_at_onset * BRAKE_S + 3 * PERIOD_S, (what, braking)
    assert violations.total == 0 and violations.acceleration == 0, violations
    return hold


def test_frozen_policy_holds_within_timeout_plus_one_period_and_drives_again(rig):
    rig.wait_moving()
    stopped = rig.stack.signal("policy", signal.SIGSTOP)
    try:
        hold = assert_held(rig, stopped, COMMAND_TIMEOUT_S + PERIOD_S, "policy SIGSTOP")
        states = [text for _, text in rig.monitor.safety_since(stopped)]
        assert any(text.startswith("HOLD HOLD_TIMEOUT") for text in states), states
    finally:
        rig.stack.signal("policy", signal.SIGCONT)
    # The same process continues (not a restart): its next fresh chunk drives again.
    resumed = time.time()
    rig.wait_moving(episode_after_s=15.0)
    _, command, measured = rig.first_motion_after(resumed)
    np.testing.assert_allclose(command, measured, atol=AT_STATE_RAD)
    assert rig.violations(hold.rest_s).total == 0


def test_killed_policy_holds_and_a_restarted_one_waits_for_activation(rig):
    rig.wait_moving()
    killed = rig.stack.kill("policy")
    hold = assert_held(rig, killed, COMMAND_TIMEOUT_S + PERIOD_S, "policy SIGKILL")
    restarted = time.time()
    rig.stack.start("policy")

    def chunks_since(since_s):
        with rig.monitor.lock:
            return [r for r, _ in rig.monitor.actions if r >= since_s]

    wait_for(lambda: len(chunks_since(restarted)) >= 10, STARTUP_S,
             "chunks of the restarted policy")
    time.sleep(1.0)  # it keeps publishing; nothing may move
    print(f"\nrestarted policy: {len(chunks_since(restarted))} chunks, safety state "
          f"{rig.monitor.safety_state()!r}")
    assert rig.still_since(hold.rest_s), "the restarted policy moved the robot"
    assert rig.monitor.safety_state().startswith("HOLD HOLD_REQUESTED")
    with rig.monitor.lock:
        forwarded = [r for r, _ in rig.monitor.forwarded if r >= restarted]
    assert not forwarded, "a chunk of the restarted policy was forwarded before activation"
    # The operator activates the safety filter again: motion starts from the measured state.
    activated = time.time()
    assert rig.monitor.transition("deactivate") and rig.monitor.transition("activate")
    rig.wait_moving()
    _, command, measured = rig.first_motion_after(activated)
    np.testing.assert_allclose(command, measured, atol=AT_STATE_RAD)
    assert rig.violations(killed - 1.0).total == 0


def test_estop_holds_within_one_period_and_stays_latched_across_restarts_until_reset(rig):
    rig.wait_moving()
    pressed = rig.monitor.estop(True)
    hold = assert_held(rig, pressed, PERIOD_S, "e-stop")
    rig.monitor.estop(False)  # the button released: the latch must hold on
    time.sleep(0.3)
    # Both nodes crash and come back with the input released.
    for name in ("safety_filter", "command_output"):
        rig.stack.kill(name)
    restarted = time.time()
    for name in ("safety_filter", "command_output"):
        rig.stack.start(name)
    wait_for(lambda: rig.monitor.command_arrays(restarted)[0].size > 50, STARTUP_S,
             "commands of the restarted command_output")
    # The restarted node's latched state, as the monitor received it or, where Fast DDS did not
    # deliver the new publisher's latched message to the monitor (seen once in CI), as the node
    # logged publishing it.
    def restarted_state():
        seen = [text for _, text in rig.monitor.safety_since(restarted)]
        logged = [line.split("state: ", 1)[1] for line in
                  rig.stack.nodes["safety_filter"].log().split("--- start")[-1].splitlines()
                  if "] [safety_filter]: state: " in line]
        return (seen or logged)[-1] if any("before a restart" in t for t in seen + logged) \
            else ""
    wait_for(restarted_state, STARTUP_S, "the restarted safety filter's state")
    time.sleep(1.0)
    stamps, q = rig.monitor.command_arrays(restarted)
    measured = rig.monitor.last_state()
    print(f"\nafter restarts: safety state {rig.monitor.safety_state()!r}, "
          f"{len(q)} commands, first - measured {np.abs(q[0] - measured).max():.2e} rad")
    np.testing.assert_allclose(q[0], measured, atol=AT_STATE_RAD)  # the new output's first
    assert rig.still_since(hold.rest_s), "moved while the e-stop was latched"
    assert restarted_state().startswith("HOLD HOLD_ESTOP")
    ok, message = rig.monitor.reset_estop()
    assert ok, message
    reset = time.time()
    rig.wait_moving()
    _, command, measured = rig.first_motion_after(reset)
    np.testing.assert_allclose(command, measured, atol=AT_STATE_RAD)
    assert rig.violations(pressed - 1.0).total == 0
