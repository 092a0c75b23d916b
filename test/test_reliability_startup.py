"""Reliability, malformed artefacts at start (issue 9, scenario 7): each node started as its own
process, as on a robot, with one malformed artefact (model, video, robot profile, parameter
file). It must exit non-zero (or, the lifecycle safety filter without autostart, stay
unconfigured) within 5 s of its start, with an error that names the file and the field, and
publish nothing on any command topic (actions, forwarded actions, gripper, joint commands),
which a monitor in the same ROS domain watches throughout.
"""

import time
from pathlib import Path

import pytest
from trajectory_msgs.msg import JointTrajectory

from onnx_fixtures import make_encoder, make_policy, policy_spec, write_pair
from reliability_rig import PROFILE
import ros_testing
from hv2r_ros.ros.fault_rig import ProcessStack, wait_for
from hv2r_ros.ros.stack_monitor import Monitor
from hv2r_ros.ros import qos

pytestmark = pytest.mark.ros

WITHIN_S = 5.0


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("artefacts")
    text = Path(PROFILE.file).read_text()
    looser = "velocity_rad_s: [1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.2]"
    assert looser in text
    (root / "panda_bad.yaml").write_text(text.replace(
        looser, "velocity_rad_s: [1.0, 1.0, 9.0, 1.0, 1.2, 1.2, 1.2]"))
    write_pair(root / "models_metadata", make_encoder(),
               make_policy(metadata={"hv2r.chunk_length": "four"}))
    write_pair(root / "models_joints", make_encoder(),
               make_policy(policy_spec(joint_order=tuple(f"j{i}" for i in range(7)))))
    (root / "demo.mp4").write_bytes(b"not a video")
    (root / "range.yaml").write_text(
        "/**/command_output:\n  ros__parameters:\n    command_timeout_s: 5.0\n")
    (root / "syntax.yaml").write_text(
        "/**/command_output:\n  ros__parameters:\n    command_timeout_s: [0.1\n")
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    stack = ProcessStack(tmp_path_factory.mktemp("startup"), ros_testing.next_domain_id())
    stack.use_in_this_process()
    # The fixture policies are joint-space: hv2r/action and hv2r/action_safe carry
    # JointTrajectory (the monitor records both).
    monitor = Monitor(PROFILE, action_type=JointTrajectory)
    published = []
    monitor.node.create_subscription(JointTrajectory, "hv2r/gripper", published.append,
                                     qos.action_qos())
    yield stack, monitor, published
    monitor.close()
    assert not stack.close()


def command_traffic(monitor, published):
    with monitor.lock:
        return len(monitor.commands) + len(monitor.forwarded) + len(monitor.actions) + \
            len(published)


# (case, executable, parameters, extra parameter file, words the error must contain)
CASES = [
    ("policy model metadata", "policy", {"models_dir": "{root}/models_metadata"}, None,
     ["models_metadata/policy.onnx", "hv2r.chunk_length"]),
    ("policy model for other joints", "policy", {"models_dir": "{root}/models_joints"}, None,
     ["models_joints/policy.onnx", "hv2r.joint_order"]),
    ("camera video", "camera", {"source": "file", "path": "{root}/demo.mp4"}, None,
     ["demo.mp4"]),
    ("robot profile: command_output", "command_output", {"robot": "{root}/panda_bad.yaml"}, None,
     ["panda_bad.yaml", "limits.velocity_rad_s[2]"]),
    ("robot profile: safety_filter", "safety_filter", {"robot": "{root}/panda_bad.yaml"}, None,
     ["panda_bad.yaml", "limits.velocity_rad_s[2]"]),
    ("robot profile: sim", "sim", {"robot": "{root}/panda_bad.yaml"}, None,
     ["panda_bad.yaml", "limits.velocity_rad_s[2]"]),
    ("parameter file: YAML syntax", "command_output", {}, "syntax.yaml", ["syntax.yaml"]),
    ("parameter file: value out of range", "command_output", {}, "range.yaml",
     ["range.yaml", "command_timeout_s"]),
]


@pytest.mark.parametrize("case, executable, params, param_file, words", CASES,
                         ids=[c[0] for c in CASES])
def test_malformed_artefact_exits_non_zero_with_file_and_field_and_publishes_nothing(
        world, artefacts, case, executable, params, param_file, words):
    stack, monitor, published = world
    before = command_traffic(monitor, published)
    params = {k: v.format(root=artefacts) if isinstance(v, str) else v for k, v in params.items()}
    extra = (str(artefacts / param_file),) if param_file else ()
    name = case.replace(" ", "_").replace(":", "")
    node = stack.add(name, executable, params, extra_files=extra, node_name=executable)
    started = time.monotonic()
    try:
        code = node.popen.wait(timeout=WITHIN_S + 10.0)
    finally:
        stack.stop(name)
    took = time.monotonic() - started
    log = node.log()
    line = next((l for l in log.splitlines() if words[0] in l), log[-300:])
    print(f"\n{case}: exit {code} after {took:.2f} s: {line.strip()[:160]}")
    assert code != 0, log
    assert took <= WITHIN_S, f"exited after {took:.2f} s"
    for word in words:
        assert word in log, (word, log)
    time.sleep(0.2)
    assert command_traffic(monitor, published) == before, "published on a command topic"


def test_safety_filter_without_autostart_stays_unconfigured(world, artefacts):
    stack, monitor, published = world
    before = command_traffic(monitor, published)
    node = stack.add("safety_filter", "safety_filter",
                     {"robot": f"{artefacts}/panda_bad.yaml", "enable_autostart": False})
    started = time.monotonic()
    try:
        assert not monitor.transition("configure"), "configured with a malformed profile"
        took = time.monotonic() - started
        wait_for(lambda: "limits.velocity_rad_s[2]" in node.log(), 5.0, "the error line")
        assert node.alive, "the unconfigured node exited"
        print(f"\nsafety_filter, autostart off: configure refused {took:.2f} s after start")
        assert took <= WITHIN_S and "panda_bad.yaml" in node.log()
        assert not monitor.safety_state(), "an unconfigured filter published a state"
    finally:
        assert stack.stop("safety_filter")
    assert command_traffic(monitor, published) == before, "published on a command topic"
