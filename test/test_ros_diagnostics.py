"""Stage statistics -> diagnostic_msgs."""

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.serialization import deserialize_message, serialize_message

from hv2r_ros.core.stats import StageStats
from hv2r_ros.core.status import Status
from hv2r_ros.ros.diagnostics import diagnostic_array, level_of, stage_status

pytestmark = pytest.mark.ros  # needs rclpy and the message packages


def stats_ending_with(*statuses):
    stats = StageStats()
    for i, status in enumerate(statuses):
        stats.record(1.0 + 0.01 * i, 0.004, status)
    return stats


def values(status):
    return {kv.key: kv.value for kv in status.values}


def test_ok_stage_reports_rate_and_latency_with_units():
    summary = stats_ending_with(*[Status.OK] * 11).summary(now_s=1.1)
    status = stage_status("hv2r_safety: filter", summary, "panda")
    assert status.level == DiagnosticStatus.OK and status.hardware_id == "panda"
    assert status.name == "hv2r_safety: filter" and status.message == Status.OK.value
    kv = values(status)
    assert kv["rate_hz"] == "100.00" and kv["latency_p50_ms"] == "4.00"
    assert kv["count"] == "11" and kv["hold_count"] == "0" and kv["last_status"] == "OK"
    assert kv["age_s"] == "0.000"


def test_levels_follow_the_hold_state():
    assert level_of(stats_ending_with(Status.OK, Status.SCALED_VELOCITY).summary()) \
        == DiagnosticStatus.OK
    assert level_of(stats_ending_with(Status.OK, Status.HOLD_NON_FINITE).summary()) \
        == DiagnosticStatus.WARN
    assert level_of(stats_ending_with(Status.OK, Status.HOLD_ESTOP).summary()) \
        == DiagnosticStatus.ERROR
    assert level_of(stats_ending_with(Status.HOLD_ESTOP, Status.OK).summary()) \
        == DiagnosticStatus.OK
    assert level_of(stats_ending_with(Status.HOLD_STALE).summary(),
                    error_statuses=frozenset({Status.HOLD_STALE})) == DiagnosticStatus.ERROR
    assert level_of(StageStats().summary()) == DiagnosticStatus.STALE
    late = stats_ending_with(Status.OK).summary(now_s=3.0)
    assert level_of(late, stale_after_s=0.5) == DiagnosticStatus.STALE
    assert level_of(late) == DiagnosticStatus.OK


def test_hold_counts_and_messages():
    summary = stats_ending_with(Status.HOLD_NON_FINITE, Status.OK, Status.HOLD_NON_FINITE,
                                Status.HOLD_WRONG_NAMES).summary()
    status = stage_status("s", summary, "ur5e", extra=[("chunk_length", "16")])
    kv = values(status)
    assert status.level == DiagnosticStatus.WARN and status.message == Status.HOLD_WRONG_NAMES.value
    assert kv["holds.HOLD_NON_FINITE"] == "2" and kv["holds.HOLD_WRONG_NAMES"] == "1"
    assert kv["hold_count"] == "3" and kv["chunk_length"] == "16"
    empty = stage_status("s", StageStats().summary(), "ur5e")
    assert empty.message == "no input yet" and values(empty)["latency_p99_ms"] == "nan"
    assert values(empty)["age_s"] == "inf"
    stale = stage_status("s", stats_ending_with(Status.OK).summary(now_s=5.0), "ur5e",
                         stale_after_s=1.0)
    assert stale.level == DiagnosticStatus.STALE and stale.message.startswith("no input for 4.")


def test_array_is_stamped_and_serialises():
    statuses = [stage_status(f"s{i}", stats_ending_with(Status.OK).summary(), "g1")
                for i in range(2)]
    array = deserialize_message(serialize_message(diagnostic_array(statuses, 3.5)),
                                DiagnosticArray)
    assert (array.header.stamp.sec, array.header.stamp.nanosec) == (3, 500_000_000)
    assert [s.name for s in array.status] == ["s0", "s1"]
