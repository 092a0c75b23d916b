"""command_output on real rclpy: every hold (e-stop, safety state, silent policy, stalled
joint_states, wrong joint names) within its deadline; the rig and the deadline rules are in
command_output_rig.py and test_node_command_output.py.
"""

import numpy as np
import pytest
from command_output_rig import (
    DISCOVERY_S,
    TOL_S,
    assert_braking_after,
    assert_limits,
    speeds,
    start_moving,
)
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.parameter import Parameter

from hv2r_ros.core.status import Status
from hv2r_ros.ros.actions import joint_chunk_to_msg

pytestmark = pytest.mark.ros


def test_estop_holds_within_one_period_and_release_alone_does_not_resume(rig_factory):
    rig = rig_factory("panda")
    h = rig.harness
    h.safety("ACTIVE")
    start_moving(rig)
    t_estop = h.estop(True)
    rig.spin_for(0.6)
    # Within one period of the e-stop's delivery.
    assert_braking_after(rig, t_estop,
                         h.receipt_after("hv2r/estop", t_estop) + h.period + TOL_S)
    t_release = h.estop(False)  # the policy keeps streaming chunks
    rig.spin_for(0.3)
    after = [c for c in h.commands if c[1] > t_release]
    assert len(after) > 10 and np.all(speeds(after, h.period) <= 1e-9)
    h.diagnostics.clear()
    rig.node._publish_diagnostics()
    rig.spin_until(lambda: h.diagnostics, 2.0)
    statuses = {st.name: st for st in h.diagnostics[-1].status}
    command = statuses["command_output: command"]
    values = {kv.key: kv.value for kv in command.values}
    assert command.level == DiagnosticStatus.ERROR and command.message == "hold: e-stop latched"
    assert "waiting for safety state ACTIVE" in values["hold_reason"]
    assert int(values["holds.HOLD_ESTOP"]) > 10 and float(values["latency_p50_ms"]) > 0.0
    chunks = {kv.key: kv.value for kv in statuses["command_output: chunks"].values}
    assert float(chunks["rate_hz"]) > 10.0 and float(chunks["latency_p50_ms"]) >= 0.0
    h.safety("HOLD e-stop reset")
    rig.spin_for(0.05)
    t_resume = h.safety("ACTIVE")
    count = len(h.commands)
    rig.spin_for(0.5)
    resumed = [c for c in h.commands[count:] if c[1] > t_resume]
    # Re-seeded: the first command after the resume equals the measured (resting) state.
    measured = [q for t, q in h.published_states if t < resumed[0][1]][-1]
    np.testing.assert_array_equal(resumed[0][2], measured)
    assert speeds(resumed, h.period).max() > 0.05
    assert_limits(h.profile, h.commands)

def test_safety_state_hold_holds_and_a_quick_resume_waits_for_rest(rig_factory):
    rig = rig_factory("panda")
    h = rig.harness
    h.safety("ACTIVE")
    start_moving(rig)
    t_hold = h.safety("HOLD workspace violation")
    rig.spin_for(0.6)
    assert_braking_after(rig, t_hold,
                         h.receipt_after("hv2r/safety/state", t_hold) + h.period + TOL_S)
    h.safety("ACTIVE")
    start_moving(rig)
    rig.spin_for(0.3)  # up to speed
    h.safety("HOLD HOLD_STALE: observation 0.12 s old")
    rig.spin_for(0.015)
    # While still braking: a re-seed now would jump back to the lagging measurement (a
    # reversal far beyond the acceleration limits); it waits until the command rests.
    h.safety("ACTIVE")
    rig.spin_for(0.6)
    assert speeds(h.commands[-5:], h.period).min() > 0.05  # resumed
    assert_limits(h.profile, h.commands)  # across every hold, re-seed and resume

def test_silent_action_stream_holds_within_timeout_plus_one_period(rig_factory):
    rig = rig_factory("panda")
    h = rig.harness
    h.safety("ACTIVE")
    start_moving(rig)
    plan, h.plan = h.plan, None  # the policy falls silent; the last chunk runs 1 s more
    t_silent = h.now()  # no chunk is published after this
    rig.spin_for(0.6)
    timeout = rig.node.get_parameter("command_timeout_s").value
    t_last = h.received["hv2r/action_safe"][-1]  # delivery of the last chunk
    # Still following the last chunk until the timeout: the hold is the watchdog's.
    before = [c for c in h.commands if t_silent < c[1] < t_last + timeout - h.period]
    assert len(before) > 3 and speeds(before, h.period).min() > 0.05
    # HOLD within command_timeout_s + one period of the last chunk's delivery.
    assert_braking_after(rig, t_silent, t_last + timeout + h.period + TOL_S)
    assert plan(t_silent + 0.5)[0, 1] > plan(t_silent)[0, 1]  # the plan itself went on

def test_stalled_joint_states_stop_moving_targets_within_three_periods(rig_factory):
    rig = rig_factory("panda")
    h = rig.harness
    h.safety("ACTIVE")
    start_moving(rig)
    # Two periods at 100 Hz, set live just before the stall (fewer spurious holds before it).
    assert rig.node.set_parameters([Parameter("max_state_age_s", value=0.02)])[0].successful
    h.publish_states = False
    t_stall = h.now()
    rig.spin_for(0.6)
    t_last = h.received["joint_states"][-1]  # delivery of the last joint state
    # Hold at the first tick after max_state_age_s: within three periods of the last state.
    assert_braking_after(rig, t_stall, t_last + 3 * h.period + TOL_S)

def test_joint_chunk_with_wrong_joint_names_holds(rig_factory):
    rig = rig_factory("so100", cartesian=False)
    h = rig.harness
    h.safety("ACTIVE")
    rig.spin_until(lambda: len(h.commands) >= 2, DISCOVERY_S)
    msg = joint_chunk_to_msg(["a", "b", "c", "d", "e"], np.ones((3, 5)), [0.0, 0.1, 0.2],
                             h.now())
    for _ in range(5):
        h.action_pub.publish(msg)
        rig.spin_for(0.05)
    assert np.all(speeds(h.commands, h.period) == 0.0)
    assert rig.node.chunks.stats.holds == {Status.HOLD_WRONG_NAMES: 5}
    assert len(rig.node.chunks) == 0
