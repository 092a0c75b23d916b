"""Reliability, camera faults (issue 9, scenario 2): the stack as separate processes against the
simulated robot, with the real policy node (a tiny joint-space fixture model pair whose targets
move around the home pose) and a fault relay in front of each of its cameras.

- A camera stall (both cameras' frames stop for 200 ms, and for 2 s): the policy publishes no
  action from a stale observation (every chunk is younger than the observation age limit at
  publication, plus the inference time) and stops within the age limit plus one inference
  period of the last frames; the joint commands hold within that plus the command timeout and
  one control period; motion resumes only from fresh frames.
- Frozen frames (the wrist camera repeats one image with fresh stamps for 2 s): no action from
  the frozen image beyond the age limit plus one inference period, and the robot holds.
"""


import numpy as np
import pytest

from onnx_fixtures import make_encoder, make_policy, policy_spec, write_pair
from reliability_rig import (
    COMMAND_TIMEOUT_S, PERIOD_S, PROFILE, SCHEDULING_TOLERANCE_S, Rig, running)

pytestmark = pytest.mark.ros

MAX_AGE_S = PROFILE.observation_max_age_s
INFERENCE_HZ = 15.0                     # config/stack.yaml
INFERENCE_S = 0.030                     # stated bound of one inference of the tiny pair here
POLICY_STOP_S = MAX_AGE_S + 1.0 / INFERENCE_HZ
ROBOT_HOLD_S = POLICY_STOP_S + COMMAND_TIMEOUT_S + PERIOD_S
CAMERAS = ("wrist_relay", "overhead_relay")


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    root = tmp_path_factory.mktemp("cameras")
    n = len(PROFILE.joint_names)
    spec = policy_spec(joint_order=PROFILE.joint_names, robot="panda", gripper=True,
                       camera_order=("wrist", "overhead"), action_size=n + 1,
                       action_mean=tuple(map(float, PROFILE.home)) + (0.5,),
                       action_std=(0.3,) * (n + 1), proprio_size=n,
                       proprio_mean=tuple(map(float, PROFILE.home)), proprio_std=(0.05,) * n)
    models = write_pair(root / "models", make_encoder(), make_policy(spec))
    made = Rig(root / "run", policy="policy", camera_relays=True, action_space="joint",
               sim_params={"camera_rate_hz": INFERENCE_HZ},
               policy_params={"models_dir": str(models), "providers": ["cpu"],
                              "inference_rate_hz": INFERENCE_HZ})
    with running(made, lambda rig: rig.monitor.publish_goal(np.zeros(8))):
        yield made


def chunks(rig, since_s, until_s=np.inf):
    """(receipt, stamp) of the policy's chunks received in [since_s, until_s]."""
    with rig.monitor.lock:
        return [(r, s) for r, s in rig.monitor.actions if since_s <= r <= until_s]


def fault_on_cameras(rig, mode, duration_s):
    """The fault on both camera relays (or the wrist's only for ``freeze``); the stamp of the
    newest frame each camera delivered before it, the older of the two [s]."""
    relays = CAMERAS if mode != "freeze" else CAMERAS[:1]
    events = [rig.monitor.set_fault(relay, mode, duration_s=duration_s) for relay in relays]
    return min(e["last_valid_stamp_s"] for e in events), max(e["at_s"] for e in events)


@pytest.mark.parametrize("stall_s", [0.2, 2.0])
def test_camera_stall_no_action_from_stale_frames_hold_and_resume_on_fresh_ones(rig, stall_s):
    rig.wait_moving()
    last_frame_s, started_s = fault_on_cameras(rig, "outage", stall_s)
    ended_s = started_s + stall_s
    hold = rig.hold_after(last_frame_s, window_s=stall_s + 1.0, settle=3)
    sent = chunks(rig, started_s - 1.0)
    ages = [r - s for r, s in sent]
    old = [r for r, s in sent if s <= last_frame_s]  # from frames before the stall
    stopped = max(old) - last_frame_s
    fresh = [(r, s) for r, s in sent if s > last_frame_s]
    latency = hold.latency_s(last_frame_s)
    print(f"\ncamera stall {stall_s * 1e3:.0f} ms: chunks received at most "
          f"{max(ages) * 1e3:.0f} ms after their frames (limit {MAX_AGE_S * 1e3:.0f} ms + "
          f"{INFERENCE_S * 1e3:.0f} ms inference + {SCHEDULING_TOLERANCE_S * 1e3:.0f} ms); last "
          f"chunk from old frames {stopped * 1e3:.0f} ms after the last frame (limit "
          f"{POLICY_STOP_S * 1e3:.0f} ms); commands HOLD {latency * 1e3:.0f} ms after it "
          f"(deadline {ROBOT_HOLD_S * 1e3:.0f} ms + {SCHEDULING_TOLERANCE_S * 1e3:.0f} ms)")
    # The monitor's receipt time stands in for the publication time: its delivery counts
    # against the scheduling tolerance. A chunk from a frame older than the age limit would be
    # published later than MAX_AGE_S + INFERENCE_S after it.
    assert max(ages) <= MAX_AGE_S + INFERENCE_S + SCHEDULING_TOLERANCE_S, \
        "a chunk from a stale observation"
    assert stopped <= POLICY_STOP_S + SCHEDULING_TOLERANCE_S
    assert latency <= ROBOT_HOLD_S + SCHEDULING_TOLERANCE_S, latency
    assert fresh and min(s for _, s in fresh) >= ended_s - 0.01, "no fresh frames after it"
    first_fresh = min(r for r, _ in fresh)
    if hold.rest_s is not None and hold.rest_s < first_fresh:
        # At rest before fresh frames came: nothing moves until a fresh chunk arrived.
        assert rig.still_since(hold.rest_s, first_fresh)
    violations = rig.violations(started_s - 1.0, ended_s + 1.0)
    assert violations.total == 0 and violations.acceleration == 0, violations


def test_frozen_frames_give_no_action_and_hold(rig):
    rig.wait_moving()
    last_frame_s, started_s = fault_on_cameras(rig, "freeze", 2.0)
    hold = rig.hold_after(last_frame_s, window_s=2.0)
    frozen = chunks(rig, started_s + POLICY_STOP_S + SCHEDULING_TOLERANCE_S, started_s + 2.0)
    print(f"\nfrozen wrist frames: {len(frozen)} chunks published from them; commands HOLD "
          f"{hold.latency_s(last_frame_s) * 1e3:.0f} ms after the last live frame")
    assert not frozen, f"{len(frozen)} chunks computed from frozen frames"
    assert hold.latency_s(last_frame_s) <= ROBOT_HOLD_S + SCHEDULING_TOLERANCE_S
