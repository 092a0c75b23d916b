"""Command watchdog, authority ramp and e-stop latch, on a fake clock."""

import math

import pytest

from hv2r_ros.core.errors import LimitsError
from hv2r_ros.core.safety import AuthorityRamp, CommandValidator, CommandWatchdog, EStopLatch
from hv2r_ros.core.status import Status
from fake_clock import FakeClock


@pytest.mark.parametrize("timeout", [0.0, -0.1, math.inf, math.nan])
def test_timeouts_that_switch_the_watchdog_off_are_rejected(timeout):
    with pytest.raises(LimitsError, match="command_timeout_s"):
        CommandWatchdog(timeout)


def test_never_fed_watchdog_is_expired():
    assert CommandWatchdog(0.1, clock=FakeClock(100.0)).expired()


def test_watchdog_expires_after_the_timeout_on_its_own_clock():
    clock = FakeClock(100.0)
    watchdog = CommandWatchdog(0.1, clock=clock)
    watchdog.feed()
    clock.now += 0.1
    assert not watchdog.expired()
    clock.now += 0.001
    assert watchdog.expired()
    watchdog.feed()
    assert not watchdog.expired() and watchdog.age_s() == 0.0
    watchdog.reset()
    assert watchdog.expired()


def test_only_valid_commands_refresh_the_watchdog():
    clock = FakeClock(100.0)
    watchdog = CommandWatchdog(0.1, clock=clock)
    validator = CommandValidator(("a", "b"), timeout_s=0.1)
    for values in ([0.0, 0.0], [math.nan, 0.0], [0.0], [1e30, 0.0]):
        _, status = validator.validate(("a", "b"), values, clock.now, clock.now)
        if status is Status.OK:
            watchdog.feed()
        clock.now += 0.06
    # fed at t=0 and t=0.18 (1e30 is finite: the limits deal with it); invalid ones did not feed
    assert watchdog.age_s() == pytest.approx(0.06)
    _, status = validator.validate(("a", "b"), [math.inf, 0.0], clock.now, clock.now)
    clock.now += 0.06
    assert status is Status.HOLD_NON_FINITE and watchdog.expired()


def test_authority_ramps_linearly_from_activation():
    clock = FakeClock(100.0)
    ramp = AuthorityRamp(2.0, clock=clock)
    assert ramp.value() == 0.0
    ramp.activate()
    assert ramp.value() == 0.0
    clock.now += 0.5
    assert ramp.value() == pytest.approx(0.25)
    clock.now += 5.0
    assert ramp.value() == 1.0
    ramp.activate()  # reset / resume restarts the ramp
    assert ramp.value() == 0.0
    ramp.deactivate()
    clock.now += 10.0
    assert ramp.value() == 0.0


def test_zero_ramp_gives_full_authority_at_activation_and_bad_ramps_are_rejected():
    ramp = AuthorityRamp(0.0, clock=FakeClock(100.0))
    assert ramp.value() == 0.0
    ramp.activate()
    assert ramp.value() == 1.0
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(LimitsError, match="authority_ramp_s"):
            AuthorityRamp(bad)


def test_estop_latches_until_an_explicit_operator_reset():
    latch = EStopLatch()
    assert not latch.latched
    assert latch.update(True)
    assert latch.update(False)  # releasing the input does not unlatch
    assert not latch.reset(operator_confirmed=False)
    assert not latch.reset(operator_confirmed=1)  # only a literal True counts
    assert latch.latched
    assert latch.reset(operator_confirmed=True)
    assert not latch.latched


def test_estop_reset_is_refused_while_the_input_is_asserted():
    latch = EStopLatch()
    latch.update(True)
    assert not latch.reset(operator_confirmed=True)
    latch.update(False)
    assert latch.reset(operator_confirmed=True)


def test_software_trigger_latches_with_a_reason():
    latch = EStopLatch()
    latch.trigger("heartbeat lost")
    assert latch.latched and latch.reason == "heartbeat lost"
    assert latch.reset(operator_confirmed=True) and latch.reason == ""
