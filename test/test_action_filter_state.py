"""The safety filter stage's core (ActionFilter): measured state, watchdog, e-stop, config."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from action_filter_rig import Rig
from hv2r_ros.core.action_filter import ACTIVE, ActionFilter, ActionFilterConfig, state_message
from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.core.status import Status

TOL = 1e-9  # float slack on geometric bounds [m, rad]


@pytest.fixture(scope="module")
def panda():
    return load_robot_profile("panda")


@pytest.fixture(scope="module")
def g1():
    return load_robot_profile("g1")  # two end-effector frames (both hands)


# --- measured state -----------------------------------------------------------------------

@pytest.mark.parametrize("space", ["cartesian", "joint"])
def test_no_or_stale_joint_state_holds(panda, space):
    rig = Rig(panda, space)
    fresh = ActionFilter(panda, rig.filter.config, clock=rig.clock)
    fresh.activate()
    out, status = fresh.on_chunk(fresh.names, rig.step(), 0.1 * np.arange(5),
                                 rig.clock.now - 0.01, rig.clock.now)
    assert out is None and status is Status.HOLD_INVALID_MEASUREMENT
    measured_at = rig.clock.now
    assert rig.send(rig.step(), stamp_s=measured_at - 0.01)[1] is Status.OK
    rig.clock.now = measured_at + 0.1  # the joint state is at the age limit: usable
    assert rig.send(rig.step(), stamp_s=rig.clock.now - 0.01)[1] is Status.OK
    rig.clock.now += 0.001
    assert rig.filter.state()[0] is Status.HOLD_INVALID_MEASUREMENT
    assert rig.send(rig.step(), stamp_s=rig.clock.now) == (None, Status.HOLD_INVALID_MEASUREMENT)
    rig.advance(0.0)
    assert rig.filter.state()[0] is Status.OK


def test_invalid_joint_state_holds_at_once_other_joints_are_ignored(panda):
    rig = Rig(panda)
    rig.send(rig.step())
    rig.filter.on_joint_state(None, Status.HOLD_WRONG_NAMES)  # e.g. a gripper-only message
    assert rig.filter.state()[0] is Status.OK
    rig.filter.on_joint_state(np.full(7, np.nan))
    status, text = rig.filter.state()
    assert status is Status.HOLD_INVALID_MEASUREMENT and "invalid" in text
    rig.filter.on_joint_state(None, Status.HOLD_WRONG_LENGTH)
    assert rig.send(rig.step()) == (None, Status.HOLD_INVALID_MEASUREMENT)


# --- watchdog and e-stop ------------------------------------------------------------------

@settings(max_examples=30)
@given(timeout_s=st.floats(0.005, 1.0), gaps=st.lists(st.floats(0.0, 0.004), max_size=5))
def test_silent_policy_holds_exactly_when_the_clock_passes_the_timeout(panda, timeout_s, gaps):
    rig = Rig(panda, command_timeout_s=timeout_s, max_state_age_s=1.0)
    for gap in gaps:
        rig.clock.now += gap
        assert rig.send(rig.step(), age_s=0.0)[1] is Status.OK
    rig.send(rig.step(), age_s=0.0)
    fed_at = rig.clock.now
    rig.filter.on_joint_state(rig.q)
    rig.clock.now = fed_at + timeout_s
    if rig.clock.now - fed_at <= timeout_s:  # float rounding of the sum may land past it
        assert rig.filter.state() == (Status.OK, "")
    rig.clock.now = math.nextafter(fed_at + timeout_s, math.inf) + 1e-12
    status, text = rig.filter.state()
    assert status is Status.HOLD_TIMEOUT and f"{timeout_s * 1e3:g} ms" in text


def test_profile_timeout_is_the_default(panda):
    assert ActionFilter(panda).watchdog.timeout_s == panda.command_timeout_s == 0.1


def test_estop_latches_and_only_an_operator_reset_with_input_released_clears_it(panda):
    rig = Rig(panda)
    rig.send(rig.step())
    assert rig.filter.on_estop(True)
    assert rig.filter.state()[0] is Status.HOLD_ESTOP
    assert rig.send(rig.step()) == (None, Status.HOLD_ESTOP)
    ok, message = rig.filter.reset_estop()
    assert not ok and "asserted" in message
    assert rig.filter.on_estop(False)  # released input alone does not unlatch
    rig.advance(0.01)
    assert rig.filter.state()[0] is Status.HOLD_ESTOP
    assert rig.send(rig.step()) == (None, Status.HOLD_ESTOP)
    ok, message = rig.filter.reset_estop()
    assert ok and not rig.filter.estop.latched
    # re-seeded: the watchdog waits for a new chunk, the ramp restarts
    assert rig.filter.state()[0] is Status.HOLD_TIMEOUT
    assert rig.send(rig.step())[1] is Status.OK and rig.filter.state()[0] is Status.OK
    assert rig.filter.reset_estop() == (True, "e-stop was not latched")


def test_estop_wins_over_everything_but_inactive(panda):
    rig = Rig(panda)
    rig.filter.on_estop(True)
    rig.clock.now += 10.0  # watchdog and joint state long expired
    assert rig.filter.state()[0] is Status.HOLD_ESTOP
    rig.filter.deactivate()
    assert rig.filter.state()[0] is Status.HOLD_NOT_STARTED


def test_statistics_count_holds_and_latency(panda):
    rig = Rig(panda)
    rig.send(rig.step(), age_s=0.03)
    rig.send(np.full_like(rig.step(), np.nan))
    summary = rig.filter.summary()
    assert summary.count == 2 and summary.holds == {Status.HOLD_NON_FINITE: 1}
    assert summary.latency_p50_ms == pytest.approx(20.0)


# --- configuration ------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [
    ("command_timeout_s", 0.0), ("command_timeout_s", 5.0), ("command_timeout_s", math.nan),
    ("max_action_age_s", 0.0), ("max_state_age_s", math.inf), ("authority_ramp_s", -1.0),
    ("action_space", "torque"),
])
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        ActionFilterConfig(**{field: value})


def test_state_message_format():
    assert state_message(Status.OK, "") == ACTIVE == "ACTIVE"
    assert state_message(Status.HOLD_ESTOP, "why") == "HOLD HOLD_ESTOP: why"
