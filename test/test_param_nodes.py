"""Every config file constructs every node: for every robot, every node of its stack from
config/stack.yaml and config/params/<robot>.yaml (tiny ONNX pairs from ``onnx_fixtures``,
generated camera videos) in one rclpy context with a fresh domain id, the lifecycle nodes
configured; bad overrides are rejected.
"""

import gc
import importlib.util
import re

import pytest
import rclpy
import ros_testing
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from stack_files import CONFIG, ROBOTS, sections

from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.ros.params import ParameterError
from hv2r_ros.ros.runner import build_stack, make_node
from hv2r_ros.ros.synthetic import with_synthetic_inputs
from hv2r_ros.ros.stack_plan import StackError, plan_stack

# --- every config file constructs every node ----------------------------------------------

@pytest.fixture
def context():
    ros_testing.use_fresh_domain()
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _check_node_values(robot, plan, nodes):
    """Each node's parameters are the files' values, the derived ones winning."""
    stack_file = sections(CONFIG / "stack.yaml")
    robot_file = sections(CONFIG / "params" / f"{robot}.yaml")
    for name, node in nodes.items():
        if name == "synthetic_robot":
            continue
        expected = {**stack_file.get(name, {}), **robot_file.get(name, {}),
                    **plan.node(name).values}
        for key, value in expected.items():
            got = node.get_parameter(key).value
            got = list(got) if isinstance(got, (list, tuple)) or hasattr(got, "tolist") else got
            assert got == value, f"{robot}: {name}.{key} = {got!r}, files say {value!r}"


UNITREE_SDK = importlib.util.find_spec("unitree_sdk2py") is not None


@pytest.mark.ros
@pytest.mark.parametrize("robot", ROBOTS)
def test_every_config_file_constructs_every_node(robot, pairs, context, tmp_path):
    """stack.yaml + params/<robot>.yaml build every node; the lifecycle ones configure."""
    cameras = [f"{c}_camera" for c in load_robot_profile(robot).cameras]
    if robot == "g1":
        # The G1 is commanded through Unitree's SDK (and followed by no synthetic robot):
        # every node is built by hand; command_output needs the optional SDK.
        plan = with_synthetic_inputs(plan_stack(robot, models=str(pairs[robot])), tmp_path,
                                     set_prompt=True)
        nodes = {}
        try:
            for node in plan.nodes:
                if node.executable == "command_output" and not UNITREE_SDK:
                    with pytest.raises(ConfigError, match="Unitree SDK"):
                        make_node(node, context=context, namespace="", directory=tmp_path)
                    continue
                nodes[node.name] = make_node(node, context=context, namespace="",
                                             directory=tmp_path)
            assert list(nodes)[:4] == cameras + ["prompt", "policy", "safety_filter"]
            _check_node_values(robot, plan, nodes)
            assert nodes["safety_filter"].trigger_configure() == \
                TransitionCallbackReturn.SUCCESS
        finally:
            for node in nodes.values():
                node.destroy_node()
        return
    stack = build_stack(robot, models=str(pairs[robot]), synthetic=True, context=context)
    try:
        assert list(stack.nodes) == cameras + ["prompt", "policy", "safety_filter",
                                               "command_output", "synthetic_robot"]
        _check_node_values(robot, stack.plan, stack.nodes)
        stack.configure()
        sf = stack.nodes["safety_filter"]
        assert sf.filter is not None and sf.filter.cartesian
        assert stack.nodes["command_output"].cartesian
        assert stack.nodes["prompt"].status.startswith("READY")
    finally:
        stack.shutdown()


@pytest.mark.ros
@pytest.mark.parametrize("text, error, match", [
    ("/**/policy:\n  ros__parameters:\n    inference_rate_hz: 1000.0\n", ParameterError,
     "policy.inference_rate_hz"),
    ("/**/command_output:\n  ros__parameters:\n    strategy: newest\n", ParameterError,
     "command_output.strategy.*receding_horizon"),
    ("/**/safety_filter:\n  ros__parameters:\n    max_action_age_s: 1\n", ParameterError,
     r"safety_filter.max_action_age_s.*write 1.0"),
    ("/**/policy:\n  ros__parameters:\n    inference_rate: 5.0\n", StackError,
     "not declared by node 'policy'.*inference_rate"),
])
def test_bad_overrides_in_a_parameter_file_are_rejected(text, error, match, pairs, context,
                                                        tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text(text)
    try:
        build_stack("panda", models=str(pairs["panda"]), synthetic=True, context=context,
                    extra_params=[str(extra)])
    except error as exc:
        assert re.search(match, str(exc)), str(exc)
    else:
        pytest.fail("the bad override was accepted")
    # Nothing half-built stays behind in the context (rclpy finalises a destroyed lifecycle
    # node when the object is collected).
    gc.collect()
    probe = rclpy.create_node("probe", context=context)
    try:
        assert probe.get_node_names() == ["probe"]
    finally:
        probe.destroy_node()


@pytest.mark.ros
def test_run_time_sets_out_of_range_or_read_only_are_rejected(pairs, context):
    stack = build_stack("panda", models=str(pairs["panda"]), synthetic=True, context=context)
    try:
        nodes = stack.nodes
        refused = [
            (nodes["policy"], Parameter("robot", value="ur5e")),                # read-only
            (nodes["policy"], Parameter("models_dir", value="/tmp")),           # read-only
            (nodes["wrist_camera"], Parameter("path", value="/tmp/x.mp4")),     # read-only
            (nodes["command_output"], Parameter("command_timeout_s", value=5.0)),  # > 1 s
            (nodes["safety_filter"], Parameter("authority_ramp_s", value=-1.0)),  # < 0
            (nodes["command_output"], Parameter("strategy", value="newest")),   # not a choice
        ]
        for node, parameter in refused:
            before = node.get_parameter(parameter.name).value
            assert not node.set_parameters([parameter])[0].successful, parameter.name
            assert node.get_parameter(parameter.name).value == before
        assert nodes["command_output"].set_parameters(
            [Parameter("command_timeout_s", value=0.05)])[0].successful
    finally:
        stack.shutdown()
